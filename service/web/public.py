"""Public pages: the petitions, the sign form, the answer with the receipt code.

Views are thin: parse the request, call a service function with the session, render.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import lazy_gettext
from limits import parse_many
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound

from samleng.crypto.errors import ReceiptFormatError
from samleng.crypto.receipts import format_receipt, parse_receipt, receipt_commitment
from samleng.crypto.tokens import Argon2Params, dedup_token
from samleng.service.petitions.endorsements import (
    EndorsementInputError,
    EndorsementQueueFull,
    check_fields,
    public_endorsements,
    request_endorsement,
)
from samleng.service.petitions.lifecycle import (
    open_petitions,
    public_petitions,
    signature_count,
)
from samleng.service.petitions.timeline import (
    days_without_response,
    goal_step,
    public_timeline,
    update_text,
    updates_of,
)
from samleng.service.platform.config import Config
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import (
    get_read_session,
    get_session,
    on_replica,
    reads_replica,
)
from samleng.service.platform.errors import (
    PetitionMisconfigured,
    PetitionNotFound,
    PetitionStateError,
)
from samleng.service.platform.gate import WorkGate
from samleng.service.platform.mail import Mailer, MailError, compose
from samleng.service.platform.markdown import render_markdown
from samleng.service.platform.models import (
    LANGUAGES,
    Petition,
    PetitionStatus,
    get_petition,
    organisers_of,
    utc_today,
)
from samleng.service.platform.ratelimit import current_client, own_limits
from samleng.service.signing.confirmation import (
    ConfirmationRequest,
    LinkExpired,
    LinkInvalid,
    check_link,
    confirm_signature,
    request_confirmation,
)
from samleng.service.signing.forms import (
    ALREADY_SENT,
    TOO_FAST_OR_OLD,
    SignForm,
    parse_sign_form,
    typed_values,
)
from samleng.service.signing.formtoken import (
    NGINX_FORM_MARK,
    NGINX_FORM_REQUEST,
    NGINX_FORM_SLOT,
    FormTokenError,
    FormTokenUsed,
)
from samleng.service.signing.photos import PhotoLimits, clean_photo
from samleng.service.signing.signatures import (
    SigningMaterial,
    TokenHasher,
    sign_petition,
    signing_material,
)
from samleng.service.tlog.growth import chart, daily_counts
from samleng.service.tlog.store import (
    ReceiptStatus,
    find_receipt,
    latest_checkpoint,
    request_withdrawal,
)
from samleng.service.tlog.witnesses import coverage
from samleng.service.web import keptpages
from samleng.service.web.security import request_hostname, transport_warning

bp = Blueprint("public", __name__, url_prefix="/<lang>")
root = Blueprint("root", __name__)


def config() -> Config:
    """The app's configuration object."""
    return services().config


