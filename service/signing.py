"""The signing path: normalise → dedup token → seal details → store, in one transaction.

This module takes the session and the master key as arguments and imports nothing of Flask.
A repeated identifier is answered exactly like a first one (same work, same page, a receipt
code) so that the answer never tells a third party whether somebody had signed; see
SECURITY.md for what a repeated submission can still reveal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from crypto.details import seal_details
from crypto.identifiers import normalize_identifier
from crypto.keywrap import unwrap_key
from crypto.leaf import LeafKind
from crypto.receipts import format_receipt, new_receipt_secret, receipt_commitment
from crypto.tokens import Argon2Params, dedup_token
from service.errors import PetitionStateError
from service.models import DedupToken, PendingSignature, Petition, utc_today

# How a dedup token is computed: crypto.tokens.dedup_token itself, or a caller's way of running
# it (the web app runs it on the Argon2 threads of its WorkGate; see service/ratelimit.py).
TokenHasher = Callable[[bytes, str, bytes, Argon2Params], bytes]


@dataclass(frozen=True, kw_only=True)
class Submission:
    """A validated sign form: the raw identifier (None in mode ``none``) and optional details."""

    identifier: str | None = field(repr=False)
    details: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, kw_only=True)
class Signed:
    """What the signer is shown: the receipt code. Whether it was new is known only here."""

    receipt: str = field(repr=False)
    counted: bool = field(repr=False)


def _insert_token_once(session: Session, petition_id: int, token: bytes) -> bool:
    """Insert the token unless present; True when this call inserted it.

    ON CONFLICT DO NOTHING lets the unique key decide between two workers racing on the same
    identifier, without an exception and without aborting a PostgreSQL transaction.
    """
    dialect = session.get_bind().dialect.name
    values = {"petition_id": petition_id, "token": token}
    stmt: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(DedupToken).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(DedupToken).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(dialect)
    # RETURNING says whether a row went in; rowcount is not reliable across drivers here.
    inserted = session.execute(stmt.returning(DedupToken.token)).first()
    return inserted is not None


def identifier_token(
    petition: Petition, identifier: str, master_key: bytes, hasher: TokenHasher = dedup_token
) -> bytes:
    """The petition's Argon2id dedup token of a raw identifier (normalised first)."""
    normalized = normalize_identifier(petition.identifier_mode, identifier, region=petition.region)
    if petition.wrapped_dedup_key is None:
        raise PetitionStateError(f"petition {petition.slug!r} has no dedup key")
    dedup_key = unwrap_key(master_key, petition.wrapped_dedup_key, petition.origin)
    return hasher(dedup_key, normalized, petition.salt, petition.argon2)


def new_receipt(petition: Petition, details: Mapping[str, str]) -> tuple[bytes, bytes, bytes]:
    """A fresh receipt secret, its commitment, and the details sealed to that commitment."""
    secret = new_receipt_secret()
    commitment = receipt_commitment(petition.origin, secret)
    ciphertext = seal_details(petition.details_public_key, petition.origin, commitment, details)
    return secret, commitment, ciphertext


def token_counted(session: Session, petition_id: int, token: bytes) -> bool:
    """Whether this dedup token has already been counted for the petition."""
    found = session.scalar(
        select(DedupToken.token).where(
            DedupToken.petition_id == petition_id, DedupToken.token == token
        )
    )
    return found is not None


def sign_petition(
    session: Session,
    petition: Petition,
    submission: Submission,
    *,
    master_key: bytes,
    hasher: TokenHasher = dedup_token,
) -> Signed:
    """Record one signature (or nothing, for a repeated identifier) and return its receipt.

    Raises crypto.errors.InvalidIdentifier and DetailsTooLarge for bad input and
    PetitionStateError when the petition is not open; nothing is written in those cases.
    """
    if petition.status != "open" or petition.past_deadline(utc_today()):
        raise PetitionStateError(f"petition {petition.slug!r} is not accepting signatures")
    # End the read transaction now: none stays open during the Argon2 work, and on SQLite the
    # write below then waits for the lock instead of failing on a stale read snapshot.
    petition_id = petition.id
    session.commit()
    token: bytes | None = None
    if petition.identifier_mode != "none":
        if submission.identifier is None:
            raise ValueError("this petition needs an identifier")
        token = identifier_token(petition, submission.identifier, master_key, hasher)
    # Sealed before anything is stored, also for a repeated identifier, so that both answers
    # take the same time and a too-long input is refused with nothing written.
    secret, commitment, ciphertext = new_receipt(petition, submission.details)
    counted = True
    if token is not None:
        counted = _insert_token_once(session, petition_id, token)
    if counted:
        session.add(
            PendingSignature(
                commitment=commitment,
                petition_id=petition_id,
                kind=int(LeafKind.SIGNATURE),
                details_ciphertext=ciphertext,
            )
        )
    session.commit()
    return Signed(receipt=format_receipt(secret), counted=counted)
