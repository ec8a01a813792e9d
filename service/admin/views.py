"""The admin's pages. Views are thin: check who is asking, call a service function, render.

Every request loads the server-side session from the ``__Host-`` cookie; every POST but the
login form carries the session's CSRF token (the login form's token is bound to a cookie of
its own). A petition the account may not see is answered 404, like one that does not exist.
The admin speaks Khmer and English: the organiser's choice (a small cookie of the admin's
own, scoped to /admin/), else the browser's preferred language, else English.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext, lazy_gettext
from sqlalchemy.orm import Session

from samleng.crypto.errors import Error as CryptoError
from samleng.service.admin import accounts as acc
from samleng.service.admin import drafts, logins, throttle, totp
from samleng.service.admin.errors import (
    AccountError,
    LoginFailed,
    PasswordPolicyError,
    WrongCode,
)
from samleng.service.petitions import endorsements, timeline
from samleng.service.petitions import organisations as orgs
from samleng.service.petitions.lifecycle import (
    close_expired,
    close_petition,
    create_petition,
    custody_trail,
    forget_petition,
    open_petition,
)
from samleng.service.platform import trail
from samleng.service.platform.config import Config
from samleng.service.platform.context import services
from samleng.service.platform.db import scrub
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import (
    N_,
    ClosingDateInPast,
    Error,
    InputError,
    OrganisationError,
    PetitionNotFound,
    PetitionStateError,
    SlugUnavailable,
    translated,
)
from samleng.service.platform.gate import WorkGate
from samleng.service.platform.keys import derive_key
from samleng.service.platform.markdown import render_markdown
from samleng.service.platform.models import (
    LANGUAGES,
    Account,
    Endorsement,
    Organisation,
    Petition,
    PetitionStatus,
    organisers_of,
    utc_today,
)
from samleng.service.platform.ratelimit import RateLimits, client_key
from samleng.service.signing.forms import SignForm, parse_paper_form
from samleng.service.signing.paper import enter_paper_form, paper_tallies
from samleng.service.signing.signatures import signing_material
from samleng.service.tlog import witnesses
from samleng.service.tlog.growth import chart, daily_counts
from samleng.service.tlog.store import latest_checkpoint, seal_all
from samleng.service.web.security import from_admin_listener

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Petition texts are longer than a sign form: allow more for the admin's requests only.
MAX_ADMIN_REQUEST_BYTES = 256 * 1024
MAX_ADMIN_FORM_PARTS = 64
# The same answer for every slug already taken, so that it does not tell an organiser
# which hidden drafts exist.
SLUG_TAKEN = lazy_gettext("This slug cannot be used. Choose another.")
# Password hashes at once per process (logins, and confirming a change of password or
# authenticator); more are refused with a 503 rather than queued.
PASSWORD_SLOTS = 1
# Endpoints that answer without a session.
_OPEN_ENDPOINTS = frozenset({"admin.login", "admin.language"})
# The organiser's language, chosen with the switch at the top of every admin page. The admin
# is organisers' ground: this cookie is never sent to the public pages (path /admin/).
LANGUAGE_COOKIE = "samleng_admin_lang"
_LANGUAGE_COOKIE_SCOPE = {"path": "/admin/", "secure": True, "httponly": True, "samesite": "Strict"}
# What an account with a one-time password may reach (`samleng admin reset-password`).
_ONE_TIME_PASSWORD_ENDPOINTS = frozenset({"admin.me", "admin.change_password", "admin.logout"})
_COOKIE = {"secure": True, "httponly": True, "samesite": "Strict", "path": "/"}


def _config() -> Config:
    return services().config


def _admin() -> AdminServices:
    admin = services().admin
    if admin is None:  # the blueprint is registered only with them
        raise RuntimeError("the admin is switched off")
    return admin


def _csrf_key() -> bytes:
    return _admin().csrf_key


def _account() -> Account:
    account: Account = g.admin_account
    return account


def _timeouts() -> logins.Timeouts:
    cfg = _config()
    return logins.Timeouts(idle=cfg.admin_idle_timeout, absolute=cfg.admin_absolute_timeout)


@bp.url_value_preprocessor
def _guard(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Runs before every before_request hook (the limiter's too), so a request that did not
    # come through nginx's admin listener is refused before anything else looks at it.
    cfg = _config()
    if not from_admin_listener(cfg.admin_listener_secret, cfg.circuit_proxies):
        abort(404)
    g.lang = _chosen_language()
    request.max_content_length = (
        # A response's scan may be large; everything else is a small form.
        timeline.MAX_ATTACHMENT + MAX_ADMIN_REQUEST_BYTES
        if request.endpoint == "admin.timeline_response"
        else MAX_ADMIN_REQUEST_BYTES
    )
    request.max_form_memory_size = MAX_ADMIN_REQUEST_BYTES
    request.max_form_parts = MAX_ADMIN_FORM_PARTS


def _chosen_language() -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "en"


def _back_to(target: str) -> str:
    """``target`` if it is an admin page of this site, else the admin's front page."""
    if target.startswith("/admin/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("admin.index")


def language_url(lang: str) -> str:
    """The switch to ``lang`` that comes back to this page (a page shown after a POST
    comes back to the dashboard it belongs to, or the front page)."""
    if request.method == "GET":
        here = request.full_path.rstrip("?")
    elif request.view_args and "slug" in request.view_args:
        here = url_for("admin.petition", slug=request.view_args["slug"])
    else:
        here = url_for("admin.index")
    return url_for("admin.language", lang=lang, next=here)


@bp.get("/language/<lang>")
def language(lang: str) -> Any:
    """Switch the admin to ``lang`` and go back to the page the organiser was on."""
    if lang not in LANGUAGES:
        abort(404)
    response = redirect(_back_to(request.args.get("next", "")))
    response.set_cookie(LANGUAGE_COOKIE, lang, max_age=365 * 86400, **_LANGUAGE_COOKIE_SCOPE)  # type: ignore[arg-type]
    return response


@bp.before_request
def _refuse_nul() -> Any:
    # No organiser types a NUL, and PostgreSQL refuses one in any text (a 500 otherwise):
    # such a form is refused as a whole, before it is looked at.
    if any("\x00" in value for values in request.form.listvalues() for value in values):
        abort(400)
    return None


@bp.before_request
def _authenticate() -> Any:
    session_id = request.cookies.get(logins.SESSION_COOKIE, "")
    account = logins.load_session(get_session(), session_id, _timeouts()) if session_id else None
    g.admin_account = account
    g.admin_session_id = session_id if account is not None else None
    if request.endpoint in _OPEN_ENDPOINTS:
        return None
    if account is None:
        response = redirect(url_for("admin.login"))
        if session_id:
            response.delete_cookie(logins.SESSION_COOKIE, **_cookie_scope())
        return response
    if request.method == "POST" and not logins.csrf_valid(
        _csrf_key(), session_id, request.form.get("csrf", "")
    ):
        abort(403)
    if account.must_change_password and request.endpoint not in _ONE_TIME_PASSWORD_ENDPOINTS:
        # An operator reset the password: nothing else until the organiser has chosen one.
        return redirect(url_for("admin.me"))
    return None


@bp.after_request
def _no_store(response: Response) -> Response:
    # Admin pages show what only organisers may see: never kept by a browser or a proxy.
    response.headers["Cache-Control"] = "no-store"
    if request.method == "POST":
        # A petition may have changed: this worker shows it at once, the others within
        # SAMLENG_PAGE_CACHE_SECONDS; and no worker keeps its keys more than ten seconds.
        services().pages.clear()
        services().signing_material.clear()
    return response


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    session_id = g.get("admin_session_id")
    return {
        "csrf": logins.csrf_token(_csrf_key(), session_id) if session_id else "",
        "account": g.get("admin_account"),
        "admin_language_url": language_url,
        "status_name": _status_name,
        "role_name": _role_name,
        "mode_name": _mode_name,
    }


_STATUS_NAMES = {
    "draft": lazy_gettext("draft"),
    "open": lazy_gettext("open"),
    "closed": lazy_gettext("closed"),
    "forgotten": lazy_gettext("forgotten"),
}
_ROLE_NAMES = {"admin": lazy_gettext("administrator"), "organiser": lazy_gettext("organiser")}


_MODE_NAMES = {
    "phone": lazy_gettext("phone number"),
    "email": lazy_gettext("email address"),
    "none": lazy_gettext("none"),
}


def _mode_name(mode: str) -> str:
    return str(_MODE_NAMES.get(mode, mode))


def _status_name(status: str) -> str:
    return str(_STATUS_NAMES.get(status, status))


def _role_name(role: str) -> str:
    return str(_ROLE_NAMES.get(role, role))


def _cookie_scope() -> dict[str, Any]:
    return {"path": "/", "secure": True, "httponly": True, "samesite": "Strict"}


def _require_admin() -> None:
    if _account().role != "admin":
        abort(404)


def _said(error: BaseException) -> str:
    """A refusal of the service layer, in the reader's language (as far as the catalogue
    has its message; the values it names stay as they are)."""
    return translated(error, gettext)


def _petition(slug: str) -> Petition:
    """The petition if the logged-in account may act on it; 404 otherwise."""
    try:
        return acc.petition_for(get_session(), _account(), slug)
    except PetitionNotFound:
        abort(404)


def _organisation(account: Account) -> Organisation | None:
    if account.organisation_id is None:
        return None
    return get_session().get(Organisation, account.organisation_id)


def _record(action: str, petition: Petition | None = None, detail: str = "") -> None:
    organisation = _organisation(_account())
    trail.record(
        get_session(),
        _account().name,
        action,
        petition_slug=petition.slug if petition else None,
        detail=detail,
        organisation=organisation.handle if organisation else "",
    )


# Logging in and out.


def _login_page(error: str | None = None, status: int = 200) -> Any:
    login_id = request.cookies.get(logins.LOGIN_COOKIE, "")
    fresh = not login_id or len(login_id) > 100
    if fresh:
        login_id = logins.new_session_id()
    csrf = logins.csrf_token(_csrf_key(), login_id, "login")
    response = current_app.make_response(
        (render_template("admin/login.html", login_csrf=csrf, error=error), status)
    )
    if fresh:
        response.set_cookie(logins.LOGIN_COOKIE, login_id, **_COOKIE)  # type: ignore[arg-type]
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form: name, password, and the authenticator code if one is set up.

    In this order: the form's CSRF token (so that another site cannot spend an organiser's
    attempts), the login throttles (service.admin.throttle), the password hash in its own
    bounded slot, and every refusal goes to the audit trail under the account it names.
    """
    if request.method == "GET":
        if g.admin_account is not None:
            return redirect(url_for("admin.index"))
        return _login_page()
    name = request.form.get("name", "")[:100]
    if not logins.csrf_valid(
        _csrf_key(),
        request.cookies.get(logins.LOGIN_COOKIE),
        request.form.get("csrf", ""),
        "login",
    ):
        _record_refusal(name, "login-refused", "the form's token was missing or wrong")
        return _login_page(gettext("This form expired. Please log in again."), 403)
    throttles = _throttles()
    client = client_key()
    wait = throttles.attempt(client)
    if wait is not None:
        return _throttled(name, wait, "too many attempts from one client")
    wait = throttles.refused(client, name)
    if wait is not None:
        return _throttled(name, wait, "too many failures from one client")
    contested = throttles.contested(name)
    session = get_session()
    try:
        with _password_slot():
            account = acc.authenticate(
                session,
                name,
                request.form.get("password", ""),
                request.form.get("code", ""),
                master_key=_config().master_key,
            )
    except LoginFailed:
        session.rollback()
        throttles.failed(client, name)
        if contested is not None:
            # The same answer as a right password without an authenticator code below.
            return _throttled(name, contested, "too many failures from many clients")
        _record_refusal(name, "login-failed")
        return _login_page(gettext("Wrong name, password or code."), 401)
    if contested is not None and account.wrapped_totp_secret is None:
        session.rollback()
        return _throttled(name, contested, "too many failures from many clients")
    # A new session id at every login: an id planted before login is never promoted.
    session_id = logins.start_session(session, account, request.cookies.get(logins.SESSION_COOKIE))
    trail.record(session, account.name, "login")
    session.commit()
    response = redirect(url_for("admin.index"))
    response.set_cookie(logins.SESSION_COOKIE, session_id, **_COOKIE)  # type: ignore[arg-type]
    response.delete_cookie(logins.LOGIN_COOKIE, **_cookie_scope())
    return response


def _throttles() -> throttle.LoginThrottles:
    return _admin().login_throttles


def _password_slot() -> AbstractContextManager[None]:
    """A slot of the admin's own Argon2 gate for one password hash; Overloaded (503) when
    it is taken. Not the signing gate: a flood of logins must never hold signing's slots."""
    return _admin().password_gate.enter()


