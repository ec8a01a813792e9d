"""The per-petition signature log: header, sealing, checkpoints and proofs.

Data flows one way: pending signatures are sealed in shuffled batches into leaves, the stored
perfect-subtree hashes are extended, and a new checkpoint is signed, all in one transaction.
Only one sealer works at a time (a PostgreSQL advisory lock; an immediate transaction on
SQLite). Takes sessions and keys as arguments; imports nothing of Flask.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, delete, insert, select, text
from sqlalchemy.orm import Session

from samleng.crypto.canonical import canonical_json
from samleng.crypto.checkpoint import Checkpoint, LogSigner, generate_log_signer, sign_checkpoint
from samleng.crypto.details import DETAILS_SUITE_IDS, DETAILS_SUITE_NAME, details_digest
from samleng.crypto.keywrap import unwrap_key, wrap_key
from samleng.crypto.leaf import LeafKind, decode_leaf, encode_leaf, header_leaf
from samleng.crypto.merkle import (
    append_nodes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_subtrees,
)
from samleng.crypto.tlogproof import encode_receipt_extra, format_proof
from samleng.service.errors import PetitionStateError
from samleng.service.keys import derive_key
from samleng.service.models import Leaf, PendingSignature, Petition, SignedCheckpoint, TreeNode

PETITION_FORMAT = "samleng-petition/v1"
# Any constant works; it only has to be the same for every sealer of the database.
SEALER_LOCK = 0x5A4D_4C47


@dataclass(frozen=True, kw_only=True)
class LogState:
    """The latest published checkpoint of a petition's log."""

    size: int
    root: bytes
    note: bytes

    @property
    def count(self) -> int:
        """Signatures in the log: every leaf but the header."""
        return max(self.size - 1, 0)


