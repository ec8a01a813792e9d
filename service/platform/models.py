"""Database models (SQLAlchemy 2.x typed ORM).

What is deliberately absent matters as much as what is here: no row that belongs to a
signer has an id that orders it, a timestamp, or any link between a dedup token and a
signature. A pending signature is sealed to its epoch's key (crypto/pending.py), and dedup
tokens are written by the sealer, a batch at a time in token order, into tables without
SQLite's rowid, so neither their order nor their transaction says when anyone signed.
Schema changes go through Alembic migrations in ``service/platform/migrations``.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from samleng.crypto.custody import Custody, custody_from_petition, single_key_custody
from samleng.crypto.tokens import Argon2Params
from samleng.service.platform.errors import PetitionNotFound

# The languages of the pages and of every petition's texts.
LANGUAGES = ("km", "en")


class PetitionStatus(StrEnum):
    """Where a petition is in its life: draft → open → closed → forgotten."""

    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"
    FORGOTTEN = "forgotten"


class Role(StrEnum):
    """What an organiser's account may do."""

    ADMIN = "admin"
    ORGANISER = "organiser"


class IdentifierMode(StrEnum):
    """What a petition asks of a signer to count them once."""

    EMAIL = "email"
    PHONE = "phone"
    NONE = "none"


class VerificationMode(StrEnum):
    """Whether a signature counts only once its email address confirmed it."""

    NONE = "none"
    EMAIL = "email"


class PhotoMode(StrEnum):
    """Whether a petition's signers may, or must, add a photo of themselves with their pledge."""

    OFF = "off"
    OPTIONAL = "optional"
    REQUIRED = "required"


# The values as plain strings, for the database's checks and the CLI's choices.
STATUSES = tuple(status.value for status in PetitionStatus)
ROLES = tuple(role.value for role in Role)
IDENTIFIER_MODES = tuple(mode.value for mode in IdentifierMode)
VERIFICATION_MODES = tuple(mode.value for mode in VerificationMode)
PHOTO_MODES = tuple(mode.value for mode in PhotoMode)


def utc_today() -> dt.date:
    """Today's date in UTC."""
    return dt.datetime.now(dt.UTC).date()


def utc_now() -> dt.datetime:
    """The current UTC time, naive (as stored): only for organisers' own records."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of every Samleng table."""