def _record_refusal(name: str, action: str, detail: str = "") -> None:
    """Record a refused login under the account it names; a name that is no account is not
    written anywhere (it may be a password typed into the wrong field)."""
    session = get_session()
    session.rollback()
    known = acc.find_account(session, name)
    acc.end_read(session)
    if known is not None:
        trail.record(session, known.name, action, detail=detail)
        session.commit()


def _throttled(name: str, wait: int, why: str) -> Any:
    _record_refusal(name, "login-throttled", why)
    response = _login_page(
        gettext("Too many attempts. Wait %(seconds)s seconds, then try again.", seconds=wait),
        429,
    )
    response.headers["Retry-After"] = str(wait)
    return response


@bp.post("/logout")
def logout() -> Any:
    """End this session."""
    session = get_session()
    _record("logout")
    logins.end_session(session, g.admin_session_id)
    session.commit()
    response = redirect(url_for("admin.login"))
    response.delete_cookie(logins.SESSION_COOKIE, **_cookie_scope())
    return response


# Petitions.


@bp.get("/")
def index() -> Any:
    """The petitions this account may see."""
    session = get_session()
    close_expired(session, utc_today())
    rows = []
    for petition in acc.visible_petitions(session, _account()):
        state = latest_checkpoint(session, petition)
        title = petition.text(g.lang).get("title", petition.slug)
        rows.append((petition, title, 0 if state is None else state.count))
    return render_template("admin/index.html", rows=rows)


