"""The per-petition signature log: header, sealing, checkpoints and proofs.

Data flows one way: pending signatures, sealed to their epoch's key, are opened by the
sealer; their dedup tokens are checked and written, in token order, and a repeat dropped;
the rest become leaves in a shuffled batch, the stored perfect-subtree hashes are extended,
and a new checkpoint is signed, all in one transaction. Each round also moves signing to a
new epoch and retires the epochs it emptied, destroying their keys (service/tlog/epochs.py).
Only one sealer works at a time (a PostgreSQL advisory lock; an immediate transaction on
SQLite). Takes sessions and keys as arguments; imports nothing of Flask.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, delete, insert, or_, select, text, union
from sqlalchemy.orm import Session

from samleng.crypto.canonical import canonical_json
from samleng.crypto.checkpoint import Checkpoint, LogSigner, generate_log_signer, sign_checkpoint
from samleng.crypto.cosignature import add_cosignatures
from samleng.crypto.details import details_digest
from samleng.crypto.endorsement import record_hash
from samleng.crypto.keywrap import unwrap_key, wrap_key
from samleng.crypto.leaf import (
    KIND_OFFSET,
    ZERO_HASH,
    LeafKind,
    decode_leaf,
    encode_leaf,
    header_leaf,
    withdrawal_commitment,
    withdrawal_leaf,
)
from samleng.crypto.merkle import (
    append_nodes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_subtrees,
)
from samleng.crypto.pending import (
    EpochKey,
    PendingRecord,
    load_epoch_key,
    open_pending_record,
    seal_pending_record,
)
from samleng.crypto.tlogproof import encode_receipt_extra, format_proof
from samleng.service.platform.db import exclusive_session, vacuum_sqlite
from samleng.service.platform.errors import PetitionStateError
from samleng.service.platform.keys import derive_key
from samleng.service.platform.models import (
    Cosignature,
    DedupToken,
    Endorsement,
    Leaf,
    LegacyPendingSignature,
    Maintenance,
    Organisation,
    PendingSignature,
    PendingWithdrawal,
    Petition,
    PetitionStatus,
    SealEpoch,
    SignedCheckpoint,
    TreeNode,
    organisers_of,
    utc_today,
)
from samleng.service.platform.vault import Vault
from samleng.service.tlog.epochs import (
    current_epoch,
    epoch_private_key,
    epochs_with_signatures,
    key_name,
    open_epoch,
    retire_epochs,
    tidy_epoch_keys,
)

PETITION_FORMAT = "samleng-petition/v1"
# Any constant works; it only has to be the same for every sealer of the database.
SEALER_LOCK = 0x5A4D_4C47


@dataclass(frozen=True, kw_only=True)
class LogState:
    """The latest published checkpoint of a petition's log."""

    size: int
    root: bytes
    note: bytes
    # Signature leaves at this size; None for a checkpoint from before endorsement leaves,
    # when every leaf but the header was a signature.
    signatures: int | None = None
    # Of them, on paper forms (kind 0x05).
    paper: int = 0
    # Of the online ones, photo pledges (kind 0x04).
    photos: int = 0

    @property
    def online(self) -> int:
        """Signatures made online: the count less the paper ones."""
        return self.count - self.paper

    @property
    def count(self) -> int:
        """Signatures in the log (kinds 0x01 and 0x02): not the header, not endorsements."""
        return max(self.size - 1, 0) if self.signatures is None else self.signatures


