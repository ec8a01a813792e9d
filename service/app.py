"""The application factory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, g, render_template, request
from flask_babel import lazy_gettext
from markupsafe import Markup
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from samleng.service import admin, db, i18n, mail, ratelimit, security
from samleng.service.config import Config, load_config
from samleng.service.pagecache import PageCache
from samleng.service.scheduler import SealScheduler
from samleng.service.signing import CurrentEpoch, KeptKeys
from samleng.service.vault import Vault

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STYLESHEET = TEMPLATES / "style.css"

ERROR_MESSAGES = {
    400: lazy_gettext("The request could not be understood. Please go back and try again."),
    404: lazy_gettext("There is no page at this address."),
    405: lazy_gettext("This page cannot be used that way."),
    409: lazy_gettext("This petition is not accepting signatures."),
    413: lazy_gettext("What you sent is too large. Please shorten your comment and try again."),
    429: lazy_gettext("Too many requests. Please wait a moment and try again."),
    500: lazy_gettext("Something went wrong on our side. Nothing you sent was kept."),
    503: lazy_gettext("The service is busy. Please try again in a minute."),
}


def create_app(config: Config | None = None) -> Flask:
    """Build the Flask app for ``config`` (read from ``SAMLENG_*`` variables when None)."""
    config = config or load_config()
    app = Flask(
        __name__,
        instance_path=str(config.instance_path),
        template_folder=str(TEMPLATES),
        static_folder=None,
    )
    app.config.update(
        TESTING=config.testing,
        MAX_CONTENT_LENGTH=config.max_request_bytes,
        # Werkzeug refuses form bodies beyond these before parsing them.
        MAX_FORM_MEMORY_SIZE=config.max_request_bytes,
        MAX_FORM_PARTS=32,
        JSON_SORT_KEYS=False,
    )
    app.extensions["samleng.config"] = config

    from samleng.service.keys import derive_key

    app.extensions["samleng.form_key"] = derive_key(config.master_key, "form-token")
    app.extensions["samleng.pages"] = PageCache(config.page_cache_seconds)
    app.extensions["samleng.signing_keys"] = KeptKeys()
    app.extensions["samleng.vault"] = Vault(config.instance_path, config.master_key)
    app.extensions["samleng.epochs"] = CurrentEpoch()

    # Requests are never logged by the app; Werkzeug's own access log is silenced because it
    # writes the client address and the time of every request.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    db.init_app(app, config.database_url)
    i18n.init_app(app, config.default_lang)
    stylesheet = STYLESHEET.read_text(encoding="utf-8")
    # Our own file from the repository, not input; the CSP pins its hash.
    app.jinja_env.globals["stylesheet"] = Markup(stylesheet)  # noqa: S704
    security.init_app(app, stylesheet, config.onion_address)

    from samleng.service import cli, public, transparency

    app.register_blueprint(public.root)
    app.register_blueprint(public.bp)
    app.register_blueprint(transparency.bp)
    cli.register(app)
    ratelimit.init_app(app, config)
    app.extensions["samleng.mailer"] = mail.mailer_for(
        config.smtp_url, config.demo, config.instance_path
    )
    admin.init_app(app, config)

    if config.seal_interval > 0 and not config.testing:
        scheduler = SealScheduler(
            app.extensions["samleng.engine"], app.extensions["samleng.vault"], config.seal_interval
        )
        app.extensions["samleng.scheduler"] = scheduler
        app.before_request(scheduler.start_once)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        g.lang = i18n.current_lang(config.default_lang)
        code = error.code or 500
        message = ERROR_MESSAGES.get(code, ERROR_MESSAGES[400])
        response = app.make_response(
            (render_template("public/error.html", code=code, message=message), code)
        )
        if code == 429:
            response.headers["Retry-After"] = str(ratelimit.retry_after_seconds(app, error))
        return response

    @app.errorhandler(RedisError)
    @app.errorhandler(ratelimit.Overloaded)
    def _overloaded(_error: Exception) -> Any:
        # Shed after the short wait for an Argon2 slot (SAMLENG_ARGON2_WAIT) rather than queue
        # without bound: a request queued longer would only time out later.
        # A RedisError reaches here when Redis fails under a request that was already talking
        # to it (flask-limiter falls back only for the requests after); it is busy, not broken.
        g.lang = i18n.current_lang(config.default_lang)
        # A shed signature: the signer sees that it was not counted, with the form to send
        # again (public.sign_again_page); elsewhere the plain busy page.
        page = None
        if request.endpoint == "public.sign" and request.view_args:
            page = public.sign_again_page(request.view_args["slug"])
        response = app.make_response(
            page
            or (render_template("public/error.html", code=503, message=ERROR_MESSAGES[503]), 503)
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
        g.lang = i18n.current_lang(config.default_lang)
        return render_template("public/error.html", code=500, message=ERROR_MESSAGES[500]), 500

    return app
