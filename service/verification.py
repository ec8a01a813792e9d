"""Email-verified signing: nothing is stored until the owner of the address confirms.

On sign, the server computes the dedup token, a receipt secret ``r`` and the sealed details,
and puts them, with the petition id and the issue time, into a *confirmation link*: a blob
encrypted and authenticated (ChaCha20-Poly1305) under a key derived from the master key. The
address itself is not in the blob and is never stored: it is used only to send the message.
When the link is confirmed (a POST, so mail scanners that fetch links confirm nothing), the
token is inserted ON CONFLICT DO NOTHING and a pending signature of kind 0x02 is added.
A second confirmation of the same link, or of another link for the same address, finds the
token and adds nothing.

If the address had already signed, the signer is shown the same page, and the message says
so instead of carrying a link. Takes the session and keys as arguments; imports no Flask.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import struct
import time
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from sqlalchemy.orm import Session

from samleng.crypto.details import DETAILS_CIPHERTEXT_BYTES
from samleng.crypto.leaf import LeafKind
from samleng.crypto.pending import PendingRecord
from samleng.crypto.receipts import format_receipt, receipt_commitment
from samleng.crypto.tokens import TOKEN_BYTES, dedup_token
from samleng.service.errors import Error, PetitionStateError
from samleng.service.keys import derive_key
from samleng.service.models import Petition, utc_today
from samleng.service.signing import (
    Recorded,
    Signed,
    Submission,
    TokenHasher,
    identifier_token,
    new_receipt,
    record_signature,
    signing_keys,
    token_counted,
)
from samleng.service.vault import Vault

_LINK_AAD = b"samleng-confirm/v1\n"
_NONCE_BYTES = 12
_HEADER = struct.Struct(">IQ")  # petition id, issue time (Unix seconds)
_RECEIPT_BYTES = 16
_PLAINTEXT_BYTES = _HEADER.size + TOKEN_BYTES + _RECEIPT_BYTES + DETAILS_CIPHERTEXT_BYTES
# A link issued this far "in the future" was not made by this clock.
_CLOCK_SKEW = 300
# Base64 of nonce, plaintext and tag, with room to spare: anything longer is not a link.
MAX_LINK_CHARS = 2 * (_NONCE_BYTES + _PLAINTEXT_BYTES + 16)


class LinkError(Error):
    """A confirmation link that cannot be used."""


class LinkInvalid(LinkError):
    """Not a link of ours for this petition (damaged, forged, or for another petition)."""


class LinkExpired(LinkError):
    """A link older than the configured lifetime."""


class LinkUsed(LinkError):
    """The link was confirmed already, or the address has signed by another link."""


@dataclass(frozen=True, kw_only=True)
class ConfirmationRequest:
    """What to mail: a confirmation link, or (``already_signed``) a note that it was counted."""

    recipient: str = field(repr=False)
    link: str | None = field(repr=False)

    @property
    def already_signed(self) -> bool:
        """The address's token exists: the message says so and carries no link."""
        return self.link is None


@dataclass(frozen=True, kw_only=True)
class _LinkContents:
    petition_id: int
    issued: int
    token: bytes
    secret: bytes
    details_ciphertext: bytes