def _mail_available() -> bool:
    return services().mailer is not None


def _key_upload() -> bytes | None:
    upload = request.files.get("details_key")
    if upload is None or not upload.filename:
        return None
    data: bytes = upload.read(drafts.MAX_KEY_FILE_BYTES + 1)
    return data


def _check_mail(form: drafts.DraftForm) -> drafts.DraftForm:
    if form.values.get("verification_mode") == "email" and not _mail_available():
        errors = dict(form.errors)
        errors["verification_mode"] = gettext(
            "Email verification needs mail: set SAMLENG_SMTP_URL on the server first."
        )
        return dataclasses.replace(form, errors=errors)
    return form


_TEXT_FIELD_NAMES = {
    "title": lazy_gettext("Title"),
    "target": lazy_gettext("Target"),
    "summary": lazy_gettext("Summary"),
    "body": lazy_gettext("Body"),
}


def _draft_page(
    form_values: dict[str, str], errors: Mapping[str, str | Error], **context: Any
) -> Any:
    return render_template(
        "admin/draft.html",
        values=form_values,
        # drafts.py loads no Flask: its messages are marked for the catalogue (or errors with
        # their values) and said here.
        errors={
            field: translated(message, gettext)
            if isinstance(message, Error)
            else gettext(str(message))
            for field, message in errors.items()
        },
        languages=LANGUAGES,
        text_fields=drafts.TEXT_LIMITS,
        field_names=_TEXT_FIELD_NAMES,
        **context,
    )


