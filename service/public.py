"""Public pages: the petitions, the sign form, the answer with the receipt code.

Views are thin: parse the request, call a service function with the session, render.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import lazy_gettext

from crypto.errors import DetailsTooLarge, InvalidEmail, InvalidIdentifier, ReceiptFormatError
from crypto.receipts import format_receipt, parse_receipt, receipt_commitment
from service.config import LANGUAGES, Config
from service.db import get_session
from service.errors import PetitionNotFound, PetitionStateError
from service.forms import SignForm, parse_sign_form
from service.formtoken import FormTokenError, check_form_token, issue_form_token
from service.log import find_receipt, latest_checkpoint
from service.models import Petition
from service.petitions import get_petition, open_petitions, signature_count
from service.signing import sign_petition

bp = Blueprint("public", __name__, url_prefix="/<lang>")
root = Blueprint("root", __name__)


def config() -> Config:
    """The app's configuration object."""
    cfg: Config = current_app.extensions["samleng.config"]
    return cfg


@bp.url_value_preprocessor
def _pull_lang(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    lang = (values or {}).pop("lang", None)
    if lang not in LANGUAGES:
        abort(404)
    g.lang = lang


@bp.url_defaults
def _add_lang(_endpoint: str, values: dict[str, Any]) -> None:
    values.setdefault("lang", g.get("lang", config().default_lang))


def _form_key() -> bytes:
    key: bytes = current_app.extensions["samleng.form_key"]
    return key


def _visible_petition(slug: str) -> Petition:
    """A petition that the public may see (open or closed), or 404."""
    try:
        petition = get_petition(get_session(), slug)
    except PetitionNotFound:
        abort(404)
    if petition.status not in ("open", "closed"):
        abort(404)
    return petition


def _render_petition(petition: Petition, form: SignForm | None = None, status: int = 200) -> Any:
    state = latest_checkpoint(get_session(), petition)
    return (
        render_template(
            "public/petition.html",
            petition=petition,
            text=petition.text(g.lang),
            count=0 if state is None else state.count,
            fingerprint=None if state is None else state.root[:8].hex(" ", 2),
            form=form,
            form_token=issue_form_token(_form_key(), petition.slug),
        ),
        status,
    )


@root.get("/")
def home() -> Any:
    """Send visitors to the default language."""
    return redirect(url_for("public.index", lang=config().default_lang))


@root.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers."""
    return Response("ok\n", mimetype="text/plain")


@bp.get("/")
def index() -> Any:
    """The open petitions."""
    session = get_session()
    petitions = [(p, p.text(g.lang), signature_count(session, p)) for p in open_petitions(session)]
    return render_template("public/index.html", petitions=petitions)


@bp.get("/safety")
def safety() -> Any:
    """How Samleng protects signers and what it cannot protect."""
    return render_template("public/safety.html")


@bp.get("/p/<slug>")
def petition(slug: str) -> Any:
    """The petition's text, its count and goal, and the sign form."""
    return _render_petition(_visible_petition(slug))


@bp.post("/p/<slug>/sign")
def sign(slug: str) -> Any:
    """Sign. The answer shows the receipt code in the page body, never in a URL."""
    petition = _visible_petition(slug)
    if petition.status != "open":
        return _refuse(petition, "form", lazy_gettext("This petition is closed."), 409)
    form = parse_sign_form(request.form, request.files, petition.identifier_mode)
    if form.errors:
        return _render_petition(petition, form, 400)
    cfg = config()
    try:
        check_form_token(
            _form_key(),
            petition.slug,
            form.form_token,
            min_seconds=cfg.form_min_seconds,
            max_age=cfg.form_max_age,
        )
    except FormTokenError:
        return _refuse(
            petition,
            "form",
            lazy_gettext(
                "This form is too old or was sent too quickly. Please check your answers and "
                "send it again."
            ),
            400,
            form,
        )
    try:
        signed = sign_petition(
            get_session(), petition, form.submission(), master_key=cfg.master_key
        )
    except InvalidEmail:
        return _refuse(
            petition,
            "identifier",
            lazy_gettext("This email address does not look right. Check it and try again."),
            400,
            form,
        )
    except InvalidIdentifier:
        return _refuse(
            petition,
            "identifier",
            lazy_gettext(
                "This phone number does not look right. Type it as you would dial it in "
                "Cambodia, like 012 345 678, or with +855."
            ),
            400,
            form,
        )
    except DetailsTooLarge:
        return _refuse(
            petition,
            "comment",
            lazy_gettext("Your details are too long together. Please shorten the comment."),
            400,
            form,
        )
    except PetitionStateError:
        return _refuse(petition, "form", lazy_gettext("This petition is closed."), 409)
    return render_template(
        "public/signed.html", petition=petition, text=petition.text(g.lang), receipt=signed.receipt
    )


@bp.route("/p/<slug>/receipt", methods=["GET", "POST"])
def receipt(slug: str) -> Any:
    """Check a receipt code: counted (with a proof to download), waiting, or not found."""
    petition = _visible_petition(slug)
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
    status = find_receipt(
        get_session(), petition, receipt_commitment(petition.origin, secret), secret
    )
    if status.state == "counted" and request.form.get("format") == "proof":
        assert status.proof is not None
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


def _refuse(
    petition: Petition, field: str, message: Any, status: int, form: SignForm | None = None
) -> Any:
    """Show the petition page again with ``message`` on ``field`` and the values kept."""
    values = dict(form.values) if form else {}
    errors = dict(form.errors) if form else {}
    errors[field] = message
    return _render_petition(petition, SignForm(values=values, errors=errors), status)
