"""The organisers' admin: accounts, sessions, the petition lifecycle, dashboards, audit trail.

The modules that hold secrets (passwords, totp, sessions, accounts, audit) import nothing of
Flask and take the DB session and keys as arguments; ``views`` is the thin web layer. This
file stays import-light so the service layer can use the audit trail without the views.
"""

from __future__ import annotations

from flask import Flask

from samleng.service.platform.config import Config


def init_app(app: Flask, config: Config) -> None:
    """Register the admin blueprint (unless switched off) and its login throttles.

    Call after ``service.ratelimit.init_app``: the login throttles use its limiter.
    """
    if not config.admin:
        return
    from samleng.service.admin import views

    views.register(app, config)