@bp.route("/new", methods=["GET", "POST"])
def new() -> Any:
    """Create a draft petition."""
    if request.method == "GET":
        return _draft_page({"goal": "1000", "region": "KH", "identifier_mode": "phone"}, {})
    form = _check_mail(
        drafts.parse_draft_form(request.form, _key_upload(), new=True, today=utc_today())
    )
    if form.errors:
        return _draft_page(dict(form.values), dict(form.errors)), 400
    cfg = _config()
    session = get_session()
    if form.custody is None:  # parse_draft_form reports it missing; never here
        abort(400)
    try:
        petition = create_petition(
            session,
            vault=services().vault,
            origin=cfg.origin,
            slug=form.values["slug"],
            texts=form.texts,
            goal=form.goal,
            identifier_mode=form.values["identifier_mode"],
            verification_mode=form.values["verification_mode"],
            region=form.values["region"],
            details_public_key=form.custody.public_keys[0],
            custody=form.custody,
            argon2=cfg.argon2,
            closes_on=form.closes_on,
            today=utc_today(),
            photos=form.values["photos"],
        )
    except SlugUnavailable:
        session.rollback()
        return _draft_page(dict(form.values), {"slug": str(SLUG_TAKEN)}), 400
    except ClosingDateInPast:
        # The form checked the date against the same day; only midnight (UTC) gets here.
        session.rollback()
        return _draft_page(dict(form.values), {"closes_on": drafts.PAST_DEADLINE}), 400
    except ValueError as exc:
        session.rollback()
        return _draft_page(dict(form.values), {"slug": _said(exc)}), 400
    organisation = _organisation(_account())
    if organisation is not None:
        # The draft is its organisation's: every organiser of it may act on it.
        orgs.set_organisers(session, petition, [organisation])
    elif _account().role != "admin":
        acc.grant(session, _account(), petition)
    _record("create", petition, custody_trail(form.custody))
    session.commit()
    return redirect(url_for("admin.petition", slug=petition.slug))


@bp.route("/p/<slug>/edit", methods=["GET", "POST"])
def edit(slug: str) -> Any:
    """Change a draft (texts are frozen once it opens)."""
    petition = _petition(slug)
    if petition.status != PetitionStatus.DRAFT:
        return _dashboard(petition, error=gettext("Only a draft can be changed."), status=409)
    if request.method == "GET":
        return _draft_page(drafts.form_values(petition), {}, petition=petition)
    form = _check_mail(
        drafts.parse_draft_form(
            request.form, _key_upload(), new=False, today=utc_today(), current=petition.custody()
        )
    )
    values = {**dict(form.values), "slug": petition.slug}
    if form.errors:
        return _draft_page(values, dict(form.errors), petition=petition), 400
    try:
        drafts.update_draft(get_session(), petition, form, utc_today())
    except ClosingDateInPast:
        get_session().rollback()
        return _draft_page(values, {"closes_on": drafts.PAST_DEADLINE}, petition=petition), 400
    _record("edit", petition)
    get_session().commit()
    return redirect(url_for("admin.petition", slug=petition.slug))


@bp.get("/p/<slug>/preview/<lang>")
def preview(slug: str, lang: str) -> Any:
    """The petition's text in one language as signers will see it."""
    petition = _petition(slug)
    if lang not in petition.texts:
        abort(404)
    text = petition.text(lang)
    return render_template(
        "admin/preview.html",
        petition=petition,
        lang=lang,
        text=text,
        body=render_markdown(text.get("body", "")),
    )


def _dashboard(
    petition: Petition, *, error: str | None = None, message: str | None = None, status: int = 200
) -> Any:
    session = get_session()
    export_zip = None
    if (
        petition.status in (PetitionStatus.CLOSED, PetitionStatus.FORGOTTEN)
        and "log.bundle_zip" in current_app.view_functions
    ):
        export_zip = url_for("log.bundle_zip", slug=petition.slug)
    growth_days = daily_counts(session, petition)
    return (
        render_template(
            "admin/petition.html",
            petition=petition,
            title=petition.text(g.lang).get("title", petition.slug),
            state=latest_checkpoint(session, petition),
            seal_interval=_config().seal_interval,
            per_day=drafts.signatures_per_day(session, petition),
            growth=chart(growth_days),
            growth_days=growth_days,
            grantees=acc.grantees(session, petition),
            organisers=organisers_of(session, petition.id),
            endorsements=endorsements.endorsements_of(session, petition),
            all_organisations=orgs.organisations(session),
            all_accounts=acc.accounts(session) if _account().role == "admin" else [],
            events=trail.events(session, petition_slug=petition.slug, limit=50),
            export_zip=export_zip,
            witnesses=witnesses.witnesses_of(session, petition, removed=True),
            coverage=witnesses.coverage(session, petition),
            mail_available=_mail_available(),
            error=error,
            message=message,
        ),
        status,
    )


@bp.get("/p/<slug>")
def petition(slug: str) -> Any:
    """A petition's dashboard: its state, count, signatures per day, checkpoint, actions."""
    close_expired(get_session(), utc_today())
    return _dashboard(_petition(slug))


def _lifecycle(slug: str, action: str, change: Callable[[Session, Petition], str]) -> Any:
    """Run one lifecycle step, record it, and show the dashboard with its outcome."""
    petition = _petition(slug)
    session = get_session()
    try:
        detail = change(session, petition)
    except (PetitionStateError, ValueError) as exc:
        session.rollback()
        return _dashboard(petition, error=_said(exc), status=409)
    _record(action, petition, detail)
    session.commit()
    return redirect(url_for("admin.petition", slug=petition.slug))


