"""The signing path: normalise → dedup token → seal details → store, in one statement.

This module takes the session and the keys as arguments and imports nothing of Flask.
A repeated identifier is answered exactly like a first one (same work, same page, a receipt
code) so that the answer never tells a third party whether somebody had signed; see
SECURITY.md for what a repeated submission can still reveal.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import (
    Engine,
    LargeBinary,
    Select,
    Table,
    and_,
    bindparam,
    exists,
    insert,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from samleng.crypto.details import seal_details
from samleng.crypto.keywrap import unwrap_key
from samleng.crypto.leaf import LeafKind
from samleng.crypto.receipts import format_receipt, new_receipt_secret, receipt_commitment
from samleng.crypto.tokens import Argon2Params, dedup_token
from samleng.service.errors import PetitionMisconfigured, PetitionStateError
from samleng.service.identifiers import normalize_identifier, phone_region_problem
from samleng.service.models import DedupToken, PendingSignature, Petition, utc_today

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


@dataclass(frozen=True, kw_only=True)
class SigningKeys:
    """What signing needs of an open petition: all of it fixed when the petition opened.

    A worker may therefore keep it between requests (service/public.py keeps it a few
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


_PETITION_KEY_LABEL = b"samleng-petition-key/v1\n"


def petition_key(keys: SigningKeys, purpose: str) -> bytes:
    """A 32-byte key for one named purpose (e.g. ``confirm-link``), derived from the
    petition's own secret that ``forget`` destroys, so that whatever it protects (an emailed
    confirmation link) can no longer be opened once the petition is forgotten, even by
    someone who holds the master key. Every such key is derived here and nowhere else."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=_PETITION_KEY_LABEL + purpose.encode(),
    ).derive(keys.dedup_key)


def signing_keys(petition: Petition, master_key: bytes) -> SigningKeys:
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
    return SigningKeys(
        petition_id=petition.id,
        slug=petition.slug,
        origin=petition.origin,
        identifier_mode=petition.identifier_mode,
        verification_mode=petition.verification_mode,
        region=petition.region,
        argon2=petition.argon2,
        salt=petition.salt,
        dedup_key=unwrap_key(master_key, petition.wrapped_dedup_key, petition.origin),
        details_public_key=petition.details_public_key,
    )


class KeptKeys:
    """Open petitions' SigningKeys, kept by one worker for ``seconds``: a signature then needs
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
        self._kept: dict[str, tuple[float, SigningKeys]] = {}

    def get(self, slug: str) -> SigningKeys | None:
        """The kept keys of ``slug``, or None when there are none or they ran out."""
        found = self._kept.get(slug)
        if found is None:
            return None
        if self._clock() >= found[0]:
            self.drop(slug)
            return None
        return found[1]

    def keep(self, keys: SigningKeys) -> None:
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

    COUNTED = "counted"  # the token (if any) and the pending signature went in
    REPEATED = "repeated"  # the token was there already: nothing was written
    CLOSED = "closed"  # the petition no longer accepts signatures: nothing was written


def _accepting() -> ColumnElement[bool]:
    """The petition row ``:petition_id`` accepts signatures on the UTC day ``:today``."""
    return and_(
        Petition.id == bindparam("petition_id"),
        Petition.status == "open",
        or_(Petition.closes_on.is_(None), Petition.closes_on >= bindparam("today")),
    )


# The tables, not the ORM classes: these are plain Core statements, run without the ORM's
# bulk-insert machinery (which does not take INSERT … SELECT).
_DEDUP_TOKEN = cast(Table, DedupToken.__table__)
_PENDING_SIGNATURE = cast(Table, PendingSignature.__table__)


def _token_insert(insert_into: Callable[[Any], Any]) -> Any:
    """INSERT the token if the petition accepts signatures; ON CONFLICT lets the unique key
    decide between two workers racing on one identifier, without aborting a transaction."""
    rows = select(Petition.id, bindparam("token", type_=LargeBinary)).where(_accepting())
    return (
        insert_into(_DEDUP_TOKEN)
        .from_select(["petition_id", "token"], rows)
        .on_conflict_do_nothing()
        .returning(_DEDUP_TOKEN.c.petition_id)
    )


def _pending_insert(petition_id: Any, *where: ColumnElement[bool]) -> Any:
    """INSERT the pending signature for each ``petition_id`` the selection yields."""
    rows: Select[Any] = select(
        bindparam("commitment", type_=LargeBinary),
        petition_id,
        bindparam("kind"),
        bindparam("details_ciphertext", type_=LargeBinary),
    ).where(*where)
    return (
        insert(_PENDING_SIGNATURE)
        .from_select(["commitment", "petition_id", "kind", "details_ciphertext"], rows)
        .returning(_PENDING_SIGNATURE.c.petition_id)
    )


def _postgresql_statement(with_token: bool) -> Any:
    """The whole write as one statement, so one round trip: a data-modifying CTE that also
    says whether the petition accepts signatures and whether the signature went in."""
    if with_token:
        counted = _token_insert(postgresql.insert).cte("counted")
    else:
        counted = select(Petition.id.label("petition_id")).where(_accepting()).cte("counted")
    pending = _pending_insert(counted.c.petition_id).cte("pending")
    return select(
        exists(select(Petition.id).where(_accepting())).label("accepting"),
        exists(select(pending.c.petition_id)).label("counted"),
    )


# Built once (SQLAlchemy then finds the SQLite ones compiled in its cache; the PostgreSQL
# ones are compiled once per dialect into _COMPILED).
_POSTGRESQL = {True: _postgresql_statement(True), False: _postgresql_statement(False)}
_SQLITE_TOKEN = _token_insert(sqlite.insert)
_SQLITE_PENDING = _pending_insert(Petition.id, _accepting())
_SQLITE_ACCEPTING = select(Petition.id).where(_accepting())
_COMPILED: dict[tuple[str, str, bool], tuple[str, dict[str, Any]]] = {}


def _run_alone(engine: Engine, with_token: bool, params: dict[str, Any]) -> tuple[bool, bool]:
    """The PostgreSQL statement, committed by itself (autocommit: no BEGIN and COMMIT round
    trips) on a pooled connection, through psycopg directly: SQLAlchemy's execution, for
    one statement, costs as much CPU again as the driver's (bench/README.md)."""
    key = (engine.dialect.name, engine.dialect.driver, with_token)
    compiled = _COMPILED.get(key)
    if compiled is None:
        statement = _POSTGRESQL[with_token].compile(dialect=engine.dialect)
        compiled = _COMPILED[key] = (str(statement), dict(statement.params))
    sql, constants = compiled
    pooled = engine.raw_connection()
    try:
        driver: Any = pooled.driver_connection  # a psycopg.Connection
        driver.autocommit = True
        try:
            row = driver.execute(sql, {**constants, **params}).fetchone()
        finally:
            if not driver.closed:
                driver.autocommit = False
    finally:
        pooled.close()  # back to the pool; a broken connection is dropped there
    return bool(row[0]), bool(row[1])


def record_signature(
    session: Session,
    *,
    petition_id: int,
    token: bytes | None,
    commitment: bytes,
    kind: LeafKind,
    details_ciphertext: bytes,
    today: dt.date | None = None,
) -> Recorded:
    """Store a signature: its dedup token (None: the petition has none) and pending row, both
    or neither, and only while the petition accepts signatures. Commits.

    On PostgreSQL this is one statement in one round trip, committed by itself. SQLite cannot
    modify data in a CTE; there the first statement is an INSERT, so the transaction holds the
    write lock before it reads anything (a read first could fail later on a stale snapshot).
    """
    params = {
        "petition_id": petition_id,
        "today": today or utc_today(),
        "token": token,
        "commitment": commitment,
        "kind": int(kind),
        "details_ciphertext": details_ciphertext,
    }
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        if session.in_transaction():
            session.commit()  # nothing of the session's stays open meanwhile
        accepting, counted = _run_alone(bind.engine, token is not None, params)
    else:
        if token is not None:
            counted = session.execute(_SQLITE_TOKEN, params).first() is not None
            if counted:
                session.execute(_SQLITE_PENDING, params)
            accepting = counted or session.execute(_SQLITE_ACCEPTING, params).first() is not None
        else:
            counted = session.execute(_SQLITE_PENDING, params).first() is not None
            accepting = counted
        session.commit()
    if not accepting:
        return Recorded.CLOSED
    return Recorded.COUNTED if counted else Recorded.REPEATED


def identifier_token(
    keys: SigningKeys, identifier: str, hasher: TokenHasher = dedup_token
) -> bytes:
    """The petition's Argon2id dedup token of a raw identifier (normalised first)."""
    normalized = normalize_identifier(keys.identifier_mode, identifier, region=keys.region)
    return hasher(keys.dedup_key, normalized, keys.salt, keys.argon2)


def new_receipt(keys: SigningKeys, details: Mapping[str, str]) -> tuple[bytes, bytes, bytes]:
    """A fresh receipt secret, its commitment, and the details sealed to that commitment."""
    secret = new_receipt_secret()
    commitment = receipt_commitment(keys.origin, secret)
    ciphertext = seal_details(keys.details_public_key, keys.origin, commitment, details)
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
    keys: SigningKeys,
    submission: Submission,
    *,
    hasher: TokenHasher = dedup_token,
    today: dt.date | None = None,
) -> Signed:
    """Record one signature (or nothing, for a repeated identifier) and return its receipt.

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
    # Sealed before anything is stored, also for a repeated identifier, so that both answers
    # take the same time and a too-long input is refused with nothing written.
    secret, commitment, ciphertext = new_receipt(keys, submission.details)
    recorded = record_signature(
        session,
        petition_id=keys.petition_id,
        token=token,
        commitment=commitment,
        kind=LeafKind.SIGNATURE,
        details_ciphertext=ciphertext,
        today=today,
    )
    if recorded is Recorded.CLOSED:
        raise PetitionStateError(f"petition {keys.slug!r} is not accepting signatures")
    return Signed(receipt=format_receipt(secret), counted=recorded is Recorded.COUNTED)
