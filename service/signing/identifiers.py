"""Normalisation of signer identifiers (email, phone) before they are turned into dedup tokens.

Normalising makes trivial variants of one address or number count once per petition. The
result is a string ``email:<addr>`` or ``phone:<E.164>``; it is never stored, only hashed.
Error messages are fixed English sentences that never echo the input, and the lower-level
exception is not chained, so an identifier cannot leak into a log through a traceback.
"""

import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from samleng.crypto.errors import InvalidEmail, InvalidPhone

IDENTIFIER_MODES = ("email", "phone", "none")
DEFAULT_REGION = "KH"

# Caps applied before any parsing, to avoid DoS through pathological input.
MAX_EMAIL_CHARS = 320
MAX_PHONE_CHARS = 64

_GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
# Separators people type inside phone numbers; anything else that is not a digit is refused.
_PHONE_SEPARATORS = frozenset(" +-.()/")


def _validated_email(address: str) -> tuple[str, str]:
    """Return the (local part, domain) of a syntactically valid address, lower-cased."""
    try:
        result = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidEmail("This is not a valid email address.") from None
    return result.local_part.lower(), result.domain.lower()


def normalize_email(raw: str) -> str:
    """Normalise an email address to ``email:<addr>`` or raise InvalidEmail.

    Steps: strip surrounding whitespace; validate syntax with email-validator (no DNS), keeping
    its normalised form (NFC local part, Unicode domain) and lower-casing it; drop a ``+tag``
    from the local part; for gmail.com and googlemail.com also drop dots and use gmail.com.
    A local part that is only a tag (``+x@…``) is refused, since nothing identifies the person.
    The result is validated again, so it is itself an address and normalising is idempotent.
    """
    if len(raw) > MAX_EMAIL_CHARS:
        raise InvalidEmail("This email address is too long.")
    local, domain = _validated_email(raw.strip())
    local = local.split("+", 1)[0]
    if domain in _GMAIL_DOMAINS:
        local = local.replace(".", "")
        domain = "gmail.com"
    if not local:
        raise InvalidEmail("This email address has no name before the @-sign.")
    local, domain = _validated_email(f"{local}@{domain}")
    return f"email:{local}@{domain}"


def _phone_ascii(raw: str) -> str:
    """Map every Unicode decimal digit (Khmer ០-៩, fullwidth, …) to ASCII; refuse other letters.

    phonenumbers already folds some digit scripts, but doing it here keeps the accepted set
    explicit and independent of the library version; letters (vanity numbers, ``ext``) and
    control characters are refused rather than silently interpreted.
    """
    out = []
    for ch in raw:
        if ch.isdecimal():
            out.append(str(unicodedata.decimal(ch)))
        elif ch in _PHONE_SEPARATORS or unicodedata.category(ch) == "Zs":
            out.append(" " if ch.isspace() else ch)
        else:
            raise InvalidPhone("A phone number may contain only digits, spaces, + - . ( ) /.")
    return "".join(out)


def phone_region_problem(region: str) -> str | None:
    """Why ``region`` cannot be a petition's phone region, or None when it can.

    It must be a two-letter ISO 3166 code in upper-case ASCII that phonenumbers can read
    numbers in (``KH``): not ``kh``, not ``XX``, not Greek ``ΚΗ`` that looks like ``KH``.
    """
    if not (len(region) == 2 and region.isascii() and region.isalpha() and region.isupper()):
        return f"the phone region {region!r} must be two capital letters, like KH"
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return f"the phone region {region!r} is not a country code that phone numbers use"
    return None


def normalize_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """Normalise a phone number to ``phone:<E.164>`` or raise InvalidPhone.

    A number without ``+`` is read in ``region`` (the petition's default region, KH unless set);
    a number with ``+`` may be from any country. The number must be valid for its country.
    ValueError if ``region`` itself is not a region phonenumbers knows (a configuration error).
    """
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {region!r}")
    if len(raw) > MAX_PHONE_CHARS:
        raise InvalidPhone("This phone number is too long.")
    text = _phone_ascii(raw.strip())
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhone("This is not a valid phone number.") from None
    # An extension would be dropped by E.164 and merge distinct people; refuse it outright.
    if number.extension or not phonenumbers.is_valid_number(number):
        raise InvalidPhone("This is not a valid phone number.")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return f"phone:{e164}"


def normalize_identifier(mode: str, raw: str, *, region: str = DEFAULT_REGION) -> str:
    """Normalise ``raw`` for a petition whose identifier mode is ``mode`` ("email" or "phone").

    ValueError for mode "none" (such a petition has no identifier to normalise) and for any
    unknown mode.
    """
    if mode == "email":
        return normalize_email(raw)
    if mode == "phone":
        return normalize_phone(raw, region)
    if mode == "none":
        raise ValueError("identifier mode 'none' has no identifier to normalise")
    raise ValueError(f"unknown identifier mode {mode!r}")
