"""The application factory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, render_template, request
from flask.globals import request_ctx
from flask_babel import lazy_gettext
from markupsafe import Markup
from redis.exceptions import RedisError
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, UnicodeConverter

from samleng.service import admin
from samleng.service.petitions import cli as petitions_cli
from samleng.service.petitions.scheduler import SealScheduler, Witnessing
from samleng.service.platform import db, dbsession, mail, ratelimit
from samleng.service.platform.config import Config, load_config
from samleng.service.platform.context import EXTENSION, Services
from samleng.service.platform.gate import Overloaded, WorkGate
from samleng.service.platform.keys import derive_key
from samleng.service.platform.replica import ReadReplica
from samleng.service.platform.vault import Vault
from samleng.service.signing.formtoken import FormTokens, UsedFormTokens
from samleng.service.signing.limits import MailLimits, SigningLimits
from samleng.service.signing.signatures import KeptSigningMaterial
from samleng.service.tlog import cli as tlog_cli
from samleng.service.tlog import routes as transparency
from samleng.service.tlog import tileroutes  # noqa: F401 - adds the tile views to transparency.bp
from samleng.service.tlog.epochs import CurrentEpoch
from samleng.service.tlog.witnessing import WitnessClient
from samleng.service.web import (
    campaign,  # noqa: F401  (its routes join public's blueprints)
    i18n,
    public,
    security,
)
from samleng.service.web.keptpages import KeptPages
from samleng.service.web.pagecache import PageCache
from samleng.service.web.uploads import InMemoryRequest

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STYLESHEET = TEMPLATES / "style.css"

ERROR_MESSAGES = {
    400: lazy_gettext("The request could not be understood. Please go back and try again."),
    404: lazy_gettext("There is no page at this address."),
    405: lazy_gettext("This page cannot be used that way."),
    409: lazy_gettext("This petition is not accepting signatures."),
    413: lazy_gettext(
        "What you sent is too large. Please shorten your comment, or choose a smaller photo, "
        "and try again."
    ),
    429: lazy_gettext("Too many requests. Please wait a moment and try again."),
    500: lazy_gettext("Something went wrong on our side. Nothing you sent was kept."),
    503: lazy_gettext("The service is busy. Please try again in a minute."),
}


class SegmentConverter(UnicodeConverter):
    """A path segment without control characters (the default for ``<name>`` in routes).

    No address of ours has one, so such a request is a 404 before any view runs: a NUL would
    otherwise reach the database (PostgreSQL refuses it in a string) and a line break could
    reach a header.
    """

    def __init__(
        self,
        map: Map,  # noqa: A002 - werkzeug's name
        minlength: int = 1,
        maxlength: int | None = None,
        length: int | None = None,
    ) -> None:
        super().__init__(map, minlength, maxlength, length)
        self.regex = self.regex.replace("[^/]", "[^/\\x00-\\x1f\\x7f]", 1)


def _scheduler(app: Flask, config: Config, engine: Engine, vault: Vault) -> SealScheduler | None:
    """The sealer's thread in this process, started by the first request; None when sealing
    runs elsewhere (SAMLENG_SEAL_INTERVAL=0) or under tests."""
    if config.seal_interval <= 0 or config.testing:
        return None
    client = WitnessClient(timeout=config.witness_timeout, proxy=config.witness_proxy)
    scheduler = SealScheduler(
        engine, vault, config.seal_interval, Witnessing(engine, client), batch=config.seal_batch
    )
    app.before_request(scheduler.start_once)
    return scheduler


def create_app(config: Config | None = None) -> Flask:
    """Build the Flask app for ``config`` (read from ``SAMLENG_*`` variables when None)."""
    config = config or load_config()
    app = Flask(
        __name__,
        instance_path=str(config.instance_path),
        template_folder=str(TEMPLATES),
        static_folder=None,
    )
    # Uploaded files stay in memory, never in a temporary file (service/web/uploads.py).
    app.request_class = InMemoryRequest
    app.config.update(
        TESTING=config.testing,
        MAX_CONTENT_LENGTH=config.max_request_bytes,
        # Werkzeug refuses form bodies beyond these before parsing them.
        MAX_FORM_MEMORY_SIZE=config.max_request_bytes,
        MAX_FORM_PARTS=32,
        JSON_SORT_KEYS=False,
    )
    # Requests are never logged by the app; Werkzeug's own access log is silenced because it
    # writes the client address and the time of every request.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    i18n.init_app(app, config.default_lang)
    stylesheet = STYLESHEET.read_text(encoding="utf-8")
    # Our own file from the repository, not input; the CSP pins its hash.
    app.jinja_env.globals["stylesheet"] = Markup(stylesheet)  # noqa: S704
    security.init_app(app, stylesheet, config.onion_address)
    app.url_map.converters["default"] = app.url_map.converters["string"] = SegmentConverter
    app.register_blueprint(public.root)
    app.register_blueprint(public.bp)
    app.register_blueprint(transparency.bp)

    engine = db.make_engine(config.database_url)
    dbsession.init_app(app)
    vault = Vault(config.instance_path, config.master_key)
    # Inside ProxyFix (added by ratelimit.init_app): it sees the client the app sees.
    app.wsgi_app = KeptPages(app, app.wsgi_app)  # type: ignore[method-assign]
    rate_limits = ratelimit.init_app(app, config)
    shared = rate_limits.shared
    app.extensions[EXTENSION] = Services(
        config=config,
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        replica=(
            None
            if config.database_replica_url is None
            else ReadReplica(db.make_replica_engine(config.database_replica_url))
        ),
        vault=vault,
        rate_limits=rate_limits,
        signing_limits=SigningLimits(
            shared,
            per_client=config.ratelimit_sign,
            per_petition=config.ratelimit_petition,
            fallback=config.ratelimit_fallback,
            site_factor=config.ratelimit_ipv6_site_factor,
        ),
        mail_limits=MailLimits(shared, rate_limits.pseudonyms, per_address=config.ratelimit_mail),
        form_tokens=FormTokens(
            key=derive_key(config.master_key, "form-token"),
            used=UsedFormTokens(shared, config.form_max_age),
            min_seconds=config.form_min_seconds,
            max_age=config.form_max_age,
        ),
        argon2_gate=WorkGate(config.argon2_concurrency, config.argon2_wait),
        signing_material=KeptSigningMaterial(),
        epochs=CurrentEpoch(),
        pages=PageCache(config.page_cache_seconds),
        mailer=mail.mailer_for(config.smtp_url, config.demo, config.instance_path),
        admin=admin.init_app(app, config, rate_limits),
        scheduler=_scheduler(app, config, engine, vault),
    )
    petitions_cli.init_app(app)
    tlog_cli.init_app(app)

    def error_page(code: int, message: Any) -> Response:
        """The error page in the visitor's language; plain text when the request could not
        even be routed (a Host header no URL can be built for), since the page links home."""
        g.lang = i18n.current_lang(config.default_lang)
        if request_ctx.url_adapter is None:
            return Response(f"{message}\n", code, mimetype="text/plain")
        return app.make_response(
            (render_template("public/error.html", code=code, message=message), code)
        )

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        code = error.code or 500
        response = error_page(code, ERROR_MESSAGES.get(code, ERROR_MESSAGES[400]))
        if code == 429:
            response.headers["Retry-After"] = str(ratelimit.retry_after_seconds(app, error))
        return response

    @app.errorhandler(RedisError)
    @app.errorhandler(Overloaded)
    def _overloaded(_error: Exception) -> Any:
        # Shed after the short wait for an Argon2 slot (SAMLENG_ARGON2_WAIT) rather than queue
        # without bound: a request queued longer would only time out later.
        # A RedisError reaches here when Redis fails under a request that was already talking
        # to it (flask-limiter falls back only for the requests after); it is busy, not broken.
        # A shed signature: the signer sees that it was not counted, with the form to send
        # again (public.sign_again_page); elsewhere the plain busy page.
        page = None
        if request.endpoint == "public.sign" and request.view_args:
            g.lang = i18n.current_lang(config.default_lang)
            page = public.sign_again_page(request.view_args["slug"])
        response = (
            app.make_response(page) if page is not None else error_page(503, ERROR_MESSAGES[503])
        )
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        # Logged with its traceback for the operator; the request body is never logged, and
        # SQL parameters are hidden by the engine. The visitor sees a plain page.
        app.logger.error(
            "unhandled %s on %s %s",
            type(error).__name__,
            request.method,
            request.url_rule,
            exc_info=error,
        )
        return error_page(500, ERROR_MESSAGES[500])

    return app