class Petition(Base):
    """A petition: its texts, its rules, and its per-petition secrets (wrapped)."""

    __tablename__ = "petition"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES}", name="petition_status"),
        CheckConstraint(f"identifier_mode IN {IDENTIFIER_MODES}", name="petition_identifier_mode"),
        CheckConstraint(
            f"verification_mode IN {VERIFICATION_MODES}", name="petition_verification_mode"
        ),
        CheckConstraint("goal > 0", name="petition_goal_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    origin: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=PetitionStatus.DRAFT.value)
    # {lang: {"title": ..., "target": ..., "summary": ..., "body": ...}}
    texts: Mapped[dict[str, Any]] = mapped_column(JSON)
    goal: Mapped[int] = mapped_column(Integer)
    opens_on: Mapped[dt.date | None]
    closes_on: Mapped[dt.date | None]
    identifier_mode: Mapped[str] = mapped_column(String(8))
    verification_mode: Mapped[str] = mapped_column(String(8), default="none")
    region: Mapped[str] = mapped_column(String(2), default="KH")
    # Photo pledges (docs/formats.md §10.3): off, optional or required; frozen in petition.json.
    photos: Mapped[str] = mapped_column(String(8), default=PhotoMode.OFF.value)
    salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    # Wrapped under the key in the petition's key file (service/platform/vault.py), which forget
    # destroys; None once forgotten. A petition from before key files has it wrapped under
    # the master key (dedup_key_file None) until `samleng init` gives it a key file.
    wrapped_dedup_key: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    dedup_key_file: Mapped[str | None] = mapped_column(String(40))
    argon2_time_cost: Mapped[int] = mapped_column(Integer)
    argon2_memory_kib: Mapped[int] = mapped_column(Integer)
    argon2_parallelism: Mapped[int] = mapped_column(Integer)
    details_public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    # Coalition custody (docs/formats.md §10.2): petition.json's version 2 ``details`` member,
    # k of n organisations' keys. None: one key, ``details_public_key``, version 1 records.
    details_custody: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_on: Mapped[dt.date] = mapped_column(default=utc_today)
    # Set when the petition opens: the frozen petition.json (hashed into leaf 0) and the
    # log's Ed25519 seed, wrapped with a key derived from the master key.
    petition_json: Mapped[bytes | None] = mapped_column(LargeBinary)
    wrapped_log_seed: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    log_vkey: Mapped[str | None] = mapped_column(String(400))
    # How many of the witnesses frozen into petition.json must cosign a checkpoint (None: all
    # of them). Set while a draft; frozen with the policy when the petition opens.
    witness_quorum: Mapped[int | None] = mapped_column(Integer)
    # The steps of the goal, in increasing order, the last being ``goal`` (None: one step, the
    # goal). Shown on the page; not frozen, since a coalition may raise its sights.
    goal_steps: Mapped[list[int] | None] = mapped_column(JSON)
    # The UTC day it actually closed (closes_on is the day planned); None while open.
    closed_on: Mapped[dt.date | None]
    # Why no checkpoint is published any more: a witness saw a split view (or the log has a
    # bug). Set by the witnessing thread, cleared only by an organiser (`samleng witness
    # resume`). Signing goes on; the sealer leaves the petition's signatures pending.
    witness_halt: Mapped[str | None] = mapped_column(String(400))

    @property
    def argon2(self) -> Argon2Params:
        """The Argon2id parameters fixed for this petition at creation."""
        return Argon2Params(
            time_cost=self.argon2_time_cost,
            memory_kib=self.argon2_memory_kib,
            parallelism=self.argon2_parallelism,
        )

    def custody(self) -> Custody:
        """Who can open the signers' details, and how each record is sealed."""
        if self.details_custody is None:
            return single_key_custody(self.details_public_key)
        return custody_from_petition(self.details_custody)

    def past_deadline(self, today: dt.date) -> bool:
        """Whether ``today`` (UTC) is after the last day of signing, ``closes_on``."""
        return self.closes_on is not None and today > self.closes_on

    def text(self, lang: str, fallback: str = "en") -> dict[str, str]:
        """The texts in ``lang``, or in ``fallback`` (then any language) when missing."""
        for candidate in (lang, fallback, *self.texts):
            if candidate in self.texts:
                return dict(self.texts[candidate])
        return {}


class DedupToken(Base):
    """One per counted identifier: the Argon2id token and its petition, nothing else.

    Written only by the sealer, in token order; on SQLite without a rowid, so rows are kept
    in key order. PostgreSQL's tuple order and xmin still show the sealing batch, until the
    daily rewrite (service/tlog/store.py, rewrite_tokens) puts every row into one transaction.
    """

    __tablename__ = "dedup_token"
    __table_args__ = {"sqlite_with_rowid": False}

    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), primary_key=True
    )
    token: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)


class SealEpoch(Base):
    """A sealing epoch: pending signatures are sealed to its public key while it is current
    (the newest). Its private key is a key file (service/platform/vault.py); the row is deleted, and
    the key file destroyed, once no pending signature of the epoch is left."""

    __tablename__ = "seal_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))


class PendingSignature(Base):
    """A signature waiting for the next sealed batch, sealed to its epoch's public key.

    Keyed by random bytes, without SQLite's rowid: nothing in it is in the clear but the
    petition and the epoch. The foreign key to its epoch is what keeps an epoch's key alive
    while a signature of it may still be written (service/tlog/store.py, retire_epochs).
    """

    __tablename__ = "pending_signature"
    __table_args__ = {"sqlite_with_rowid": False}

    id: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), index=True
    )
    epoch_id: Mapped[int] = mapped_column(ForeignKey("seal_epoch.id"), index=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class PendingWithdrawal(Base):
    """A signer asked to withdraw the signature whose commitment is ``commitment``; a kind
    0x03 leaf goes into the log at the next seal. The commitment is in the log already: this
    row says only that its withdrawal waits, and goes with the seal."""

    __tablename__ = "pending_withdrawal"
    __table_args__ = {"sqlite_with_rowid": False}

    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), primary_key=True
    )
    commitment: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)


class Maintenance(Base):
    """The UTC day the sealer last did a periodic task (the token table's rewrite)."""

    __tablename__ = "maintenance"

    task: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_on: Mapped[dt.date]


class LegacyPendingSignature(Base):
    """Pending signatures written before epochs (their tokens were written at signing).
    Sealed like the others by the first sealing round after the upgrade."""

    __tablename__ = "legacy_pending_signature"

    commitment: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    petition_id: Mapped[int] = mapped_column(ForeignKey("petition.id", ondelete="CASCADE"))
    kind: Mapped[int] = mapped_column(SmallInteger)
    details_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


class Leaf(Base):
    """One leaf of a petition's log, in index order; signature leaves keep their sealed details."""

    __tablename__ = "leaf"
    __table_args__ = (UniqueConstraint("petition_id", "commitment", name="leaf_commitment"),)

    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    commitment: Mapped[bytes] = mapped_column(LargeBinary(32))
    leaf: Mapped[bytes] = mapped_column(LargeBinary(81))
    details_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)


