"""The signing path: normalise → dedup token → seal details → seal to the epoch → store.

A signature is stored as one row sealed to the current sealing epoch's public key
(crypto/pending.py), in one statement; nothing else is written when someone signs, so
nothing written then can tie a dedup token to a leaf or to a time. The sealer opens the
row, checks the dedup token and appends the leaf (service/tlog/store.py).

This module takes the session and the keys as arguments and imports nothing of Flask.
A repeated identifier is answered exactly like a first one (same work, same page, a receipt
code, the same row) so that the answer never tells a third party whether somebody had
signed; see SECURITY.md for what a repeated submission can still reveal.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    Engine,
    Integer,
    LargeBinary,
    Table,
    and_,
    bindparam,
    exists,
    insert,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from samleng.crypto.custody import Consent, Custody
from samleng.crypto.leaf import LeafKind
from samleng.crypto.pending import PendingRecord, seal_pending_record
from samleng.crypto.receipts import format_receipt, new_receipt_secret, receipt_commitment
from samleng.crypto.symmetric import derive_key
from samleng.crypto.tokens import Argon2Params, dedup_token
from samleng.service.platform.errors import PetitionMisconfigured, PetitionStateError
from samleng.service.platform.models import (
    DedupToken,
    PendingSignature,
    Petition,
    PetitionStatus,
    SealEpoch,
    utc_today,
)
from samleng.service.platform.vault import Vault
from samleng.service.signing.dedup import dedup_key
from samleng.service.signing.identifiers import normalize_identifier, phone_region_problem
from samleng.service.tlog.epochs import CurrentEpoch, SealingUnavailable

# How a dedup token is computed: crypto.tokens.dedup_token itself, or a caller's way of running
# it (the web app runs it on the Argon2 threads of its WorkGate; see service/platform/ratelimit.py).
TokenHasher = Callable[[bytes, str, bytes, Argon2Params], bytes]


@dataclass(frozen=True, kw_only=True)
class Submission:
    """A validated sign form: the raw identifier (None in mode ``none``) and optional details."""

    identifier: str | None = field(repr=False)
    details: Mapping[str, str] = field(default_factory=dict, repr=False)
    # A photo pledge: the cleaned photo (service/signing/photos.py) and what the signer
    # allowed it to be used for; None for a signature without a photo.
    photo: bytes | None = field(default=None, repr=False)
    consent: Consent | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class Signed:
    """What the signer is shown: the receipt code. Whether it was a repeat nobody knows
    until the sealer checks its dedup token."""

    receipt: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class SigningMaterial:
    """What signing needs of an open petition: all of it fixed when the petition opened.

    A worker may therefore keep it between requests (service/web/public.py keeps it a few
    seconds); whether the petition still accepts signatures is checked by the write itself.
    """

    petition_id: int
    slug: str
    origin: str
    identifier_mode: str
    verification_mode: str
    region: str
    argon2: Argon2Params
    salt: bytes = field(repr=False)
    dedup_key: bytes = field(repr=False)
    details_public_key: bytes = field(repr=False)
    # Who can open the details, and how a record is sealed (one key, or k of n).
    custody: Custody = field(repr=False)
    # Whether signers may, or must, add a photo (off, optional, required).
    photos: str = "off"


_PETITION_KEY_LABEL = b"samleng-petition-key/v1\n"


def petition_key(keys: SigningMaterial, purpose: str) -> bytes:
    """A 32-byte key for one named purpose (e.g. ``confirm-link``), derived from the
    petition's own secret that ``forget`` destroys, so that whatever it protects (an emailed
    confirmation link) can no longer be opened once the petition is forgotten, even by
    someone who holds the master key. Every such key is derived here and nowhere else."""
    return derive_key(keys.dedup_key, _PETITION_KEY_LABEL, purpose.encode())


def signing_material(petition: Petition, vault: Vault) -> SigningMaterial:
    """The petition's signing material, its dedup key unwrapped.

    PetitionStateError when it has none (forgotten); PetitionMisconfigured when a phone
    petition's region is one no phone number can be read in (made before regions were
    checked at creation), so that signing is refused cleanly, before any work.
    """
    if petition.wrapped_dedup_key is None:
        raise PetitionStateError(f"petition {petition.slug!r} has no dedup key")
    if petition.identifier_mode == "phone":
        problem = phone_region_problem(petition.region)
        if problem is not None:
            raise PetitionMisconfigured(f"petition {petition.slug!r}: {problem}")
    return SigningMaterial(
        petition_id=petition.id,
        slug=petition.slug,
        origin=petition.origin,
        identifier_mode=petition.identifier_mode,
        verification_mode=petition.verification_mode,
        region=petition.region,
        argon2=petition.argon2,
        salt=petition.salt,
        dedup_key=dedup_key(petition, vault),
        details_public_key=petition.details_public_key,
        custody=petition.custody(),
        photos=petition.photos,
    )


class KeptSigningMaterial:
    """Open petitions' SigningMaterial, kept by one worker for ``seconds``: a signature then needs
    no query and no key unwrap before its hash. Only the fixed material is kept; whether the
    petition still accepts signatures is checked by the write. Bounded, so that many
    petitions cannot grow the worker.

    The cost: a worker holds an open petition's unwrapped dedup key between requests; it is
    read afresh after ``seconds``, so it is held at most that long after closing (SECURITY.md).
    """

    def __init__(
        self,
        seconds: float = 10.0,
        max_petitions: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self._max = max_petitions
        self._clock = clock
        self._kept: dict[str, tuple[float, SigningMaterial]] = {}

    def get(self, slug: str) -> SigningMaterial | None:
        """The kept keys of ``slug``, or None when there are none or they ran out."""
        found = self._kept.get(slug)
        if found is None:
            return None
        if self._clock() >= found[0]:
            self.drop(slug)
            return None
        return found[1]

    def keep(self, keys: SigningMaterial) -> None:
        """Keep ``keys`` for ``seconds`` from now."""
        if self.seconds <= 0:
            return
        if len(self._kept) >= self._max:
            self._kept.clear()
        self._kept[keys.slug] = (self._clock() + self.seconds, keys)

    def drop(self, slug: str) -> None:
        """Forget ``slug``'s keys (its petition stopped accepting signatures)."""
        self._kept.pop(slug, None)

    def clear(self) -> None:
        """Forget every kept key (an organiser changed something)."""
        self._kept.clear()


