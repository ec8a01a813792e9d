"""Email-verified signing: nothing is stored until the owner of the address confirms.

On sign, the server computes the dedup token, a receipt secret ``r`` and the sealed details,
and puts them, with the petition id and the issue time, into a *confirmation link*: a blob
encrypted and authenticated (ChaCha20-Poly1305) under a key derived from the petition's own
secret (signing.petition_key), which ``forget`` destroys: a link kept in a mailbox can no
longer be opened afterwards, not even with the master key. The address itself is not in the
blob and is never stored: it is used only to send the message.
When the link is confirmed (a POST, so mail scanners that fetch links confirm nothing), the
token is inserted ON CONFLICT DO NOTHING and a pending signature of kind 0x02 is added.

Nothing here tells whether an address has signed: every request gets the same message with
a link, whether or not the address was counted before; opening a link (GET) reads only the
link; and confirming a link whose address is already counted (the same link again, or
another one) shows the same thank-you page as a first confirmation, with a fresh receipt
code that is never stored, as the plain mode answers a repeated identifier. Takes the
session and keys as arguments; imports no Flask.
"""

from __future__ import annotations

import base64
import binascii
import struct
import time
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from samleng.crypto.custody import MAX_KEYS, record_size
from samleng.crypto.errors import SealedBoxError
from samleng.crypto.leaf import LeafKind
from samleng.crypto.pending import PendingRecord
from samleng.crypto.receipts import format_receipt, new_receipt_secret, receipt_commitment
from samleng.crypto.symmetric import NONCE_BYTES, TAG_BYTES, seal, unseal
from samleng.crypto.tokens import TOKEN_BYTES, dedup_token
from samleng.service.platform.errors import Error, PetitionStateError
from samleng.service.signing.identifiers import normalize_email
from samleng.service.signing.signatures import (
    Recorded,
    Signed,
    SigningMaterial,
    Submission,
    TokenHasher,
    identifier_token,
    new_receipt,
    petition_key,
    record_signature,
    token_counted,
)

_LINK_AAD = b"samleng-confirm/v1\n"
_HEADER = struct.Struct(">IQ")  # petition id, issue time (Unix seconds)
_RECEIPT_BYTES = 16
# What comes before the sealed details, whose size is the petition's record size: 1072 bytes
# for one key, more with coalition custody (docs/formats.md §10).
_FIXED_BYTES = _HEADER.size + TOKEN_BYTES + _RECEIPT_BYTES
# A link issued this far "in the future" was not made by this clock.
_CLOCK_SKEW = 300
# Base64 of nonce, plaintext and tag for the largest record (16 keys), with room to spare:
# anything longer is not a link.
MAX_LINK_CHARS = 2 * (NONCE_BYTES + _FIXED_BYTES + record_size(MAX_KEYS) + TAG_BYTES)


class LinkError(Error):
    """A confirmation link that cannot be used."""


class LinkInvalid(LinkError):
    """Not a link of ours for this petition (damaged, forged, or for another petition)."""


class LinkExpired(LinkError):
    """A link older than the configured lifetime."""


@dataclass(frozen=True, kw_only=True)
class ConfirmationRequest:
    """What to mail: the confirmation link, to ``recipient`` (as typed); ``address`` is the
    normalised address, by which the mails sent to one person are bounded."""

    recipient: str = field(repr=False)
    address: str = field(repr=False)
    link: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class _LinkContents:
    petition_id: int
    issued: int
    token: bytes
    secret: bytes
    details_ciphertext: bytes


LINK_KEY_PURPOSE = "confirm-link"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def seal_link(keys: SigningMaterial, contents: _LinkContents) -> str:
    """The link blob (URL-safe base64) for ``contents``, bound to the petition's origin."""
    plaintext = (
        _HEADER.pack(contents.petition_id, contents.issued)
        + contents.token
        + contents.secret
        + contents.details_ciphertext
    )
    aad = _LINK_AAD + keys.origin.encode()
    return _b64(seal(petition_key(keys, LINK_KEY_PURPOSE), plaintext, aad))


