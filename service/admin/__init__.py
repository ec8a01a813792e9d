"""The organisers' admin: accounts, logins, the petition lifecycle, dashboards.

The modules that hold secrets (passwords, totp, logins, accounts) import nothing of Flask
and take the DB session and keys as arguments; ``views`` is the thin web layer. This file
imports nothing of them at load time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from samleng.service.admin.views import AdminServices
    from samleng.service.platform.config import Config
    from samleng.service.platform.ratelimit import RateLimits


def init_app(app: Flask, config: Config, rate_limits: RateLimits) -> AdminServices | None:
    """Register the admin blueprint and the ``samleng admin`` commands; the admin's services
    (None when the admin is switched off)."""
    from samleng.service.admin import cli

    cli.init_app(app)
    if not config.admin:
        return None
    from samleng.service.admin import views

    return views.register(app, config, rate_limits)