@bp.url_value_preprocessor
def _pull_lang(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    lang = (values or {}).pop("lang", None)
    if lang not in LANGUAGES:
        abort(404)
    g.lang = lang


@bp.url_defaults
def _add_lang(_endpoint: str, values: dict[str, Any]) -> None:
    values.setdefault("lang", g.get("lang", config().default_lang))


# A petition outlives its keys: after forget, its page, count and receipt checks still answer
# from the public log, as signers were told they could check later.
_PUBLIC_STATUSES = (PetitionStatus.OPEN, PetitionStatus.CLOSED, PetitionStatus.FORGOTTEN)


def visible_petition(session: Session, slug: str) -> Petition:
    """A petition that the public may see (open, closed or forgotten), or 404 (drafts)."""
    try:
        petition = get_petition(session, slug)
    except PetitionNotFound:
        abort(404)
    if petition.status not in _PUBLIC_STATUSES:
        abort(404)
    return petition


def _query_value(text: str) -> str:
    """``text`` for a URL query; non-ASCII stays as it is (a third of the bytes of Khmer
    percent-encoded) and the browser encodes it when the link is followed."""
    return "".join(c if ord(c) > 127 else quote(c, safe="") for c in text)


def _share_links(url: str, title: str) -> dict[str, str]:
    """Share links that open the reader's own apps: email and Telegram.

    App links rather than a web sharer's address, so public pages keep to DESIGN §5's
    "no third-party URL"; nothing is loaded until the reader chooses to share.
    """
    page, subject = _query_value(url), _query_value(title)
    return {
        "email": f"mailto:?subject={subject}&body={page}",
        "telegram": f"tg://msg_url?url={page}&text={subject}",
    }


def _petition_html(
    session: Session, petition: Petition, form: SignForm | None, form_token: str
) -> str:
    """The petition page: text, progress, the sign form (with ``form``'s values and errors)."""
    state = latest_checkpoint(session, petition)
    count = 0 if state is None else state.count
    text = petition.text(g.lang)
    page_url = url_for("public.petition", slug=petition.slug, _external=True)
    updates = updates_of(session, petition)
    growth_days = daily_counts(session, petition)
    latest = updates[0] if updates else None
    latest_text = None if latest is None else update_text(latest, g.lang)
    return render_template(
        "public/petition.html",
        petition=petition,
        step=goal_step(petition, count),
        growth=chart(growth_days),
        growth_days=growth_days,
        latest_update=latest,
        latest_text=latest_text,
        latest_body=None if latest_text is None else render_markdown(latest_text["body"]),
        timeline=public_timeline(session, petition),
        waiting=days_without_response(session, petition, utc_today()),
        text=text,
        body=render_markdown(text.get("body", "")),
        description=text.get("summary") or text.get("target") or text["title"],
        page_url=page_url,
        share=_share_links(page_url, text["title"]),
        count=count,
        paper=0 if state is None else state.paper,
        photo_pledges=0 if state is None else state.photos,
        fingerprint=None if state is None else state.root[:8].hex(" ", 2),
        witnesses=coverage(session, petition),
        organisers=organisers_of(session, petition.id),
        endorsers=public_endorsements(session, petition),
        bundle_url=(
            None
            if petition.status == PetitionStatus.OPEN
            or "log.bundle_zip" not in current_app.view_functions
            else url_for("log.bundle_zip", slug=petition.slug)
        ),
        form=form,
        form_token=form_token,
        photo_megabytes=config().photo_max_bytes >> 20,
    )


def _render_petition(petition: Petition, form: SignForm | None, status: int) -> Any:
    """The petition page again, after a refused signature."""
    token = services().form_tokens.issue(petition.slug)
    return _petition_html(get_session(), petition, form, token), status


def _page_key(template: str, slug: str) -> tuple[Any, ...]:
    """What a kept page depends on besides the database: it shows its own address and warns
    about the connection."""
    where = (request.scheme, request.host, request.script_root, transport_warning())
    return (template, slug, g.lang, where)


def _kept_page(template: str, slug: str, render: Callable[[str], str], value: str) -> str:
    """``render``'s page, kept for a moment (service/web/pagecache.py), with ``value`` filled in."""
    return services().pages.page(_page_key(template, slug), render, value)


@root.get("/")
def home() -> Any:
    """Send visitors to the default language."""
    return redirect(url_for("public.index", lang=config().default_lang))


@root.get("/healthz")
@own_limits  # none: the health check answers whoever asks, however often
def healthz() -> Response:
    """Liveness: the process answers."""
    return Response("ok\n", mimetype="text/plain")


@root.get("/petitions.json")
@reads_replica
def petitions_json() -> Response:
    """Open data: every public petition with its titles, status, goal and count, and where
    its log is (absolute URLs on the configured origin). Cacheable for a few seconds."""
    session = get_read_session()
    listed = []
    for petition in public_petitions(session):
        state = latest_checkpoint(session, petition)
        log = f"https://{petition.origin}"
        listed.append(
            {
                "slug": petition.slug,
                "status": petition.status,
                "titles": {lang: text["title"] for lang, text in sorted(petition.texts.items())},
                "goal": petition.goal,
                "count": 0 if state is None else state.count,
                "online": 0 if state is None else state.online,
                "paper": 0 if state is None else state.paper,
                "photos": 0 if state is None else state.photos,
                "opens_on": petition.opens_on.isoformat() if petition.opens_on else None,
                "closes_on": petition.closes_on.isoformat() if petition.closes_on else None,
                "checkpoint": f"{log}/checkpoint",
                "count_json": f"{log}/count.json",
                "bundle": None if petition.status == PetitionStatus.OPEN else f"{log}/bundle.zip",
            }
        )
    response = jsonify({"petitions": listed})
    response.headers["Cache-Control"] = "public, max-age=5"
    return response


@bp.get("/")
@reads_replica
def index() -> Any:
    """The open petitions."""
    session = get_read_session()
    petitions = [(p, p.text(g.lang), signature_count(session, p)) for p in open_petitions(session)]
    return render_template("public/index.html", petitions=petitions)


@bp.get("/safety")
def safety() -> Any:
    """How Samleng protects signers and what it cannot protect."""
    return render_template("public/safety.html", onion_address=config().onion_address)


@bp.get("/p/<slug>")
@own_limits  # the page limits, counted here (platform.ratelimit.ClientLimits)
def petition(slug: str) -> Any:
    """The petition's text, its count and goal, and the sign form (kept for a second).

    Asked by nginx for its microcache, the page carries a slot where nginx puts each
    visitor's own form token (service/signing/formtoken.py, NGINX_FORM_SLOT).
    """
    refused = request.environ.get(keptpages.REFUSED)  # counted already, and refused
    if refused is not None:
        raise refused
    services().rate_limits.pages.hit(current_client(), keptpages.PAGE_SCOPE)
    return _petition_page(slug)


@reads_replica
def _petition_page(slug: str) -> Any:
    """The petition page, read on the replica if there is one."""

    def render(slot: str) -> str:
        session = get_read_session()
        return _petition_html(session, visible_petition(session, slug), None, slot)

    for_nginx = request.headers.get(NGINX_FORM_REQUEST) == "nginx"
    value = NGINX_FORM_SLOT if for_nginx else services().form_tokens.issue(slug)
    pages, key = services().pages, _page_key("public/petition.html", slug)
    html = pages.page(key, render, value)
    until = pages.expires(key)
    if until is not None:  # web.keptpages may answer the next requests with it until then
        request.environ[keptpages.KEEP] = (slug, value, for_nginx, until)
    response = make_response(html)
    if for_nginx:
        response.headers[NGINX_FORM_MARK[0]] = NGINX_FORM_MARK[1]
    return response


@bp.post("/p/<slug>/sign")
@own_limits
def sign(slug: str) -> Any:
    """Sign. The answer shows the receipt code in the page body, never in a URL.

    A signature reads nothing from the database before its hash: the petition's signing
    material is kept by the worker, and the write checks that the petition still accepts
    signatures. Refusals, rare, read the petition to show its page again.
    """
    limits = services().signing_limits
    # Every request to sign counts against its client, whatever becomes of it.
    limits.hit_client(current_client())
    try:
        keys = _signing_material(slug)
    except PetitionMisconfigured:
        return _refused(slug, SignForm(values={}, errors={"form": _UNAVAILABLE}), 409)
    if keys is None:
        return _closed(slug)
    photo_limits = None
    if keys.photos != "off":
        cfg = config()
        photo_limits = PhotoLimits(max_bytes=cfg.photo_max_bytes, max_pixels=cfg.photo_max_pixels)
        # Room for the photo (and a little over, so that a photo just over the cap is told so
        # in the form rather than by an error page), set before the body is read.
        request.max_content_length = cfg.photo_max_bytes + (1 << 20)
        # Werkzeug's multipart decoder holds a read chunk (64 KiB) before it knows which part
        # the bytes belong to; text fields are still cut to their lengths by the form.
        request.max_form_memory_size = 256 << 10
    gate = services().argon2_gate
    form = parse_sign_form(
        request.form,
        request.files,
        keys,
        services().form_tokens,
        photo_limits,
        # On the gate's threads, like Argon2: at most one photo decoded per core, which bounds
        # the memory photos take (up to about 200 MiB for one at the pixel cap, bench/).
        lambda data, limits: gate.run(clean_photo, data, limits),
    )
    if form.errors:
        return _refused(slug, form)
    # Only a submission that passed every check counts against the petition's cap, and only
    # here, just before its Argon2 work: junk requests cannot use up a petition's signatures.
    limits.hit_petition(keys.slug)
    # Argon2 runs on the gate's threads, at most one hash per core; Overloaded (a 503) if no
    # slot frees up in time, with nothing written.
    hasher = _on_argon2_threads(services().argon2_gate)
    try:
        if keys.verification_mode == "email":
            # Nothing is stored: the signature counts once the link in the mail is confirmed.
            confirmation = request_confirmation(
                get_session(), keys, form.submission(), hasher=hasher
            )
            return _send_confirmation(slug, confirmation)
        signed = sign_petition(
            get_session(), keys, form.submission(), hasher=hasher, epochs=services().epochs
        )
    except PetitionStateError:
        return _closed(slug)
    return _kept_page(
        "public/signed.html",
        slug,
        lambda slot: _signed_html(visible_petition(get_session(), slug), slot),
        signed.receipt,
    )


_CLOSED = lazy_gettext("This petition is closed.")
_UNAVAILABLE = lazy_gettext(
    "This petition cannot take signatures at the moment because of a problem with its "
    "settings. The organisers have been told. Please try again later."
)


def _signing_material(slug: str) -> SigningMaterial | None:
    """The petition's signing material, kept by this worker; None unless it accepts
    signatures; a 404 for a petition the public may not see; PetitionMisconfigured for one
    whose settings make signing impossible."""
    kept = services().signing_material
    keys = kept.get(slug)
    if keys is None:
        petition = visible_petition(get_session(), slug)
        if petition.status != PetitionStatus.OPEN or petition.past_deadline(utc_today()):
            return None
        try:
            keys = signing_material(petition, services().vault)
        except PetitionMisconfigured as exc:
            # For the operator: the petition's settings, never anything of the signer's.
            current_app.logger.error("signature refused: %s", exc)
            raise
        kept.keep(keys)
    return keys


def _accepting(slug: str) -> Petition | None:
    """The petition, read again, if it still accepts signatures; else None (and its kept
    signing material dropped). A 404 for a petition the public may no longer see."""
    kept = services().signing_material
    try:
        petition = visible_petition(get_session(), slug)
    except NotFound:
        kept.drop(slug)
        raise
    if petition.status == PetitionStatus.OPEN and not petition.past_deadline(utc_today()):
        return petition
    kept.drop(slug)
    return None


def _closed(slug: str) -> Any:
    """The petition page saying it is closed (409)."""
    kept = services().signing_material
    kept.drop(slug)
    petition = visible_petition(get_session(), slug)
    return _render_petition(petition, SignForm(values={}, errors={"form": _CLOSED}), 409)


def _refused(slug: str, form: SignForm, status: int = 400) -> Any:
    """The petition page again with the form's errors and values; the closed page if the
    petition stopped accepting signatures meanwhile."""
    petition = _accepting(slug)
    if petition is None:
        return _closed(slug)
    return _render_petition(petition, form, status)


def _signed_html(petition: Petition, receipt: str) -> str:
    return render_template(
        "public/signed.html", petition=petition, text=petition.text(g.lang), receipt=receipt
    )


def _on_argon2_threads(gate: WorkGate) -> TokenHasher:
    """dedup_token, run on the gate's own threads (see WorkGate for why)."""

    def hasher(key: bytes, identifier: str, salt: bytes, params: Argon2Params) -> bytes:
        return gate.run(dedup_token, key, identifier, salt, params)

    return hasher


def _confirmation_base_url() -> str:
    """Where confirmation links point: the onion when the signer came over it, else the
    configured origin (never the request's Host header, which a sender could forge)."""
    cfg = config()
    if cfg.onion_address and request_hostname() == cfg.onion_address.lower():
        return f"http://{cfg.onion_address}"
    if cfg.demo or cfg.testing:
        return request.host_url.rstrip("/")
    return "https://" + cfg.origin.split("/", 1)[0]


def _send_confirmation(slug: str, confirmation: ConfirmationRequest) -> Any:
    """Mail the link and show the page saying so (the closed page if the petition stopped
    accepting signatures meanwhile).

    The message is the same whether or not the address has signed. Beyond the bound on
    mails to one address (MailLimits) nothing is sent, and the page is the same too.
    """
    petition = _accepting(slug)
    if petition is None:
        return _closed(slug)
    cfg = config()
    text = petition.text(g.lang)
    if services().mail_limits.allow(confirmation.address):
        link = _confirmation_base_url() + url_for(
            "public.confirm", slug=petition.slug, link=confirmation.link
        )
        body = render_template(
            "mail/confirm.txt", title=text["title"], link=link, hours=cfg.confirm_max_age // 3600
        )
        try:
            _mailer().send(
                compose(
                    sender=cfg.mail_from or f"Samleng <noreply@{cfg.origin.split('/', 1)[0]}>",
                    recipient=confirmation.recipient,
                    subject=str(lazy_gettext("Confirm your signature")),
                    body=body,
                    domain=cfg.origin.split("/", 1)[0],
                )
            )
        except MailError:
            message = lazy_gettext(
                "We could not send the confirmation email. Nothing was kept. Please try again "
                "later."
            )
            return render_template("public/error.html", code=503, message=message), 503
    return render_template(
        "verification/check_email.html",
        petition=petition,
        text=text,
        hours=cfg.confirm_max_age // 3600,
        per_day=_mails_per_day(),
    )


def _mailer() -> Mailer:
    """The configured mailer; MailError when mail is not configured."""
    mailer = services().mailer
    if mailer is None:
        raise MailError("mail is not configured")
    return mailer


def _mails_per_day() -> int | None:
    """How many confirmation mails one address gets a day, to tell signers; None if the
    bound is not counted in days."""
    items = parse_many(config().ratelimit_mail)
    days = [item.amount for item in items if item.GRANULARITY.name == "day" and item.multiples == 1]
    return min(days) if days else None


@bp.route("/p/<slug>/confirm/<link>", methods=["GET", "POST"])
def confirm(slug: str, link: str) -> Any:
    """The link from the confirmation email: GET shows a Confirm button, POST counts it.

    A GET changes nothing, so mail scanners that fetch every link confirm nothing; it reads
    only the link, so it answers the same before and after the link was confirmed. A POST
    for an address counted already shows the same thank-you page (with a code never stored).
    """
    if request.method == "POST":
        # Confirming counts a signature: limited per client like signing.
        services().signing_limits.hit_confirmation(current_client())
    petition = visible_petition(get_session(), slug)
    cfg = config()
    text = petition.text(g.lang)
    try:
        keys = _signing_material(slug)
        if keys is None:
            raise PetitionStateError(f"petition {slug!r} is not accepting signatures")
        if request.method == "GET":
            check_link(keys, link, max_age=cfg.confirm_max_age)
            return render_template("verification/confirm.html", petition=petition, text=text)
        signed = confirm_signature(get_session(), keys, link, max_age=cfg.confirm_max_age)
    except LinkExpired:
        error, status = (
            lazy_gettext(
                "This confirmation link has expired. Nothing was counted. You can sign again "
                "on the petition page."
            ),
            410,
        )
    except LinkInvalid:
        error, status = (
            lazy_gettext(
                "This confirmation link is not valid. Check that you copied all of it from the "
                "email."
            ),
            400,
        )
    except PetitionStateError:
        error, status = _CLOSED, 409
    else:
        return render_template(
            "verification/confirmed.html", petition=petition, text=text, receipt=signed.receipt
        )
    return (
        render_template("verification/confirm.html", petition=petition, text=text, error=error),
        status,
    )


# The endorse form's tokens are issued for this name, never valid on the sign form.
def _endorse_form(slug: str) -> str:
    return f"endorse/{slug}"


_ENDORSE_ERRORS = {
    "name_km": lazy_gettext(
        "Give the organisation's name in Khmer: at most 200 characters, without control characters."
    ),
    "name_en": lazy_gettext(
        "Give the organisation's name in English: at most 200 characters, without control "
        "characters."
    ),
    "website": lazy_gettext(
        "Give the website as an address starting with https://, or leave it empty."
    ),
    "contact": lazy_gettext("At most 300 characters."),
}


def _endorse_page(petition: Petition, status: int = 200, **context: Any) -> Any:
    context.setdefault("values", {})
    context.setdefault("errors", {})
    return (
        render_template(
            "public/endorse.html",
            petition=petition,
            text=petition.text(g.lang),
            form_token=services().form_tokens.issue(_endorse_form(petition.slug)),
            **context,
        ),
        status,
    )


@bp.route("/p/<slug>/endorse", methods=["GET", "POST"])
@own_limits
def endorse(slug: str) -> Any:
    """An organisation asks to be named as endorsing the petition; organisers approve it.

    Every POST counts against its client like a signature. Nothing about the requester is
    kept but what they typed, and the contact only until the organisers decide.
    """
    if request.method == "POST":
        services().signing_limits.hit_client(current_client())
    petition = visible_petition(get_session(), slug)
    if petition.status != PetitionStatus.OPEN or petition.past_deadline(utc_today()):
        return _endorse_page(petition, 409 if request.method == "POST" else 200, closed=True)
    if request.method == "GET":
        return _endorse_page(petition)
    names = ("name_km", "name_en", "website", "contact")
    values = {name: str(request.form.get(name, ""))[:1000] for name in names}
    try:
        services().form_tokens.spend(_endorse_form(slug), request.form.get("form_token", ""))
    except FormTokenUsed:
        return _endorse_page(petition, 400, values=values, errors={"form": ALREADY_SENT})
    except FormTokenError:
        return _endorse_page(petition, 400, values=values, errors={"form": TOO_FAST_OR_OLD})
    session = get_session()
    try:
        fields = check_fields(values["name_km"], values["name_en"], values["website"])
        request_endorsement(session, petition, fields, values["contact"])
    except EndorsementInputError as exc:
        session.rollback()
        return _endorse_page(
            petition, 400, values=values, errors={exc.field: _ENDORSE_ERRORS[exc.field]}
        )
    except EndorsementQueueFull:
        session.rollback()
        message = lazy_gettext(
            "Too many requests are waiting for the organisers of this petition. Please try "
            "again in a few days."
        )
        return _endorse_page(petition, 503, values=values, errors={"form": message})
    session.commit()
    return _endorse_page(petition, sent=True)


@bp.route("/p/<slug>/receipt", methods=["GET", "POST"])
@reads_replica
def receipt(slug: str) -> Any:
    """Check a receipt code: counted (with a proof to download), waiting, or not found.

    A check writes nothing, so it reads from the replica; a code not in the replica's log
    is looked up on the primary (``_receipt_status``).
    """
    petition = visible_petition(get_read_session(), slug)
    if request.method == "GET":
        return render_template("public/receipt.html", petition=petition, text=petition.text(g.lang))
    code = request.form.get("receipt", "")
    try:
        secret = parse_receipt(code)
    except ReceiptFormatError:
        return (
            render_template(
                "public/receipt.html",
                petition=petition,
                text=petition.text(g.lang),
                code=code[:200],
                error=lazy_gettext(
                    "This is not a receipt code. A code has 26 letters and digits, like "
                    "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ."
                ),
            ),
            400,
        )
    petition, status = _receipt_status(petition, secret)
    if status.proof is not None and request.form.get("format") == "proof":
        response = Response(status.proof, mimetype="text/plain")
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{petition.slug}-receipt-proof.txt"'
        )
        return response
    return render_template(
        "public/receipt.html",
        petition=petition,
        text=petition.text(g.lang),
        code=format_receipt(secret),
        status=status,
    )