class TreeNode(Base):
    """A stored perfect-subtree hash, so that proofs read O(log n) rows."""

    __tablename__ = "tree_node"

    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class SignedCheckpoint(Base):
    """Every checkpoint the log has published, as the exact signed note bytes."""

    __tablename__ = "checkpoint"

    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), primary_key=True
    )
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[bytes] = mapped_column(LargeBinary)
    # The UTC day it was signed (a date, never a time: a checkpoint is a shuffled batch), for
    # the organisers' signatures-per-day figures. None for checkpoints older than the column.
    published_on: Mapped[dt.date | None] = mapped_column(default=utc_today)
    # Signature leaves (kinds 0x01 and 0x02) in the log at this size: the count it states.
    # None for checkpoints from before endorsements, when every leaf but the header was one.
    signatures: Mapped[int | None] = mapped_column(BigInteger)
    # Of them, signatures on paper forms (kind 0x05); None for checkpoints from before them.
    paper: Mapped[int | None] = mapped_column(BigInteger)
    # Of them, photo pledges (kind 0x04); None for checkpoints from before them.
    photos: Mapped[int | None] = mapped_column(BigInteger)


class Witness(Base):
    """An independent witness asked to cosign a petition's checkpoints (C2SP tlog-witness).

    Removing a witness only stops asking it (``removed``): the cosignatures it made stay in
    the published checkpoints, which auditors read.
    """

    __tablename__ = "witness"
    __table_args__ = (
        UniqueConstraint("petition_id", "name", name="witness_name"),
        UniqueConstraint("petition_id", "vkey", name="witness_vkey"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))  # its name in the petition's policy
    url: Mapped[str] = mapped_column(String(300))  # its add-checkpoint prefix
    vkey: Mapped[str] = mapped_column(String(400))  # its cosignature verifier key
    # Whether petition.json's policy names it (added before the petition opened).
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The size the witness last cosigned for this log, as it told us: the next request's
    # "old" size (0: it has seen nothing of this log).
    known_size: Mapped[int] = mapped_column(BigInteger, default=0)
    # What needs an organiser (it does not know the log, refuses its key, changed key), in
    # words safe to show; None while it answers as it should.
    problem: Mapped[str | None] = mapped_column(String(400))


class Cosignature(Base):
    """One witness's cosignature line on one published checkpoint, as the witness sent it."""

    __tablename__ = "cosignature"

    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), primary_key=True
    )
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness_id: Mapped[int] = mapped_column(
        ForeignKey("witness.id", ondelete="CASCADE"), primary_key=True
    )
    lines: Mapped[bytes] = mapped_column(LargeBinary)  # signature lines, each ending in LF


class PetitionUpdate(Base):
    """An organisers' update on a petition: Markdown per language, dated by the day."""

    __tablename__ = "petition_update"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), index=True
    )
    posted_on: Mapped[dt.date] = mapped_column(default=utc_today)
    # {lang: {"title": ..., "body": ...}}, at least one language.
    texts: Mapped[dict[str, Any]] = mapped_column(JSON)


class TimelineKind(StrEnum):
    """A step of the petition's timeline after signing: handed over, or answered."""

    DELIVERY = "delivery"
    RESPONSE = "response"


TIMELINE_KINDS = tuple(kind.value for kind in TimelineKind)