@bp.post("/p/<slug>/open")
def open_(slug: str) -> Any:
    """Open a draft: its texts are frozen into petition.json and the log starts."""

    def change(session: Session, petition: Petition) -> str:
        open_petition(session, petition, services().vault, utc_today(), can_mail=_mail_available())
        return ""

    return _lifecycle(slug, "open", change)


@bp.post("/p/<slug>/close")
def close(slug: str) -> Any:
    """Stop accepting signatures."""

    def change(session: Session, petition: Petition) -> str:
        close_petition(session, petition)
        return "by hand"

    return _lifecycle(slug, "close", change)


@bp.post("/p/<slug>/forget")
def forget(slug: str) -> Any:
    """Destroy the dedup key and every token of a closed petition, once its slug is typed."""
    engine, vault = (
        services().engine,
        services().vault,
    )

    def change(session: Session, petition: Petition) -> str:
        if request.form.get("confirm_slug", "").strip() != petition.slug:
            raise InputError(N_("type the petition's slug to confirm; nothing was changed"))
        # Whatever still waits is sealed first: its dedup token is still to be checked.
        session.rollback()
        seal_all(engine, vault)
        destroyed = forget_petition(session, petition, vault)
        return f"{destroyed} tokens destroyed"

    answer = current_app.make_response(_lifecycle(slug, "forget", change))
    if answer.status_code < 400:
        for problem in scrub(engine):
            current_app.logger.warning("forget %s: %s", slug, problem)
    return answer


def _grant_change(slug: str, give: bool) -> Any:
    _require_admin()
    petition = _petition(slug)
    session = get_session()
    target = acc.find_account(session, request.form.get("account", ""))
    if target is None:
        return _dashboard(petition, error=gettext("No such account."), status=400)
    changed = (
        acc.grant(session, target, petition) if give else acc.revoke(session, target, petition)
    )
    if changed:
        _record("grant" if give else "revoke", petition, target.name)
    session.commit()
    return redirect(url_for("admin.petition", slug=petition.slug))


@bp.post("/p/<slug>/grant")
def grant(slug: str) -> Any:
    """Give an organiser this petition (admins only)."""
    return _grant_change(slug, True)


@bp.post("/p/<slug>/revoke")
def revoke(slug: str) -> Any:
    """Take this petition away from an organiser (admins only)."""
    return _grant_change(slug, False)


# Witnesses (service/tlog/witnesses.py): who cosigns the petition's checkpoints.


@bp.post("/p/<slug>/witnesses/add")
def witness_add(slug: str) -> Any:
    """Ask a witness to cosign this petition's checkpoints (frozen into the policy while a
    draft; asked, but not in the frozen policy, once open)."""

    def change(session: Session, petition: Petition) -> str:
        witness = witnesses.add_witness(
            session,
            petition,
            name=request.form.get("name", "").strip(),
            url=request.form.get("url", "").strip(),
            vkey=request.form.get("vkey", "").strip(),
        )
        return f"{witness.name} {witness.url}" + ("" if witness.frozen else " (not in the policy)")

    return _lifecycle(slug, "witness-add", change)


@bp.post("/p/<slug>/witnesses/remove")
def witness_remove(slug: str) -> Any:
    """Stop asking a witness; the cosignatures it made stay published."""

    def change(session: Session, petition: Petition) -> str:
        return witnesses.remove_witness(session, petition, request.form.get("name", "")).name

    return _lifecycle(slug, "witness-remove", change)


@bp.post("/p/<slug>/witnesses/quorum")
def witness_quorum(slug: str) -> Any:
    """Set how many witnesses must cosign a draft's checkpoints (empty: all of them)."""

    def change(session: Session, petition: Petition) -> str:
        text = request.form.get("quorum", "").strip()
        if text and not (text.isascii() and text.isdigit() and len(text) <= 2):
            raise ValueError("the quorum is a number of witnesses, e.g. 2")
        witnesses.set_quorum(session, petition, int(text) if text else None)
        return text or "all"

    return _lifecycle(slug, "witness-quorum", change)


@bp.post("/p/<slug>/witnesses/resume")
def witness_resume(slug: str) -> Any:
    """Publish checkpoints again after a split-view alert (administrators only)."""
    _require_admin()

    def change(session: Session, petition: Petition) -> str:
        reason = witnesses.resume(petition)
        if reason is None:
            raise PetitionStateError("the petition was publishing checkpoints; nothing changed")
        return reason

    return _lifecycle(slug, "witness-resume", change)


# The campaign's timeline (service/petitions/timeline.py): updates, deliveries, responses.


def _timeline_page(
    petition: Petition, errors: dict[str, str] | None = None, status: int = 200
) -> Any:
    session = get_session()
    return render_template(
        "admin/timeline.html",
        petition=petition,
        title=petition.text(g.lang).get("title", petition.slug),
        updates=timeline.updates_of(session, petition),
        events=timeline.events_of(session, petition),
        steps=" ".join(str(step) for step in petition.goal_steps or []),
        values=request.form if errors else {},
        errors={field: gettext(message) for field, message in (errors or {}).items()},
        today=utc_today().isoformat(),
        languages=LANGUAGES,
    ), status