def _receipt_status(petition: Petition, secret: bytes) -> tuple[Petition, ReceiptStatus]:
    """The receipt's status, and the petition as read by whoever answered.

    The replica answers when its log has the code. Otherwise the primary answers: the
    replica may not have replayed the batch that logged it yet (or the petition's closing),
    and its "waiting" or "not found" would then be untrue. Only codes missing from the
    replica's log reach the primary: those of signatures waiting for their batch, and mistakes.
    """
    commitment = receipt_commitment(petition.origin, secret)
    status = find_receipt(get_read_session(), petition, commitment, secret)
    if status.state == "counted" or not on_replica():
        return petition, status
    primary = get_session()
    petition = visible_petition(primary, petition.slug)
    return petition, find_receipt(primary, petition, commitment, secret)


_WITHDRAWALS_OVER = lazy_gettext(
    "This petition is closed: withdrawals are over. Your signature stays in its final count."
)
_NOT_A_CODE = lazy_gettext(
    "This is not a receipt code. A code has 26 letters and digits, like "
    "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ."
)


@bp.post("/p/<slug>/withdraw")
@own_limits
def withdraw(slug: str) -> Any:
    """Withdraw a counted signature with its receipt code: a withdrawal leaf at the next seal.

    The answer is the receipt page as a check of the same code would show it right after:
    someone who watches the signer learns nothing more from withdrawing than from checking.
    """
    services().signing_limits.hit_client(current_client())
    petition = visible_petition(get_session(), slug)
    code = request.form.get("receipt", "")
    page = {"petition": petition, "text": petition.text(g.lang), "code": code[:200]}
    try:
        secret = parse_receipt(code)
    except ReceiptFormatError:
        return render_template("public/receipt.html", **page, error=_NOT_A_CODE), 400
    if petition.status != PetitionStatus.OPEN or petition.past_deadline(utc_today()):
        return render_template("public/receipt.html", **page, error=_WITHDRAWALS_OVER), 409
    session = get_session()
    commitment = receipt_commitment(petition.origin, secret)
    status = find_receipt(session, petition, commitment, secret)
    if status.state == "counted" and status.withdrawn is None:
        request_withdrawal(session, petition, commitment)
        session.commit()
        status = dataclasses.replace(status, withdrawn="waiting")
    page["code"] = format_receipt(secret)
    return render_template("public/receipt.html", **page, status=status)