class Recorded(enum.Enum):
    """What storing a signature did."""

    COUNTED = "counted"  # the pending signature went in (a repeat is dropped at sealing)
    CLOSED = "closed"  # the petition no longer accepts signatures: nothing was written


def _accepting() -> ColumnElement[bool]:
    """The petition row ``:petition_id`` accepts signatures on the UTC day ``:today``."""
    return and_(
        Petition.id == bindparam("petition_id"),
        Petition.status == PetitionStatus.OPEN,
        or_(Petition.closes_on.is_(None), Petition.closes_on >= bindparam("today")),
    )


# The table, not the ORM class: a plain Core INSERT … SELECT, without the ORM's machinery.
_PENDING_SIGNATURE = cast(Table, PendingSignature.__table__)


def _pending_insert() -> Any:
    """INSERT the sealed pending signature if the petition accepts signatures and the epoch
    it was sealed to is still there with that key."""
    epoch = select(SealEpoch.id).where(
        SealEpoch.id == bindparam("epoch_id"),
        SealEpoch.public_key == bindparam("epoch_key", type_=LargeBinary),
    )
    rows = select(
        bindparam("id", type_=LargeBinary),
        Petition.id,
        bindparam("epoch_id", type_=Integer),
        bindparam("sealed", type_=LargeBinary),
    ).where(_accepting(), exists(epoch))
    return (
        insert(_PENDING_SIGNATURE)
        .from_select(["id", "petition_id", "epoch_id", "sealed"], rows)
        .returning(_PENDING_SIGNATURE.c.petition_id)
    )


def _postgresql_statement() -> Any:
    """The whole write as one statement, so one round trip: a data-modifying CTE that also
    says whether the petition accepts signatures and whether the signature went in."""
    pending = _pending_insert().cte("pending")
    return select(
        exists(select(Petition.id).where(_accepting())).label("accepting"),
        exists(select(pending.c.petition_id)).label("written"),
    )


# Built once (SQLAlchemy then finds the SQLite ones compiled in its cache; the PostgreSQL
# one is compiled once per dialect into _COMPILED).
_POSTGRESQL = _postgresql_statement()
_SQLITE_PENDING = _pending_insert()
_SQLITE_ACCEPTING = select(Petition.id).where(_accepting())
_COMPILED: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}


def _run_alone(engine: Engine, params: dict[str, Any]) -> tuple[bool, bool]:
    """The PostgreSQL statement, committed by itself (autocommit: no BEGIN and COMMIT round
    trips) on a pooled connection, through psycopg directly: SQLAlchemy's execution, for
    one statement, costs as much CPU again as the driver's (bench/README.md)."""
    key = (engine.dialect.name, engine.dialect.driver)
    compiled = _COMPILED.get(key)
    if compiled is None:
        statement = _POSTGRESQL.compile(dialect=engine.dialect)
        compiled = _COMPILED[key] = (str(statement), dict(statement.params))
    sql, constants = compiled
    pooled = engine.raw_connection()
    try:
        driver: Any = pooled.driver_connection  # a psycopg.Connection
        driver.autocommit = True
        try:
            row = driver.execute(sql, {**constants, **params}).fetchone()
        except engine.dialect.loaded_dbapi.IntegrityError as exc:
            # psycopg's own error, past SQLAlchemy: raised as SQLAlchemy would, for the
            # caller's retry (an epoch retired while this statement waited for its row).
            raise IntegrityError(sql, params, exc) from exc
        finally:
            if not driver.closed:
                driver.autocommit = False
    finally:
        pooled.close()  # back to the pool; a broken connection is dropped there
    return bool(row[0]), bool(row[1])