@bp.get("/p/<slug>/timeline")
def timeline_page(slug: str) -> Any:
    """The campaign after signing starts: post updates, record deliveries and responses."""
    return _timeline_page(_petition(slug))


def _timeline_change(slug: str, action: str, change: Callable[[Session, Petition], str]) -> Any:
    """Apply one change to the timeline; a refused field is shown at its place (400)."""
    petition = _petition(slug)
    session = get_session()
    try:
        detail = change(session, petition)
    except timeline.TimelineInputError as exc:
        session.rollback()
        return _timeline_page(petition, {exc.field: str(exc)}, 400)
    _record(action, petition, detail)
    session.commit()
    return redirect(url_for("admin.timeline_page", slug=petition.slug))


@bp.post("/p/<slug>/timeline/update")
def timeline_update(slug: str) -> Any:
    """Publish an update (Markdown, Khmer and/or English)."""

    def change(session: Session, petition: Petition) -> str:
        texts = {
            lang: {
                "title": request.form.get(f"{lang}-title", ""),
                "body": request.form.get(f"{lang}-body", ""),
            }
            for lang in LANGUAGES
        }
        update = timeline.post_update(session, petition, texts)
        return str(next(iter(update.texts.values()))["title"])

    return _timeline_change(slug, "update", change)


@bp.post("/p/<slug>/timeline/delivery")
def timeline_delivery(slug: str) -> Any:
    """Record a delivery of the petition to an institution."""

    def change(session: Session, petition: Petition) -> str:
        day = timeline.parse_day(request.form.get("day", ""), "day", utc_today())
        event = timeline.record_delivery(session, petition, day=day, fields=request.form)
        return f"{event.day.isoformat()} {event.institution}"

    return _timeline_change(slug, "delivery", change)


@bp.post("/p/<slug>/timeline/response")
def timeline_response(slug: str) -> Any:
    """Record an institution's response, with an optional scan (PDF, PNG or JPEG)."""

    def change(session: Session, petition: Petition) -> str:
        day = timeline.parse_day(request.form.get("day", ""), "day", utc_today())
        upload = request.files.get("attachment")
        data = b""
        if upload:
            try:
                data = upload.read(timeline.MAX_ATTACHMENT + 1)
            finally:
                upload.close()  # a large upload is spooled to a temporary file: closed at once
        event = timeline.record_response(
            session,
            petition,
            day=day,
            fields=request.form,
            attachment=data or None,
            folder=Path(current_app.instance_path) / timeline.ATTACHMENTS,
        )
        return f"{event.day.isoformat()} {event.institution}"

    return _timeline_change(slug, "response", change)


@bp.post("/p/<slug>/timeline/steps")
def timeline_steps(slug: str) -> Any:
    """Set the steps of the goal (15000 100000 500000); empty: the goal alone."""

    def change(_session: Session, petition: Petition) -> str:
        steps = timeline.parse_steps(request.form.get("steps", ""))
        timeline.set_goal_steps(petition, steps)
        return " ".join(map(str, steps or [])) or "the goal alone"

    return _timeline_change(slug, "goal-steps", change)


# Paper signatures (service/signing/paper.py): forms signed on paper, typed in one by one.


def _paper_page(
    petition: Petition, form: SignForm | None = None, status: int = 200, entered: int = 0
) -> Any:
    session = get_session()
    state = latest_checkpoint(session, petition)
    return render_template(
        "admin/paper.html",
        petition=petition,
        title=petition.text(g.lang).get("title", petition.slug),
        open=petition.status == PetitionStatus.OPEN and not petition.past_deadline(utc_today()),
        values=form.values if form and form.errors else {},
        errors=form.errors if form else {},
        entered=entered,
        tallies=paper_tallies(session, petition.id),
        state=state,
    ), status


@bp.get("/p/<slug>/paper")
def paper_page(slug: str) -> Any:
    """Enter paper forms: one form per signature, keyboard only."""
    petition = _petition(slug)
    entered = request.args.get("entered", "")
    return _paper_page(petition, entered=int(entered) if entered.isdigit() else 0)


_NOT_TAKING = lazy_gettext(
    "This petition does not take signatures now, so paper forms cannot be entered."
)


@bp.post("/p/<slug>/paper")
def paper_enter(slug: str) -> Any:
    """Enter one paper form; then the empty form again, for the next one."""
    petition = _petition(slug)
    session = get_session()
    if petition.status != PetitionStatus.OPEN or petition.past_deadline(utc_today()):
        return _paper_page(petition, SignForm(values={}, errors={"form": _NOT_TAKING}), 409)
    try:
        keys = signing_material(petition, services().vault)
    except PetitionStateError:
        return _paper_page(petition, SignForm(values={}, errors={"form": _NOT_TAKING}), 409)
    form = parse_paper_form(request.form, keys)
    if form.errors:
        return _paper_page(petition, form, 400)
    try:
        entered = enter_paper_form(
            session, keys, form.submission(), _account().name, epochs=services().epochs
        )
    except PetitionStateError:
        session.rollback()
        return _paper_page(petition, SignForm(values={}, errors={"form": _NOT_TAKING}), 409)
    # The page after each form says how many this account entered: nothing of the form.
    return redirect(url_for("admin.paper_page", slug=slug, entered=entered))


# Endorsements (service/petitions/endorsements.py): organisations named publicly.