_NOT_COUNTED = lazy_gettext(
    "Your signature was not counted: too many people are signing right now. Wait a minute, "
    "then sign again."
)
_TYPE_AGAIN = lazy_gettext("For your safety this is not shown again. Please type it again.")
# What a shed signature's page may show again: nothing that identifies the signer.
_KEPT_WHEN_BUSY = ("name", "locality", "comment", "consent", "photo_consent")
_PHOTO_AGAIN = lazy_gettext("For your safety your photo is not kept. Please choose it again.")


def sign_again_page(slug: str) -> Any:
    """The petition page for a signature shed with a 503: it says nothing was counted and
    keeps the form, except the phone number and email addresses, which are never echoed."""
    try:
        petition = visible_petition(get_session(), slug)
    except NotFound:
        return None
    if petition.status != PetitionStatus.OPEN or petition.past_deadline(utc_today()):
        return None
    typed, _errors = typed_values(request.form, request.files)
    values = {field: typed[field] for field in _KEPT_WHEN_BUSY if typed.get(field)}
    errors: dict[str, Any] = {"form": _NOT_COUNTED}
    for field in ("identifier", "contact"):
        if typed.get(field):
            errors[field] = _TYPE_AGAIN
    photo = request.files.get("photo")
    if petition.photos != "off" and photo is not None and photo.filename:
        errors["photo"] = _PHOTO_AGAIN
    return _render_petition(petition, SignForm(values=values, errors=errors), 503)