def _write_pending(session: Session, params: dict[str, Any]) -> tuple[bool, bool]:
    """Write one sealed pending signature; (petition accepts signatures, row written)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        if session.in_transaction():
            session.commit()  # nothing of the session's stays open meanwhile
        return _run_alone(bind.engine, params)
    written = session.execute(_SQLITE_PENDING, params).first() is not None
    accepting = written or session.execute(_SQLITE_ACCEPTING, params).first() is not None
    session.commit()
    return accepting, written


def record_signature(
    session: Session,
    *,
    petition_id: int,
    origin: str,
    pending: PendingRecord,
    epochs: CurrentEpoch | None = None,
    today: dt.date | None = None,
) -> Recorded:
    """Store a signature, sealed to the current epoch, while the petition accepts signatures.
    Commits. Nothing else is written: the sealer checks the dedup token.

    On PostgreSQL this is one statement in one round trip, committed by itself. An epoch
    retired meanwhile (a stale ``epochs``) is read afresh and the write tried once more.
    """
    epochs = epochs or CurrentEpoch(seconds=0)
    params: dict[str, Any] = {
        "id": secrets.token_bytes(16),
        "petition_id": petition_id,
        "today": today or utc_today(),
    }
    for attempt in range(2):
        epoch = epochs.get(session, fresh=attempt > 0)
        params.update(
            epoch_id=epoch.id,
            epoch_key=epoch.public_key,
            sealed=seal_pending_record(epoch.public_key, origin, pending),
        )
        try:
            accepting, written = _write_pending(session, params)
        except IntegrityError:
            # The epoch was retired between the read and the write (its foreign key).
            session.rollback()
            continue
        if not accepting:
            return Recorded.CLOSED
        if written:
            return Recorded.COUNTED
    raise SealingUnavailable("the sealing epoch changed twice during one signature")


def identifier_token(
    keys: SigningMaterial, identifier: str, hasher: TokenHasher = dedup_token
) -> bytes:
    """The petition's Argon2id dedup token of a raw identifier (normalised first)."""
    normalized = normalize_identifier(keys.identifier_mode, identifier, region=keys.region)
    return hasher(keys.dedup_key, normalized, keys.salt, keys.argon2)


def new_receipt(
    keys: SigningMaterial,
    details: Mapping[str, str],
    photo: bytes | None = None,
    consent: Consent | None = None,
) -> tuple[bytes, bytes, bytes]:
    """A fresh receipt secret, its commitment, and the details (with the photo, for a photo
    pledge) sealed to that commitment."""
    secret = new_receipt_secret()
    commitment = receipt_commitment(keys.origin, secret)
    if photo is None:
        ciphertext = keys.custody.seal(keys.origin, commitment, details)
    else:
        ciphertext = keys.custody.seal_photo(
            keys.origin, commitment, details, consent or Consent.COUNTED_ONLY, photo
        )
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
    keys: SigningMaterial,
    submission: Submission,
    *,
    hasher: TokenHasher = dedup_token,
    epochs: CurrentEpoch | None = None,
    today: dt.date | None = None,
    kind: LeafKind = LeafKind.SIGNATURE,
) -> Signed:
    """Record one signature (sealed; a repeated identifier is dropped when sealing) and
    return its receipt. ``kind`` is PAPER for a paper form an organiser enters: deduplicated
    and sealed the same way, counted apart.

    Raises crypto.errors.InvalidIdentifier and DetailsTooLarge for bad input and
    PetitionStateError when the petition is not open; nothing is written in those cases.
    """
    # No read transaction stays open during the Argon2 work (nor, on SQLite, a stale
    # snapshot that would make the write below fail instead of waiting for the lock).
    if session.in_transaction():
        session.commit()
    token: bytes | None = None
    if keys.identifier_mode != "none":
        if submission.identifier is None:
            raise ValueError("this petition needs an identifier")
        token = identifier_token(keys, submission.identifier, hasher)
    # Sealed before anything is stored, so that a too-long input is refused with nothing
    # written. A repeated identifier is written all the same: the sealer drops it, so the
    # answer, and what the database holds meanwhile, is the same for both.
    secret, commitment, ciphertext = new_receipt(
        keys, submission.details, submission.photo, submission.consent
    )
    if submission.photo is not None:
        kind = LeafKind.PHOTO
    recorded = record_signature(
        session,
        petition_id=keys.petition_id,
        origin=keys.origin,
        pending=PendingRecord(
            kind=kind,
            token=token,
            commitment=commitment,
            details_ciphertext=ciphertext,
        ),
        epochs=epochs,
        today=today,
    )
    if recorded is Recorded.CLOSED:
        raise PetitionStateError(f"petition {keys.slug!r} is not accepting signatures")
    return Signed(receipt=format_receipt(secret))