def open_link(
    keys: SigningMaterial, link: str, *, max_age: int, now: float | None = None
) -> _LinkContents:
    """The contents of a link for ``petition``; LinkInvalid or LinkExpired otherwise."""
    if not link or len(link) > MAX_LINK_CHARS:
        raise LinkInvalid("not a confirmation link")
    try:
        raw = base64.urlsafe_b64decode(link + "=" * (-len(link) % 4))
    except (binascii.Error, ValueError):
        raise LinkInvalid("not a confirmation link") from None
    aad = _LINK_AAD + keys.origin.encode()
    try:
        plaintext = unseal(petition_key(keys, LINK_KEY_PURPOSE), raw, aad)
    except SealedBoxError:
        raise LinkInvalid("the link does not open for this petition") from None
    if len(plaintext) != _FIXED_BYTES + keys.custody.record_size:
        raise LinkInvalid("the link has the wrong size")
    petition_id, issued = _HEADER.unpack_from(plaintext)
    if petition_id != keys.petition_id:
        raise LinkInvalid("the link is for another petition")
    now = time.time() if now is None else now
    if issued > now + _CLOCK_SKEW:
        raise LinkInvalid("the link was issued in the future")
    if now - issued > max_age:
        raise LinkExpired("the link has expired")
    rest = plaintext[_HEADER.size :]
    return _LinkContents(
        petition_id=petition_id,
        issued=issued,
        token=rest[:TOKEN_BYTES],
        secret=rest[TOKEN_BYTES : TOKEN_BYTES + _RECEIPT_BYTES],
        details_ciphertext=rest[TOKEN_BYTES + _RECEIPT_BYTES :],
    )


def request_confirmation(
    session: Session,
    keys: SigningMaterial,
    submission: Submission,
    *,
    now: float | None = None,
    hasher: TokenHasher = dedup_token,
) -> ConfirmationRequest:
    """The message for a sign form: always a link, whether or not the address has signed.
    Reads and stores nothing.

    Raises InvalidEmail and DetailsTooLarge like sign_petition, and PetitionStateError for a
    petition that is not email-verified. Whether the petition still accepts signatures is
    the caller's ``keys`` (only an accepting petition's are handed out) and, in the end, the
    confirmation's write. ``session`` is only ended, so that no read transaction stays open
    during the Argon2 work.
    """
    if keys.identifier_mode != "email" or keys.verification_mode != "email":
        raise PetitionStateError(f"petition {keys.slug!r} is not email-verified")
    if submission.identifier is None:
        raise ValueError("this petition needs an email address")
    if session.in_transaction():
        session.commit()
    token = identifier_token(keys, submission.identifier, hasher)
    secret, _commitment, ciphertext = new_receipt(keys, submission.details)
    link = seal_link(
        keys,
        _LinkContents(
            petition_id=keys.petition_id,
            issued=int(time.time() if now is None else now),
            token=token,
            secret=secret,
            details_ciphertext=ciphertext,
        ),
    )
    return ConfirmationRequest(
        recipient=submission.identifier.strip(),
        address=normalize_email(submission.identifier),
        link=link,
    )


def check_link(keys: SigningMaterial, link: str, *, max_age: int, now: float | None = None) -> None:
    """Raise LinkError unless ``link`` is one of ours for this petition and not expired.

    Reads nothing else: in particular not whether its address was counted, so opening an
    old link answers the same before and after its confirmation.
    """
    open_link(keys, link, max_age=max_age, now=now)


def confirm_signature(
    session: Session,
    keys: SigningMaterial,
    link: str,
    *,
    max_age: int,
    now: float | None = None,
) -> Signed:
    """Count the signature a link carries, once; the receipt code to show.

    For an address that is sealed into the log already (this link confirmed before, or
    another link for the same address) nothing is added and the code is a fresh one that is
    never stored, so the page is the same either way, and the code shown does not turn out
    "counted" to whoever holds the link. A confirmation whose address still waits to be
    sealed is written like any signature; the sealer keeps one per address. Raises
    LinkInvalid, LinkExpired and PetitionStateError (the petition stopped accepting
    signatures).
    """
    contents = open_link(keys, link, max_age=max_age, now=now)
    counted = token_counted(session, keys.petition_id, contents.token)
    if session.in_transaction():
        session.commit()
    if counted:
        return Signed(receipt=format_receipt(new_receipt_secret()))
    recorded = record_signature(
        session,
        petition_id=keys.petition_id,
        origin=keys.origin,
        pending=PendingRecord(
            kind=LeafKind.VERIFIED_SIGNATURE,
            token=contents.token,
            commitment=receipt_commitment(keys.origin, contents.secret),
            details_ciphertext=contents.details_ciphertext,
        ),
    )
    if recorded is Recorded.CLOSED:
        raise PetitionStateError(f"petition {keys.slug!r} is not accepting signatures")
    return Signed(receipt=format_receipt(contents.secret))