def _endorsement_change(
    slug: str, action: str, change: Callable[[Session, Petition, Endorsement], None]
) -> Any:
    """Apply ``change`` to the endorsement the form names, recording its names."""

    def apply(session: Session, petition: Petition) -> str:
        row = endorsements.endorsement_of(session, petition, request.form.get("endorsement", ""))
        detail = f"{row.name_en} / {row.name_km}"
        change(session, petition, row)
        return detail

    return _lifecycle(slug, action, apply)


@bp.post("/p/<slug>/endorsements/add")
def endorsement_add(slug: str) -> Any:
    """Name an organisation that endorses the petition, checked out of band by the organiser."""

    def change(session: Session, petition: Petition) -> str:
        fields = endorsements.check_fields(
            request.form.get("name_km", ""),
            request.form.get("name_en", ""),
            request.form.get("website", ""),
        )
        row = endorsements.add_endorsement(session, petition, fields)
        return f"{row.name_en} / {row.name_km}"

    return _lifecycle(slug, "endorsement-add", change)


@bp.post("/p/<slug>/endorsements/approve")
def endorsement_approve(slug: str) -> Any:
    """Approve a request from the public form: it goes into the log at the next seal."""
    return _endorsement_change(
        slug, "endorsement-approve", lambda s, p, row: endorsements.approve(s, p, row)
    )


@bp.post("/p/<slug>/endorsements/reject")
def endorsement_reject(slug: str) -> Any:
    """Refuse a request: it is deleted with what the requester typed."""
    return _endorsement_change(
        slug, "endorsement-reject", lambda s, _p, row: endorsements.reject(s, row)
    )


@bp.post("/p/<slug>/endorsements/withdraw")
def endorsement_withdraw(slug: str) -> Any:
    """Withdraw an endorsement: a withdrawal record goes into the log."""
    return _endorsement_change(
        slug, "endorsement-withdraw", lambda s, p, row: endorsements.withdraw(s, p, row)
    )


# Organisations (service/petitions/organisations.py): who organises a petition.


@bp.post("/p/<slug>/organisers/add")
def organiser_add(slug: str) -> Any:
    """Name one more organisation among a draft's organisers."""

    def change(session: Session, petition: Petition) -> str:
        organisation = orgs.named_organisation(session, request.form.get("organisation", ""))
        orgs.add_organiser(session, petition, organisation)
        return organisation.handle

    return _lifecycle(slug, "organiser-add", change)


@bp.post("/p/<slug>/organisers/remove")
def organiser_remove(slug: str) -> Any:
    """Stop naming an organisation among a draft's organisers (not one's own)."""

    def change(session: Session, petition: Petition) -> str:
        organisation = orgs.named_organisation(session, request.form.get("organisation", ""))
        orgs.remove_organiser(session, petition, organisation, by=_account())
        return organisation.handle

    return _lifecycle(slug, "organiser-remove", change)


@bp.route("/organisations", methods=["GET", "POST"])
def organisations() -> Any:
    """Every organisation, and a form for a new one (admins only)."""
    _require_admin()
    session = get_session()
    error, status = None, 200
    if request.method == "POST":
        try:
            created = orgs.create_organisation(
                session,
                request.form.get("handle", ""),
                name_km=request.form.get("name_km", ""),
                name_en=request.form.get("name_en", ""),
                website=request.form.get("website", ""),
            )
        except OrganisationError as exc:
            session.rollback()
            error, status = _said(exc), 400
        else:
            _record("create-organisation", detail=f"{created.handle}: {created.name_en}")
            session.commit()
            return redirect(url_for("admin.organisations"))
    return render_template(
        "admin/organisations.html",
        organisations=orgs.organisations(session),
        values=request.form if error else {},
        error=error,
    ), status


# Accounts.


def _accounts_page(error: str | None = None, status: int = 200) -> Any:
    session = get_session()
    return render_template(
        "admin/accounts.html",
        accounts=acc.accounts(session),
        organisations={o.id: o for o in orgs.organisations(session)},
        error=error,
    ), status


def _chosen_organisation(session: Session) -> Organisation | None:
    """The organisation a form names by handle (none for an empty value)."""
    handle = request.form.get("organisation", "").strip()
    return orgs.named_organisation(session, handle) if handle else None


@bp.route("/accounts", methods=["GET", "POST"])
def accounts() -> Any:
    """Every account, and a form for a new one (admins only)."""
    _require_admin()
    session = get_session()
    error, status = None, 200
    if request.method == "POST":
        try:
            organisation = _chosen_organisation(session)
            created = acc.create_account(
                session,
                request.form.get("name", ""),
                request.form.get("role", ""),
                request.form.get("password", ""),
            )
            orgs.set_account_organisation(session, created, organisation)
        except (AccountError, PasswordPolicyError, OrganisationError) as exc:
            session.rollback()
            error, status = _said(exc), 400
        else:
            of = f", {organisation.handle}" if organisation else ""
            _record("create-account", detail=f"{created.name} ({created.role}{of})")
            session.commit()
            return redirect(url_for("admin.accounts"))
    return _accounts_page(error, status)


def _named_account(name: str) -> Account:
    """The account NAME, for an administrator; 404 for anyone else or no such account."""
    _require_admin()
    target = acc.find_account(get_session(), name)
    if target is None:
        abort(404)
    return target