class TimelineEvent(Base):
    """A delivery of the petition to an institution, or a response from one; public."""

    __tablename__ = "timeline_event"
    __table_args__ = (CheckConstraint(f"kind IN {TIMELINE_KINDS}", name="timeline_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    day: Mapped[dt.date]
    # A delivery: the institution, who received it, how. A response: from whom, its summary.
    institution: Mapped[str] = mapped_column(String(200))
    received_by: Mapped[str | None] = mapped_column(String(200))
    how: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[str | None] = mapped_column(String(2000))
    note: Mapped[str | None] = mapped_column(String(2000))
    # A response's attachment, stored in the instance folder under its SHA-256.
    attachment_sha256: Mapped[str | None] = mapped_column(String(64))
    attachment_type: Mapped[str | None] = mapped_column(String(40))


class EndorsementStatus(StrEnum):
    """Where an endorsement is: asked for through the public form, or approved."""

    REQUESTED = "requested"
    APPROVED = "approved"


ENDORSEMENT_STATUSES = tuple(status.value for status in EndorsementStatus)


class Endorsement(Base):
    """An organisation's public endorsement of a petition (docs/formats.md §23).

    A request from the public form keeps only what the requester typed, and its contact only
    until an organiser decides; a refused request is deleted. Once approved, the canonical
    record is fixed and goes into the log at the next seal (``leaf_index``); a withdrawal is
    a second record and leaf. Endorsers are organisations that chose to be named publicly.
    """

    __tablename__ = "endorsement"
    __table_args__ = (
        CheckConstraint(f"status IN {ENDORSEMENT_STATUSES}", name="endorsement_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    name_km: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    website: Mapped[str | None] = mapped_column(String(300))
    # How the organisers can check the request with the organisation (as typed); cleared
    # when it is approved.
    contact: Mapped[str | None] = mapped_column(String(300))
    record: Mapped[bytes | None] = mapped_column(LargeBinary)
    leaf_index: Mapped[int | None] = mapped_column(BigInteger)
    withdrawal: Mapped[bytes | None] = mapped_column(LargeBinary)
    withdrawal_leaf_index: Mapped[int | None] = mapped_column(BigInteger)


# Organisers' side. These rows describe organisers and what they did, never a signer: times
# are kept here (an organiser's login is not a signature), addresses are not.


class Organisation(Base):
    """An organisation of a coalition: it organises petitions, and its people have accounts.

    Public: its names and website are shown on the pages of the petitions it organises and in
    their delivery.pdf.
    """

    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A short lower-case name for the command line and the audit trail ("licadho").
    handle: Mapped[str] = mapped_column(String(64), unique=True)
    name_km: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    website: Mapped[str | None] = mapped_column(String(300))
    created_on: Mapped[dt.date] = mapped_column(default=utc_today)

    def name(self, lang: str) -> str:
        """Its name in ``lang`` (Khmer or English)."""
        return self.name_km if lang == "km" else self.name_en


class PetitionOrganiser(Base):
    """One of the organisations organising a petition, in the order they are named."""

    __tablename__ = "petition_organiser"

    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), primary_key=True
    )
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)


class Account(Base):
    """An organiser or administrator who may log in to the admin."""

    __tablename__ = "account"
    __table_args__ = (CheckConstraint(f"role IN {ROLES}", name="account_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # The organisation the account acts for. An organiser who has one may act on the
    # petitions it organises, and on no other; one without (accounts from before
    # organisations) on the petitions granted to them.
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"), index=True)
    # Argon2id in PHC string form (argon2-cffi); parameters are in the string.
    password_hash: Mapped[str] = mapped_column(String(255))
    # Set by `samleng admin reset-password`: the password is a one-time one, and the admin
    # lets the account do nothing but choose a new one.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    # The TOTP secret, wrapped under a key derived from the master key (None: no second factor).
    wrapped_totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    # The last TOTP time step accepted, so that a code cannot be used twice.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_on: Mapped[dt.date] = mapped_column(default=utc_today)


class AdminSession(Base):
    """A logged-in admin session. Keyed by the SHA-256 of the cookie value, not the value."""

    __tablename__ = "admin_session"

    id_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime)


class PetitionGrant(Base):
    """An organiser may see and act on this petition."""

    __tablename__ = "petition_grant"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE"), primary_key=True
    )
    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class PaperTally(Base):
    """How many paper forms an organiser entered for a petition: who and how many, never
    which (nothing links a count to a form or a leaf)."""

    __tablename__ = "paper_tally"

    petition_id: Mapped[int] = mapped_column(
        ForeignKey("petition.id", ondelete="CASCADE"), primary_key=True
    )
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    entered: Mapped[int] = mapped_column(Integer, default=0)


class AuditEvent(Base):
    """One admin action: who, what, when, on which petition. Never signer data."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)
    # Names, not foreign keys: the trail outlives renamed or removed accounts and petitions.
    actor: Mapped[str] = mapped_column(String(64))
    # The handle of the organisation the actor acted for ("" for none).
    organisation: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(40))
    petition_slug: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(String(300), default="")


# A petition's slug: what its addresses and its log's origin carry.
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


def organisers_of(session: Session, petition_id: int) -> list[Organisation]:
    """The organisations organising a petition, in the order they are named."""
    return list(
        session.scalars(
            select(Organisation)
            .join(PetitionOrganiser, PetitionOrganiser.organisation_id == Organisation.id)
            .where(PetitionOrganiser.petition_id == petition_id)
            .order_by(PetitionOrganiser.position, Organisation.id)
        )
    )


def get_petition(session: Session, slug: str) -> Petition:
    """The petition with this slug, or PetitionNotFound.

    Anything that is not a slug is not looked up: an address may carry any text (a NUL,
    which PostgreSQL refuses in a string, or 10,000 characters).
    """
    if not SLUG.fullmatch(slug):
        raise PetitionNotFound(slug)
    petition = session.scalar(select(Petition).where(Petition.slug == slug))
    if petition is None:
        raise PetitionNotFound(slug)
    return petition
