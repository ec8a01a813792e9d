"""Parsing the sign form: every field checked, every refusal a translated message.

The one place a sign form is judged: its characters and lengths, the identifier as the
petition normalises it, the size of the sealed details, and last (only for a form with
nothing else wrong) its single-use token. The result is a :class:`Submission` or a map from
field name to the message shown next to that field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from flask_babel import LazyString, lazy_gettext
from werkzeug.datastructures import FileStorage, MultiDict

from samleng.crypto.custody import Consent
from samleng.crypto.details import DETAILS_FIELDS, pad_details
from samleng.crypto.errors import DetailsTooLarge, InvalidIdentifier
from samleng.service.platform.khmer import localized_number
from samleng.service.signing.formtoken import FormTokenError, FormTokens, FormTokenUsed
from samleng.service.signing.identifiers import normalize_email, normalize_identifier
from samleng.service.signing.photos import PhotoLimits, PhotoRefused, clean_photo
from samleng.service.signing.signatures import SigningMaterial, Submission

# Character limits per field: generous for a name, short enough that the padded details
# (1024 bytes, Khmer takes 3 bytes a character) usually fit; the byte limit is checked too.
MAX_CHARS = {
    "identifier": 320,
    "name": 100,
    "locality": 100,
    "comment": 500,
    "contact": 254,
    "form_token": 64,
    "website": 200,
    "consent": 8,
    "photo_consent": 16,
}
# What a signer may allow their photo to be used for (the form's values, and the sealed one).
PHOTO_CONSENTS = {
    "public": Consent.PUBLIC_BANNER,
    "recipient": Consent.RECIPIENT_BANNER,
    "counted": Consent.COUNTED_ONLY,
}
MULTILINE = frozenset({"comment"})


@dataclass(frozen=True, kw_only=True)
class SignForm:
    """The parsed form: field values to show again on error, and the error per field."""

    values: Mapping[str, str]
    errors: Mapping[str, LazyString] = field(default_factory=dict)
    form_token: str = ""
    # The cleaned photo of a photo pledge (never shown again: a refused form asks for it anew).
    photo: bytes | None = field(default=None, repr=False)

    def submission(self) -> Submission:
        """The validated submission (call only when there are no errors)."""
        details = {k: self.values[k] for k in DETAILS_FIELDS if self.values.get(k)}
        return Submission(
            identifier=self.values.get("identifier") or None,
            details=details,
            photo=self.photo,
            consent=PHOTO_CONSENTS.get(self.values.get("photo_consent", ""))
            if self.photo is not None
            else None,
        )


# Control characters (Cc), surrogates (Cs) and private use (Co): ranges that Unicode's
# stability policy fixes for good (tests/service/test_forms.py checks every code point), and
# U+FFFD, what a byte that was not UTF-8 decodes to. One search in C instead of a Python
# loop over every character of every field.
_UNREADABLE = "\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd\ufffd"
_BAD_LINE = re.compile("[\x00-\x1f" + _UNREADABLE + "]")
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f" + _UNREADABLE + "]")  # \t \n \r allowed


def _bad_characters(value: str, multiline: bool) -> bool:
    """True for text that did not decode as UTF-8 or holds control characters (in a
    multi-line field, line breaks and tabs are allowed)."""
    return (_BAD_TEXT if multiline else _BAD_LINE).search(value) is not None


BAD_EMAIL = lazy_gettext("This email address does not look right. Check it and try again.")
BAD_PHONE = lazy_gettext(
    "This phone number does not look right. Type it as you would dial it in Cambodia, like "
    "012 345 678, or with +855."
)
TOO_LONG = lazy_gettext("Your details are too long together. Please shorten the comment.")
TOO_FAST_OR_OLD = lazy_gettext(
    "This form is too old or was sent too quickly. Please check your answers and send it again."
)
ALREADY_SENT = lazy_gettext(
    "This form was already sent. Please reload the page, check your answers and send it again."
)


def typed_values(
    form: MultiDict[str, str],
    files: MultiDict[str, FileStorage],
    accepted_files: frozenset[str] = frozenset(),
) -> tuple[dict[str, str], dict[str, LazyString]]:
    """What was typed into each field, cut to its length, and the errors of its characters
    and lengths alone. Files are refused but for the fields in ``accepted_files``, once each."""
    errors: dict[str, LazyString] = {}
    values: dict[str, str] = {}
    if any(name not in accepted_files or len(files.getlist(name)) > 1 for name in files):
        errors["form"] = lazy_gettext("This form does not accept files.")
    for name in MAX_CHARS:
        given = form.getlist(name)
        if len(given) > 1:
            errors[name if name in DETAILS_FIELDS else "form"] = lazy_gettext(
                "A field was sent more than once. Please reload the page and try again."
            )
            values[name] = ""
            continue
        value = given[0].strip() if given else ""
        if len(value) > MAX_CHARS[name]:
            errors[name] = lazy_gettext(
                "This is too long: at most %(count)s characters.",
                count=LazyString(localized_number, MAX_CHARS[name]),
            )
            value = value[: MAX_CHARS[name]]
        elif _bad_characters(value, name in MULTILINE):
            errors[name] = lazy_gettext(
                "This contains characters we cannot read. Please type it again."
            )
            value = ""
        values[name] = value
    return values, errors


def parse_sign_form(
    form: MultiDict[str, str],
    files: MultiDict[str, FileStorage],
    keys: SigningMaterial,
    tokens: FormTokens,
    photo_limits: PhotoLimits | None = None,
    clean: Callable[[bytes, PhotoLimits | None], bytes] = clean_photo,
) -> SignForm:
    """Check the sign form of the petition of ``keys`` against DESIGN §5; spend its token
    (``tokens``) if nothing else is wrong with it. A photo is cleaned by ``clean`` (the
    pipeline, or the pipeline run on the Argon2 gate's threads)."""
    takes_photos = keys.photos != "off"
    values, errors = typed_values(
        form, files, frozenset({"photo"}) if takes_photos else frozenset()
    )
    _check_identity(values, errors, keys)
    upload = _photo_upload(files, photo_limits) if takes_photos and "form" not in errors else None
    if takes_photos:
        _check_photo_choice(upload, values, errors, required=keys.photos == "required")
    else:
        values.pop("photo_consent", None)
    if values.get("consent") != "yes" and "consent" not in errors:
        errors["consent"] = lazy_gettext("Please tick the box to confirm that you want to sign.")
    if values.get("website"):
        # The honeypot: invisible to people, filled in by naive bots.
        errors["form"] = lazy_gettext(
            "This form could not be accepted. Please reload the page and try again."
        )
    token = values.pop("form_token", "")
    values.pop("website", None)
    _check_size(values, errors)
    photo = None
    if upload is not None and not errors:
        # The costly step last, for a form with nothing else wrong (and before its token is
        # spent, so that a refused photo can be sent again with the same form).
        try:
            photo = clean(upload, photo_limits)
        except PhotoRefused as refused:
            errors["photo"] = refused.message
    if not errors:
        try:
            tokens.spend(keys.slug, token)
        except FormTokenUsed:
            errors["form"] = ALREADY_SENT
        except FormTokenError:
            errors["form"] = TOO_FAST_OR_OLD
    return SignForm(values=values, errors=errors, form_token=token, photo=photo)


def _photo_upload(files: MultiDict[str, FileStorage], limits: PhotoLimits | None) -> bytes | None:
    """The photo's bytes (at most one more than the cap, so that a larger one is told so),
    None if no file was chosen; the upload is closed at once."""
    upload = files.get("photo")
    if upload is None:
        return None
    cap = (limits or PhotoLimits()).max_bytes
    try:
        data = upload.read(cap + 1)
    finally:
        upload.close()
    return data if data or upload.filename else None


def _check_photo_choice(
    upload: bytes | None,
    values: dict[str, str],
    errors: dict[str, LazyString],
    *,
    required: bool,
) -> None:
    """A photo where the petition requires one, and for a photo, what it may be used for."""
    if upload is None:
        values.pop("photo_consent", None)
        if required and "form" not in errors:
            errors["photo"] = lazy_gettext(
                "Please add your photo: this petition collects photo pledges."
            )
        return
    if values.get("photo_consent") not in PHOTO_CONSENTS and "photo_consent" not in errors:
        errors["photo_consent"] = lazy_gettext("Please choose where your photo may be shown.")


def parse_paper_form(form: MultiDict[str, str], keys: SigningMaterial) -> SignForm:
    """Check one paper form as an organiser typed it: the identifier and details as on the
    sign form (the signer's consent is their signature on the paper; the admin's own CSRF
    check stands for the form token)."""
    values, errors = typed_values(form, MultiDict())
    for unused in ("form_token", "website", "consent", "photo_consent"):
        values.pop(unused, None)
    _check_identity(values, errors, keys)
    _check_size(values, errors)
    return SignForm(values=values, errors=errors)


def _check_identity(
    values: dict[str, str], errors: dict[str, LazyString], keys: SigningMaterial
) -> None:
    """The identifier as the petition of ``keys`` reads it, and the optional contact address."""
    mode = keys.identifier_mode
    if mode == "none":
        values.pop("identifier", None)
    elif "identifier" not in errors:
        if not values["identifier"]:
            errors["identifier"] = (
                lazy_gettext("Please enter your email address.")
                if mode == "email"
                else lazy_gettext("Please enter your phone number.")
            )
        else:
            try:
                normalize_identifier(mode, values["identifier"], region=keys.region)
            except InvalidIdentifier:
                errors["identifier"] = BAD_EMAIL if mode == "email" else BAD_PHONE
    if values.get("contact") and "contact" not in errors:
        try:
            normalize_email(values["contact"])
        except InvalidIdentifier:
            errors["contact"] = lazy_gettext(
                "This email address does not look right. Check it or leave the field empty."
            )


def _check_size(values: dict[str, str], errors: dict[str, LazyString]) -> None:
    """What the sealed details would hold must fit their padded block (checked only for a
    form with nothing else wrong)."""
    if not errors:
        try:
            pad_details({k: values[k] for k in DETAILS_FIELDS if values.get(k)})
        except DetailsTooLarge:
            errors["comment"] = TOO_LONG