@bp.post("/accounts/<name>/organisation")
def account_organisation(name: str) -> Any:
    """Change the organisation an account acts for (admins only)."""
    session, target = get_session(), _named_account(name)
    try:
        organisation = _chosen_organisation(session)
    except OrganisationError as exc:
        return _accounts_page(_said(exc), 400)
    orgs.set_account_organisation(session, target, organisation)
    _record(
        "account-organisation",
        detail=f"{target.name}: {organisation.handle if organisation else '(none)'}",
    )
    session.commit()
    return redirect(url_for("admin.accounts"))


@bp.post("/accounts/<name>/active")
def account_active(name: str) -> Any:
    """Disable (logging it out everywhere) or enable an account (admins only)."""
    session, target = get_session(), _named_account(name)
    try:
        acc.set_active(session, target, request.form.get("active") == "yes", by=_account())
    except AccountError:
        return _accounts_page(gettext("You cannot disable yourself."), 400)
    _record("enable-account" if target.active else "disable-account", detail=target.name)
    session.commit()
    return redirect(url_for("admin.accounts"))


@bp.get("/audit")
def audit_trail() -> Any:
    """The newest admin actions (admins only)."""
    _require_admin()
    return render_template("admin/audit.html", events=trail.events(get_session(), limit=500))


# The logged-in account itself.


def _me_page(**context: Any) -> Any:
    status = context.pop("status", 200)
    return render_template("admin/me.html", **context), status


@bp.get("/me")
def me() -> Any:
    """Change the password; set up or remove the authenticator."""
    return _me_page()


@bp.post("/me/password")
def change_password() -> Any:
    """Set a new password; every other session of the account ends."""
    session = get_session()
    account = _account()
    new_password = request.form.get("new", "")
    if new_password != request.form.get("repeat", ""):
        return _me_page(error=gettext("The two new passwords differ."), status=400)
    try:
        with _password_slot():
            acc.change_password(session, account, request.form.get("current", ""), new_password)
    except (LoginFailed, PasswordPolicyError) as exc:
        session.rollback()
        return _me_page(error=_said(exc), status=400)
    logins.end_all_sessions(session, account)
    session_id = logins.start_session(session, account, None)
    _record("change-password")
    session.commit()
    response = redirect(url_for("admin.me"))
    response.set_cookie(logins.SESSION_COOKIE, session_id, **_COOKIE)  # type: ignore[arg-type]
    return response


@bp.post("/me/totp/start")
def totp_start() -> Any:
    """Show a new secret to add to an authenticator app, and ask for its first code."""
    secret = totp.new_secret()
    return _me_page(
        totp_secret=totp.secret_text(secret),
        totp_uri=totp.provisioning_uri(secret, _account().name, "Samleng"),
    )


def _identity_error(exc: LoginFailed) -> str:
    if isinstance(exc, WrongCode):
        return str(gettext("The code from your current authenticator app is wrong or was used."))
    return str(gettext("The current password is wrong."))


@bp.post("/me/totp/enable")
def totp_enable() -> Any:
    """Turn the second factor on, or move it to a new app: asks for the password, the
    current app's code if one is set up, and the new app's first code."""
    session = get_session()
    text = request.form.get("secret", "")
    try:
        secret = totp.parse_secret_text(text)
        with _password_slot():
            acc.enable_totp(
                session,
                _account(),
                secret,
                request.form.get("code", ""),
                password=request.form.get("current", ""),
                current_code=request.form.get("current_code", ""),
                master_key=_config().master_key,
            )
    except (LoginFailed, ValueError, CryptoError) as exc:
        session.rollback()
        error = _identity_error(exc) if isinstance(exc, LoginFailed) else _said(exc)
        return _me_page(error=error, totp_secret=text, totp_uri=None, status=400)
    _record("totp-enable")
    session.commit()
    return redirect(url_for("admin.me"))


@bp.post("/me/totp/disable")
def totp_disable() -> Any:
    """Turn the second factor off (asks for the password and a code from the app)."""
    session = get_session()
    try:
        with _password_slot():
            acc.disable_totp(
                session,
                _account(),
                request.form.get("current", ""),
                request.form.get("current_code", ""),
                master_key=_config().master_key,
            )
    except LoginFailed as exc:
        session.rollback()
        return _me_page(error=_identity_error(exc), status=400)
    _record("totp-disable")
    session.commit()
    return redirect(url_for("admin.me"))


@dataclass(frozen=True)
class AdminServices:
    """What the admin keeps for its app: the login form's CSRF key, the login throttles and
    the password gate."""

    csrf_key: bytes
    login_throttles: throttle.LoginThrottles
    password_gate: WorkGate


def register(app: Flask, config: Config, rate_limits: RateLimits) -> AdminServices:
    """Add the blueprint to ``app``; the admin's services, for the factory to keep."""
    app.register_blueprint(bp)
    return AdminServices(
        csrf_key=derive_key(config.master_key, "admin-csrf"),
        login_throttles=throttle.LoginThrottles(
            rate_limits.limiter.storage,
            throttle.LoginLimits(
                per_client=config.ratelimit_login,
                per_account_client=config.ratelimit_login_account,
                per_account=config.ratelimit_login_account_all,
            ),
            day_keys=rate_limits.day_keys,
        ),
        # One password hash at a time per process, refused at once beyond it: a login flood
        # costs at most one core per process and never waits in (or for) signing's slots.
        password_gate=WorkGate(PASSWORD_SLOTS),
    )