def petition_document(
    petition: Petition,
    vkey: str,
    witness_policy: bytes | None = None,
    organisers: Sequence[Organisation] = (),
) -> bytes:
    """The canonical petition.json that leaf 0 commits to (docs/formats.md §11).

    ``witness_policy`` is the tlog-policy file of the witnesses named before opening, and
    ``organisers`` the organisations organising it; each member is left out when there is
    none, so a petition without them has the petition.json it always had, as is ``photos``
    for a petition without photo pledges.
    """
    policy = {} if witness_policy is None else {"witness_policy": witness_policy.decode()}
    named = {"organisers": organisers_member(organisers)} if organisers else {}
    photos = {} if petition.photos == "off" else {"photos": petition.photos}
    return canonical_json(
        policy
        | named
        | photos
        | {
            "format": PETITION_FORMAT,
            "origin": petition.origin,
            "slug": petition.slug,
            "texts": petition.texts,
            "goal": petition.goal,
            "opens_on": petition.opens_on.isoformat() if petition.opens_on else None,
            "closes_on": petition.closes_on.isoformat() if petition.closes_on else None,
            "identifier_mode": petition.identifier_mode,
            "region": petition.region,
            "verification_mode": petition.verification_mode,
            "log": {"vkey": vkey},
            "details": petition.custody().petition_member(),
            "salt": base64.b64encode(petition.salt).decode(),
            "argon2": {
                "variant": "argon2id",
                "time_cost": petition.argon2_time_cost,
                "memory_kib": petition.argon2_memory_kib,
                "parallelism": petition.argon2_parallelism,
                "hash_len": 32,
            },
        }
    )


def organisers_member(organisers: Sequence[Organisation]) -> list[dict[str, Any]]:
    """petition.json's ``organisers`` member: each one's names and website, in order."""
    return [
        {"name": {"en": o.name_en, "km": o.name_km}} | ({"website": o.website} if o.website else {})
        for o in organisers
    ]


def _seed_wrapping_key(master_key: bytes) -> bytes:
    # A key of its own, so a wrapped log seed can never be mistaken for a wrapped dedup key.
    return derive_key(master_key, "log-seed-wrap")


def log_signer(petition: Petition, master_key: bytes) -> LogSigner:
    """The petition's checkpoint signer, unwrapped with the master key."""
    if petition.wrapped_log_seed is None:
        raise PetitionStateError(f"petition {petition.slug!r} has no log yet")
    seed = unwrap_key(_seed_wrapping_key(master_key), petition.wrapped_log_seed, petition.origin)
    return LogSigner(origin=petition.origin, seed=seed)


# Built once: a proof reads ~log2(n) nodes, and building the statement each time cost far
# more than the lookup itself (bench/README.md).
_NODE_QUERY = select(TreeNode.hash).where(
    TreeNode.petition_id == bindparam("petition"),
    TreeNode.level == bindparam("level"),
    TreeNode.index == bindparam("index"),
)


class _StoredSubtrees:
    """The subtree-hash callback over the tree_node table, with this batch's new nodes."""

    def __init__(self, session: Session, petition_id: int) -> None:
        self.session = session
        self.petition_id = petition_id
        self.new: dict[tuple[int, int], bytes] = {}

    def __call__(self, level: int, index: int) -> bytes:
        found = self.new.get((level, index))
        if found is None:
            found = self.session.scalar(
                _NODE_QUERY, {"petition": self.petition_id, "level": level, "index": index}
            )
        if found is None:
            raise LookupError(f"tree node {level}/{index} is missing")
        return found


def _append(
    session: Session,
    petition: Petition,
    signer: LogSigner,
    size: int,
    leaves: Sequence[tuple[bytes, bytes, bytes | None]],
    signatures: int,
    paper: int = 0,
    photos: int = 0,
) -> LogState:
    """Append ``(commitment, leaf, details)`` rows after ``size`` leaves and sign the result,
    which then counts ``signatures`` signatures, ``paper`` of them on paper and ``photos``
    photo pledges."""
    subtree = _StoredSubtrees(session, petition.id)
    nodes = append_nodes(size, [leaf_hash(leaf) for _, leaf, _ in leaves], subtree)
    _insert_rows(
        session,
        _LEAF,
        [
            (petition.id, size + i, commitment, leaf, details)
            for i, (commitment, leaf, details) in enumerate(leaves)
        ],
    )
    for level, index, digest in nodes:
        subtree.new[(level, index)] = digest
    _insert_rows(
        session, _TREE_NODE, [(petition.id, level, index, digest) for level, index, digest in nodes]
    )
    new_size = size + len(leaves)
    root = root_from_subtrees(new_size, subtree)
    note = sign_checkpoint(Checkpoint(origin=petition.origin, size=new_size, root=root), signer)
    session.add(
        SignedCheckpoint(
            petition_id=petition.id,
            size=new_size,
            root=root,
            note=note,
            signatures=signatures,
            paper=paper,
            photos=photos,
        )
    )
    return LogState(
        size=new_size,
        root=root,
        note=note,
        signatures=signatures,
        paper=paper,
        photos=photos,
    )