def _aead(master_key: bytes) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(derive_key(master_key, "confirm-link"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def seal_link(master_key: bytes, petition: Petition, contents: _LinkContents) -> str:
    """The link blob (URL-safe base64) for ``contents``, bound to the petition's origin."""
    plaintext = (
        _HEADER.pack(contents.petition_id, contents.issued)
        + contents.token
        + contents.secret
        + contents.details_ciphertext
    )
    nonce = secrets.token_bytes(_NONCE_BYTES)
    aad = _LINK_AAD + petition.origin.encode()
    return _b64(nonce + _aead(master_key).encrypt(nonce, plaintext, aad))


def open_link(
    master_key: bytes, petition: Petition, link: str, *, max_age: int, now: float | None = None
) -> _LinkContents:
    """The contents of a link for ``petition``; LinkInvalid or LinkExpired otherwise."""
    if not link or len(link) > MAX_LINK_CHARS:
        raise LinkInvalid("not a confirmation link")
    try:
        raw = base64.urlsafe_b64decode(link + "=" * (-len(link) % 4))
    except (binascii.Error, ValueError):
        raise LinkInvalid("not a confirmation link") from None
    aad = _LINK_AAD + petition.origin.encode()
    try:
        plaintext = _aead(master_key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise LinkInvalid("the link does not open for this petition") from None
    if len(plaintext) != _PLAINTEXT_BYTES:
        raise LinkInvalid("the link has the wrong size")
    petition_id, issued = _HEADER.unpack_from(plaintext)
    if petition_id != petition.id:
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


def _accepting(petition: Petition) -> None:
    if petition.status != "open" or petition.past_deadline(utc_today()):
        raise PetitionStateError(f"petition {petition.slug!r} is not accepting signatures")


def request_confirmation(
    session: Session,
    petition: Petition,
    submission: Submission,
    *,
    vault: Vault,
    now: float | None = None,
    hasher: TokenHasher = dedup_token,
) -> ConfirmationRequest:
    """Prepare the message for a sign form: a link, or "already signed". Stores nothing.

    Raises InvalidEmail, DetailsTooLarge and PetitionStateError like sign_petition. Both
    answers do the same work (Argon2, sealing), so they take the same time.
    """
    _accepting(petition)
    if petition.identifier_mode != "email" or petition.verification_mode != "email":
        raise PetitionStateError(f"petition {petition.slug!r} is not email-verified")
    if submission.identifier is None:
        raise ValueError("this petition needs an email address")
    petition_id = petition.id
    session.commit()  # no read transaction stays open during the Argon2 work
    keys = signing_keys(petition, vault)
    token = identifier_token(keys, submission.identifier, hasher)
    secret, _commitment, ciphertext = new_receipt(keys, submission.details)
    link = seal_link(
        vault.master_key,
        petition,
        _LinkContents(
            petition_id=petition_id,
            issued=int(time.time() if now is None else now),
            token=token,
            secret=secret,
            details_ciphertext=ciphertext,
        ),
    )
    signed_before = token_counted(session, petition_id, token)
    session.commit()
    recipient = submission.identifier.strip()
    return ConfirmationRequest(recipient=recipient, link=None if signed_before else link)


def check_link(
    session: Session,
    petition: Petition,
    link: str,
    *,
    master_key: bytes,
    max_age: int,
    now: float | None = None,
) -> None:
    """Raise LinkError or PetitionStateError unless ``link`` can still be confirmed."""
    _accepting(petition)
    contents = open_link(master_key, petition, link, max_age=max_age, now=now)
    if token_counted(session, petition.id, contents.token):
        raise LinkUsed("this address has signed already")


def confirm_signature(
    session: Session,
    petition: Petition,
    link: str,
    *,
    master_key: bytes,
    max_age: int,
    now: float | None = None,
) -> Signed:
    """Count the signature a link carries, once; its receipt code.

    Raises LinkInvalid, LinkExpired, LinkUsed (nothing added) and PetitionStateError.
    """
    _accepting(petition)
    contents = open_link(master_key, petition, link, max_age=max_age, now=now)
    petition_id, origin, slug = petition.id, petition.origin, petition.slug
    session.commit()
    recorded = record_signature(
        session,
        petition_id=petition_id,
        origin=origin,
        pending=PendingRecord(
            kind=LeafKind.VERIFIED_SIGNATURE,
            token=contents.token,
            commitment=receipt_commitment(origin, contents.secret),
            details_ciphertext=contents.details_ciphertext,
        ),
    )
    if recorded is Recorded.CLOSED:
        raise PetitionStateError(f"petition {slug!r} is not accepting signatures")
    return Signed(receipt=format_receipt(contents.secret))