def petition_document(petition: Petition, vkey: str) -> bytes:
    """The canonical petition.json that leaf 0 commits to (docs/formats.md §11)."""
    return canonical_json(
        {
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
            "details": {
                "public_key": base64.b64encode(petition.details_public_key).decode(),
                "suite": {"name": DETAILS_SUITE_NAME, **DETAILS_SUITE_IDS},
            },
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
) -> LogState:
    """Append ``(commitment, leaf, details)`` rows after ``size`` leaves and sign the result."""
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
    session.add(SignedCheckpoint(petition_id=petition.id, size=new_size, root=root, note=note))
    return LogState(size=new_size, root=root, note=note)


_LEAF = cast(Table, Leaf.__table__)
_TREE_NODE = cast(Table, TreeNode.__table__)
_PENDING = cast(Table, PendingSignature.__table__)


def _insert_rows(session: Session, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows``, each a value for every column of ``table`` in its order.

    On PostgreSQL through COPY in binary: a batch of thousands of leaves cost the sealer
    several times as much CPU as one bound statement per row (bench/README.md). Elsewhere
    one statement, run once per row by the driver.
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


def start_log(session: Session, petition: Petition, master_key: bytes) -> LogState:
    """Freeze petition.json, create the log key, append the header leaf, sign size 1."""
    if petition.petition_json is not None:
        raise PetitionStateError(f"petition {petition.slug!r} already has a log")
    seed, signer = generate_log_signer(petition.origin)
    petition.wrapped_log_seed = wrap_key(_seed_wrapping_key(master_key), seed, petition.origin)
    petition.log_vkey = signer.vkey
    document = petition_document(petition, signer.vkey)
    petition.petition_json = document
    header = header_leaf(document)
    return _append(session, petition, signer, 0, [(decode_leaf(header).c, header, None)])


def latest_checkpoint(session: Session, petition: Petition) -> LogState | None:
    """The newest checkpoint of the petition, or None before it opened."""
    row = session.scalars(
        select(SignedCheckpoint)
        .where(SignedCheckpoint.petition_id == petition.id)
        .order_by(SignedCheckpoint.size.desc())
        .limit(1)
    ).first()
    return None if row is None else LogState(size=row.size, root=row.root, note=row.note)


def checkpoint_note(session: Session, petition: Petition, size: int) -> bytes | None:
    """The published checkpoint of exactly ``size`` leaves, if there is one."""
    return session.scalar(
        select(SignedCheckpoint.note).where(
            SignedCheckpoint.petition_id == petition.id, SignedCheckpoint.size == size
        )
    )


def _lock_sealer(session: Session) -> None:
    """Serialise sealers: a transaction-scoped advisory lock on PostgreSQL.

    On SQLite the session's connection was opened with BEGIN IMMEDIATE (see db.make_engine),
    which already makes this transaction the only writer.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEALER_LOCK})


def seal_pending(session: Session, petition: Petition, master_key: bytes) -> LogState | None:
    """Seal this petition's pending signatures as one shuffled batch. None if none waited.

    The caller's session must be fresh (nothing read yet), so that the lock is taken before
    the pending rows are read; the function commits.
    """
    _lock_sealer(session)
    session.refresh(petition)
    # Taken and removed in one statement: a signature arriving meanwhile waits for the next
    # batch; if anything below fails, the rollback puts these back.
    pending = list(
        session.execute(
            delete(_PENDING)
            .where(_PENDING.c.petition_id == petition.id)
            .returning(_PENDING.c.commitment, _PENDING.c.kind, _PENDING.c.details_ciphertext)
        )
    )
    state = latest_checkpoint(session, petition)
    if not pending or state is None:
        session.rollback()
        return None
    # Batches are shuffled so that a leaf's position says nothing about when it was signed.
    secrets.SystemRandom().shuffle(pending)
    leaves = [
        (commitment, encode_leaf(LeafKind(kind), commitment, details_digest(ct)), ct)
        for commitment, kind, ct in pending
    ]
    new_state = _append(session, petition, log_signer(petition, master_key), state.size, leaves)
    session.commit()
    return new_state


def _has_pending(session: Session, petition_id: int) -> bool:
    """Whether the petition has any signature waiting for its batch (none in particular)."""
    found = session.scalar(
        select(PendingSignature.petition_id)
        .where(PendingSignature.petition_id == petition_id)
        .limit(1)
    )
    return found is not None


def petitions_with_pending(session: Session) -> list[int]:
    """Ids of petitions that have signatures waiting to be sealed."""
    return list(session.scalars(select(PendingSignature.petition_id).distinct()))


def seal_all(engine: Engine, master_key: bytes) -> dict[str, int]:
    """Seal every petition with pending signatures; returns slug → new log size."""
    from samleng.service.db import exclusive_session

    sealed: dict[str, int] = {}
    with Session(engine) as session:
        ids = petitions_with_pending(session)
    for petition_id in ids:
        with exclusive_session(engine) as session:
            petition = session.get(Petition, petition_id)
            if petition is None:
                continue
            state = seal_pending(session, petition, master_key)
            if state is not None:
                sealed[petition.slug] = state.size
    return sealed


@dataclass(frozen=True, kw_only=True)
class ReceiptStatus:
    """Where a receipt's signature is: ``counted`` (with its proof), ``waiting`` (not in the
    log yet: maybe in the next batch), or ``unknown`` (not in the log, and nothing waits)."""

    state: str
    index: int | None = None
    size: int | None = None
    proof: bytes | None = None


def find_receipt(
    session: Session, petition: Petition, commitment: bytes, secret: bytes
) -> ReceiptStatus:
    """Look a receipt up and, when it is counted, build its tlog-proof file.

    Only the log is searched, never the signatures waiting for their batch: a code that is
    not in the log yet is ``waiting`` while the petition takes signatures or has some
    waiting, whether it was stored or not (the code of a repeated identifier never is), so
    that the answer does not tell a repeat from a new signature before the next batch.
    Once nothing more can arrive, it is ``unknown``.
    """
    leaf = session.scalar(
        select(Leaf).where(Leaf.petition_id == petition.id, Leaf.commitment == commitment)
    )
    if leaf is None:
        if petition.status == "open" or _has_pending(session, petition.id):
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
    return ReceiptStatus(state="counted", index=leaf.index, size=state.size, proof=proof)


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