_LEAF = cast(Table, Leaf.__table__)
_TREE_NODE = cast(Table, TreeNode.__table__)
_PENDING = cast(Table, PendingSignature.__table__)
_LEGACY_PENDING = cast(Table, LegacyPendingSignature.__table__)
_DEDUP_TOKEN = cast(Table, DedupToken.__table__)


def _insert_rows(session: Session, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows``, each a value for every column of ``table`` in its order.

    On PostgreSQL through COPY in binary: one bound parameter set per row cost the sealer
    about 2.7 times the CPU of COPY for a batch of thousands of leaves (bench/README.md,
    log_1m). Elsewhere one statement, run once per row by the driver.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        names = [column.name for column in table.columns]
        session.execute(insert(table), [dict(zip(names, row, strict=True)) for row in rows])
        return
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(column.name) for column in table.columns)
    statement = f"COPY {quote(table.name)} ({columns}) FROM STDIN (FORMAT BINARY)"
    driver: Any = connection.connection.driver_connection  # a psycopg.Connection
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types([column.type.compile(dialect).lower() for column in table.columns])
        for row in rows:
            copy.write_row(row)


def start_log(
    session: Session,
    petition: Petition,
    master_key: bytes,
    witness_policy: Callable[[str], bytes | None] = lambda _vkey: None,
) -> LogState:
    """Freeze petition.json, create the log key, append the header leaf, sign size 1.

    ``witness_policy(vkey)`` gives the policy file to freeze for the log of that key.
    """
    if petition.petition_json is not None:
        raise PetitionStateError(f"petition {petition.slug!r} already has a log")
    seed, signer = generate_log_signer(petition.origin)
    petition.wrapped_log_seed = wrap_key(_seed_wrapping_key(master_key), seed, petition.origin)
    petition.log_vkey = signer.vkey
    document = petition_document(
        petition,
        signer.vkey,
        witness_policy(signer.vkey),
        organisers_of(session, petition.id),
    )
    petition.petition_json = document
    header = header_leaf(document)
    return _append(session, petition, signer, 0, [(decode_leaf(header).c, header, None)], 0)


def with_cosignatures(session: Session, petition_id: int, size: int, note: bytes) -> bytes:
    """The checkpoint note of ``size`` with every witness cosignature collected for it.

    Each witness's lines were verified against its key when they arrived
    (service/tlog/witnesses.py); they are appended in the order the witnesses were added.
    """
    blocks = session.scalars(
        select(Cosignature.lines)
        .where(Cosignature.petition_id == petition_id, Cosignature.size == size)
        .order_by(Cosignature.witness_id)
    ).all()
    for block in blocks:
        note = add_cosignatures(note, block)
    return note


