"""The application's services: one typed object per app, built by the factory.

Every long-lived thing a request or command needs (the engine, the vault, the limits, the
caches) is a field here, reached with ``services()`` inside an app context, or
``services(app)`` outside one. The types of the other packages are named for the type
checker only, so this module loads nothing of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from samleng.service.admin.views import AdminServices
    from samleng.service.petitions.scheduler import SealScheduler
    from samleng.service.platform.config import Config
    from samleng.service.platform.gate import WorkGate
    from samleng.service.platform.mail import Mailer
    from samleng.service.platform.ratelimit import RateLimits
    from samleng.service.platform.replica import ReadReplica
    from samleng.service.platform.vault import Vault
    from samleng.service.signing.formtoken import FormTokens
    from samleng.service.signing.limits import MailLimits, SigningLimits
    from samleng.service.signing.signatures import KeptSigningMaterial
    from samleng.service.tlog.epochs import CurrentEpoch
    from samleng.service.web.pagecache import PageCache

EXTENSION = "samleng"


@dataclass(frozen=True)
class Services:
    """What the factory built for one app (service/app.py says in which order)."""

    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    # The public reads' replica (SAMLENG_DATABASE_REPLICA_URL); None: all on the primary.
    replica: ReadReplica | None
    vault: Vault
    rate_limits: RateLimits
    signing_limits: SigningLimits
    mail_limits: MailLimits
    form_tokens: FormTokens
    argon2_gate: WorkGate
    # Keys of the petitions open for signing, unwrapped once (signing.signatures).
    signing_material: KeptSigningMaterial
    epochs: CurrentEpoch
    pages: PageCache
    mailer: Mailer | None
    admin: AdminServices | None
    scheduler: SealScheduler | None


def services(app: Flask | None = None) -> Services:
    """The services of ``app``, or of the current app."""
    found: Services = (app or current_app).extensions[EXTENSION]
    return found