def latest_signed_checkpoint(session: Session, petition: Petition) -> LogState | None:
    """The newest checkpoint as the log signed it (no cosignatures), or None before it opened."""
    row = session.scalars(
        select(SignedCheckpoint)
        .where(SignedCheckpoint.petition_id == petition.id)
        .order_by(SignedCheckpoint.size.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return LogState(
        size=row.size,
        root=row.root,
        note=row.note,
        signatures=row.signatures,
        paper=row.paper or 0,
        photos=row.photos or 0,
    )


def latest_checkpoint(session: Session, petition: Petition) -> LogState | None:
    """The newest checkpoint of the petition as published, with the witnesses'
    cosignatures collected so far; None before it opened."""
    state = latest_signed_checkpoint(session, petition)
    if state is None:
        return None
    note = with_cosignatures(session, petition.id, state.size, state.note)
    return dataclasses.replace(state, note=note)


def checkpoint_note(session: Session, petition: Petition, size: int) -> bytes | None:
    """The published checkpoint of exactly ``size`` leaves with its cosignatures, if any."""
    note = session.scalar(
        select(SignedCheckpoint.note).where(
            SignedCheckpoint.petition_id == petition.id, SignedCheckpoint.size == size
        )
    )
    return None if note is None else with_cosignatures(session, petition.id, size, note)


def _lock_sealer(session: Session) -> None:
    """Serialise sealers: a transaction-scoped advisory lock on PostgreSQL.

    On SQLite the session's connection was opened with BEGIN IMMEDIATE (see db.make_engine),
    which already makes this transaction the only writer.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEALER_LOCK})


def _open_pending(
    session: Session, petition: Petition, vault: Vault, before: int
) -> list[tuple[int, PendingRecord]]:
    """Take the petition's pending signatures of the epochs before ``before`` (and any from
    before epochs) out of the table, opened. In one statement each: a signature arriving
    meanwhile waits for the next batch; if anything fails later, the rollback puts these back.
    """
    rows = session.execute(
        delete(_PENDING)
        .where(_PENDING.c.petition_id == petition.id, _PENDING.c.epoch_id < before)
        .returning(_PENDING.c.epoch_id, _PENDING.c.sealed)
    ).all()
    keys: dict[int, EpochKey] = {}
    records = []
    for epoch_id, sealed in rows:
        if epoch_id not in keys:
            keys[epoch_id] = load_epoch_key(epoch_private_key(vault, epoch_id))
        records.append((epoch_id, open_pending_record(keys[epoch_id], petition.origin, sealed)))
    legacy = session.execute(
        delete(_LEGACY_PENDING)
        .where(_LEGACY_PENDING.c.petition_id == petition.id)
        .returning(
            _LEGACY_PENDING.c.commitment,
            _LEGACY_PENDING.c.kind,
            _LEGACY_PENDING.c.details_ciphertext,
        )
    ).all()
    # Their tokens were written when they were signed.
    records += [
        (0, PendingRecord(kind=LeafKind(kind), token=None, commitment=c, details_ciphertext=ct))
        for c, kind, ct in legacy
    ]
    return records


_CHUNK = 500


def _count_once(
    session: Session, petition_id: int, records: list[tuple[int, PendingRecord]]
) -> list[PendingRecord]:
    """Drop every signature whose dedup token is counted already, or repeated in the batch;
    write the new tokens in token order, so that the table's order says nothing about the
    order of signing.

    Of a token repeated in the batch, the signature of the oldest epoch stays: a person who
    signs again later usually keeps their first receipt. Within one epoch nothing says which
    came first (that is the point), so one of them, at random, stays; and a worker keeps the
    current epoch for up to two seconds (CurrentEpoch), so a repeat within seconds of the
    first can carry the older epoch and be the one kept. Either way the person is counted
    once, under a receipt they were given.
    """
    secrets.SystemRandom().shuffle(records)
    records.sort(key=lambda pair: pair[0])  # stable: random within an epoch
    first: dict[bytes, PendingRecord] = {}
    without_token = []
    for _epoch, record in records:
        if record.token is None:
            without_token.append(record)
        else:
            first.setdefault(record.token, record)
    tokens = sorted(first)
    counted: set[bytes] = set()
    for start in range(0, len(tokens), _CHUNK):
        counted.update(
            session.scalars(
                select(DedupToken.token).where(
                    DedupToken.petition_id == petition_id,
                    DedupToken.token.in_(tokens[start : start + _CHUNK]),
                )
            )
        )
    new = [token for token in tokens if token not in counted]
    _insert_rows(session, _DEDUP_TOKEN, [(petition_id, token) for token in new])
    return [first[token] for token in new] + without_token


def _carry_forward(session: Session, petition: Petition, vault: Vault, current: int) -> None:
    """Re-seal a halted petition's waiting signatures to epoch ``current`` and commit.

    Epochs are shared by every petition: without this, the waiting signatures would keep
    their epochs' keys alive, and with them the signatures of other petitions in copies of
    the database (WAL, backups) made while those epochs were current.
    """
    epoch = session.get(SealEpoch, current)
    rows = session.execute(
        delete(_PENDING)
        .where(_PENDING.c.petition_id == petition.id, _PENDING.c.epoch_id < current)
        .returning(_PENDING.c.id, _PENDING.c.epoch_id, _PENDING.c.sealed)
    ).all()
    if epoch is None or not rows:
        session.rollback()
        return
    keys: dict[int, EpochKey] = {}
    carried = []
    for row_id, epoch_id, sealed in rows:
        if epoch_id not in keys:
            keys[epoch_id] = load_epoch_key(epoch_private_key(vault, epoch_id))
        record = open_pending_record(keys[epoch_id], petition.origin, sealed)
        resealed = seal_pending_record(epoch.public_key, petition.origin, record)
        carried.append((row_id, petition.id, current, resealed))
    _insert_rows(session, _PENDING, carried)
    session.commit()


def seal_pending(
    session: Session, petition: Petition, vault: Vault, before: int
) -> LogState | None:
    """Seal this petition's pending signatures of the epochs before ``before`` as one
    shuffled batch. None if none waited.

    The caller's session must be fresh (nothing read yet), so that the lock is taken before
    the pending rows are read; the function commits.
    """
    _lock_sealer(session)
    session.refresh(petition)
    if petition.witness_halt is not None:
        # A witness saw a split view: publish nothing more until an organiser has looked.
        # Signing goes on; the signatures wait, carried to the newest epoch.
        _carry_forward(session, petition, vault, before)
        return None
    records = _open_pending(session, petition, vault, before)
    state = latest_checkpoint(session, petition)
    endorsements = _unlogged_endorsements(session, petition)
    withdrawn = _take_withdrawals(session, petition)
    if (not records and not endorsements and not withdrawn) or state is None:
        session.rollback()
        return None
    counted = _count_once(session, petition.id, records) if records else []
    if not counted and not endorsements and not withdrawn:
        session.commit()  # only repeats: nothing to append, but they are gone
        return state
    # Batches are shuffled so that a leaf's position says nothing about when it was signed.
    secrets.SystemRandom().shuffle(counted)
    leaves: list[tuple[bytes, bytes, bytes | None]] = [
        (
            record.commitment,
            encode_leaf(record.kind, record.commitment, details_digest(record.details_ciphertext)),
            record.details_ciphertext,
        )
        for record in counted
    ]
    # Withdrawals after the batch (in commitment order, which says nothing of when each was
    # asked), then endorsements, in the order they were decided: they are public acts.
    for signature_c in sorted(withdrawn):
        leaves.append((withdrawal_commitment(signature_c), withdrawal_leaf(signature_c), None))
    for at, (row, record, withdrawal) in enumerate(endorsements, start=state.size + len(leaves)):
        c = record_hash(record)
        leaves.append((c, encode_leaf(LeafKind.ENDORSEMENT, c, ZERO_HASH), None))
        if withdrawal:
            row.withdrawal_leaf_index = at
        else:
            row.leaf_index = at
    new_state = _append(
        session,
        petition,
        log_signer(petition, vault.master_key),
        state.size,
        leaves,
        state.count + len(counted) - len(withdrawn),
        state.paper + _of_kind(LeafKind.PAPER, counted, withdrawn),
        state.photos + _of_kind(LeafKind.PHOTO, counted, withdrawn),
    )
    session.commit()
    return new_state


def _of_kind(kind: LeafKind, counted: Sequence[PendingRecord], withdrawn: dict[bytes, int]) -> int:
    """How the part of ``kind`` changes with a batch: its new leaves less its withdrawals."""
    return sum(record.kind == kind for record in counted) - sum(
        found == kind for found in withdrawn.values()
    )


def _take_withdrawals(session: Session, petition: Petition) -> dict[bytes, int]:
    """Take the petition's waiting withdrawals out of their table: the c of each signature
    to withdraw, once, if it is a counted signature not withdrawn yet, with the kind of its
    leaf (so that its part drops with it)."""
    asked = session.execute(
        delete(PendingWithdrawal)
        .where(PendingWithdrawal.petition_id == petition.id)
        .returning(PendingWithdrawal.commitment)
    ).scalars()
    wanted = set(asked)
    if not wanted:
        return {}
    done = set(
        session.scalars(
            select(Leaf.commitment).where(
                Leaf.petition_id == petition.id,
                Leaf.commitment.in_([withdrawal_commitment(c) for c in wanted]),
            )
        )
    )
    wanted = {c for c in wanted if withdrawal_commitment(c) not in done}
    if not wanted:
        return {}
    kinds = session.execute(
        select(Leaf.commitment, Leaf.leaf).where(
            Leaf.petition_id == petition.id, Leaf.commitment.in_(wanted)
        )
    ).all()
    return {c: leaf[KIND_OFFSET] for c, leaf in kinds}


def request_withdrawal(session: Session, petition: Petition, commitment: bytes) -> None:
    """Ask for the withdrawal of a counted signature at the next seal (once)."""
    if session.get(PendingWithdrawal, (petition.id, commitment)) is None:
        session.add(PendingWithdrawal(petition_id=petition.id, commitment=commitment))
        session.flush()


def _unlogged_endorsements(
    session: Session, petition: Petition
) -> list[tuple[Endorsement, bytes, bool]]:
    """Approved endorsements and withdrawals not in the log yet: ``(row, record, is a
    withdrawal)``, in the order they were approved (row id), endorsements first."""
    rows = session.scalars(
        select(Endorsement)
        .where(
            Endorsement.petition_id == petition.id,
            Endorsement.record.is_not(None),
            or_(
                Endorsement.leaf_index.is_(None),
                (Endorsement.withdrawal.is_not(None) & Endorsement.withdrawal_leaf_index.is_(None)),
            ),
        )
        .order_by(Endorsement.id)
    ).all()
    added = [(row, row.record, False) for row in rows if row.leaf_index is None and row.record]
    withdrawn = [
        (row, row.withdrawal, True)
        for row in rows
        if row.withdrawal is not None and row.withdrawal_leaf_index is None
    ]
    return [*added, *withdrawn]


def endorsement_records(session: Session, petition: Petition, size: int) -> list[bytes]:
    """The endorsement records in the first ``size`` leaves of the log, in log order."""
    placed: list[tuple[int, bytes]] = []
    for row in session.scalars(
        select(Endorsement).where(
            Endorsement.petition_id == petition.id, Endorsement.leaf_index.is_not(None)
        )
    ):
        if row.leaf_index is not None and row.record is not None and row.leaf_index < size:
            placed.append((row.leaf_index, row.record))
        if (
            row.withdrawal is not None
            and row.withdrawal_leaf_index is not None
            and row.withdrawal_leaf_index < size
        ):
            placed.append((row.withdrawal_leaf_index, row.withdrawal))
    return [record for _, record in sorted(placed)]


def petitions_with_pending(session: Session, before: int | None = None) -> list[int]:
    """Ids of petitions that have signatures waiting (of the epochs before ``before``)."""
    pending = select(PendingSignature.petition_id)
    if before is not None:
        pending = pending.where(PendingSignature.epoch_id < before)
    legacy = select(LegacyPendingSignature.petition_id)
    withdrawals = select(PendingWithdrawal.petition_id)
    # Approved endorsements (and withdrawals) wait for a seal too, with no signature needed.
    endorsed = select(Endorsement.petition_id).where(
        Endorsement.record.is_not(None),
        or_(
            Endorsement.leaf_index.is_(None),
            Endorsement.withdrawal.is_not(None) & Endorsement.withdrawal_leaf_index.is_(None),
        ),
    )
    return sorted(set(session.scalars(union(pending, legacy, endorsed, withdrawals))))


def seal_all(engine: Engine, vault: Vault) -> dict[str, int]:
    """One sealing round; returns slug → new log size for each petition sealed.

    Signing moves to a new epoch (when the current one holds signatures); then the older
    epochs' signatures are sealed, and the epochs left empty are retired and their keys
    destroyed. A signature is thus sealed by the first round after it was written.
    """
    with exclusive_session(engine) as session:
        _lock_sealer(session)
        tidy_epoch_keys(session, vault)
        current = current_epoch(session)
        if current is None or current.id in epochs_with_signatures(session):
            current = open_epoch(session, vault)
        session.commit()
    sealed: dict[str, int] = {}
    with Session(engine) as session:
        ids = petitions_with_pending(session, before=current.id)
    for petition_id in ids:
        with exclusive_session(engine) as session:
            petition = session.get(Petition, petition_id)
            if petition is None:
                continue
            state = seal_pending(session, petition, vault, before=current.id)
            if state is not None:
                sealed[petition.slug] = state.size
    with exclusive_session(engine) as session:
        _lock_sealer(session)
        retired = retire_epochs(session, before=current.id)
        session.commit()
    for epoch_id in retired:
        vault.destroy(key_name(epoch_id))
    rewrite_tokens_daily(engine)
    return sealed


def has_pending(session: Session, petition: Petition) -> bool:
    """Whether signatures of the petition wait to be sealed."""
    return petition.id in petitions_with_pending(session)


_REWRITE_TASK = "token-rewrite"


def rewrite_tokens(engine: Engine) -> None:
    """Rewrite the token table in token order, in one transaction, leaving the old files.

    Until the rewrite, a token's place in the table (its PostgreSQL tuple and xmin, the
    order of SQLite's pages) tells which sealing batch wrote it; after it, every token
    looks written at once. PostgreSQL: TRUNCATE (a new file; the old one is unlinked at
    commit) and the rows put back in order. SQLite: the table keeps rows in key order
    already; VACUUM rewrites the file so that page numbers forget the batches too.
    """
    if engine.dialect.name == "postgresql":
        with exclusive_session(engine) as session:
            _lock_sealer(session)
            session.execute(text("LOCK TABLE dedup_token IN ACCESS EXCLUSIVE MODE"))
            session.execute(
                text(
                    "CREATE TEMPORARY TABLE token_rewrite ON COMMIT DROP AS "
                    "SELECT petition_id, token FROM dedup_token"
                )
            )
            session.execute(text("TRUNCATE dedup_token"))
            session.execute(
                text(
                    "INSERT INTO dedup_token (petition_id, token) "
                    "SELECT petition_id, token FROM token_rewrite ORDER BY petition_id, token"
                )
            )
            session.commit()
        return
    vacuum_sqlite(engine)


def rewrite_tokens_daily(engine: Engine) -> bool:
    """Rewrite the token table once per UTC day (the first sealing round of the day claims
    the day, so that racing sealers do it once). True if this round did it."""
    today = utc_today()
    with exclusive_session(engine) as session:
        _lock_sealer(session)
        done = session.get(Maintenance, _REWRITE_TASK)
        if done is not None and done.last_on >= today:
            return False
        session.merge(Maintenance(task=_REWRITE_TASK, last_on=today))
        session.commit()
    rewrite_tokens(engine)
    return True


@dataclass(frozen=True, kw_only=True)
class ReceiptStatus:
    """Where a receipt's signature is: ``counted`` (with its proof), ``waiting`` (not in the
    log yet: maybe in the next batch), or ``unknown`` (not in the log, and nothing waits);
    and, for a counted one, whether its signer withdrew it (``withdrawn``: "waiting" until
    the next seal, "withdrawn" once in the log)."""

    state: str
    withdrawn: str | None = None
    index: int | None = None
    size: int | None = None
    proof: bytes | None = None


def find_receipt(
    session: Session, petition: Petition, commitment: bytes, secret: bytes
) -> ReceiptStatus:
    """Look a receipt up and, when it is counted, build its tlog-proof file.

    Only the log is searched, never the signatures waiting for their batch (they are sealed
    to their epoch's key): a code that is not in the log yet is ``waiting`` while the
    petition takes signatures or has some waiting, so that the answer does not tell a repeat
    (dropped when sealed) from a new signature before the next batch. Once nothing more can
    arrive, it is ``unknown``.
    """
    leaf = session.scalar(
        select(Leaf).where(Leaf.petition_id == petition.id, Leaf.commitment == commitment)
    )
    if leaf is None:
        # A pending signature is sealed to its epoch's key: which one is whose cannot be
        # told, so every code not in the log waits while the petition takes signatures or
        # any of its signatures waits, a repeat's code and a new signer's alike.
        if petition.status == PetitionStatus.OPEN or has_pending(session, petition):
            return ReceiptStatus(state="waiting")
        return ReceiptStatus(state="unknown")
    state = latest_checkpoint(session, petition)
    if state is None or leaf.index >= state.size:
        # Leaves and their checkpoint are committed together, so this does not happen; if it
        # did, "waiting" is the truth: in the log, not yet under a signed checkpoint.
        return ReceiptStatus(state="waiting")
    path = inclusion_proof(leaf.index, state.size, _StoredSubtrees(session, petition.id))
    decoded = decode_leaf(leaf.leaf)
    extra = encode_receipt_extra(decoded.kind, secret, decoded.d)
    proof = format_proof(extra=extra, index=leaf.index, path=path, checkpoint=state.note)
    return ReceiptStatus(
        state="counted",
        index=leaf.index,
        size=state.size,
        proof=proof,
        withdrawn=_withdrawal_of(session, petition, leaf.commitment),
    )


def _withdrawal_of(session: Session, petition: Petition, commitment: bytes) -> str | None:
    if (
        session.scalar(
            select(Leaf.index).where(
                Leaf.petition_id == petition.id,
                Leaf.commitment == withdrawal_commitment(commitment),
            )
        )
        is not None
    ):
        return "withdrawn"
    if session.get(PendingWithdrawal, (petition.id, commitment)) is not None:
        return "waiting"
    return None


def consistency(session: Session, petition: Petition, old_size: int, new_size: int) -> list[bytes]:
    """The RFC 9162 consistency proof between two sizes of the log."""
    return consistency_proof(old_size, new_size, _StoredSubtrees(session, petition.id))


def leaves_in_order(session: Session, petition: Petition) -> Iterator[Leaf]:
    """Every leaf of the petition in index order, with its sealed details, streamed."""
    yield from session.scalars(
        select(Leaf)
        .where(Leaf.petition_id == petition.id)
        .order_by(Leaf.index)
        .execution_options(yield_per=10_000)
    )


def leaf_bytes_in_order(session: Session, petition: Petition, size: int) -> Iterator[bytes]:
    """The first ``size`` leaves in index order, streamed; no details are read.

    Bounded in the query, not by the caller breaking off, so the cursor is always drained
    even while a sealer appends beyond ``size``.
    """
    yield from session.scalars(
        select(Leaf.leaf)
        .where(Leaf.petition_id == petition.id, Leaf.index < size)
        .order_by(Leaf.index)
        .execution_options(yield_per=10_000)
    )
