"""What a seized server gives an examiner who reads its files as they are on disk.

Signs with known phone numbers, then reads the real SQLite files (the database, its WAL,
parsed frame by frame) and the real PostgreSQL cluster (the heap through pageinspect, the
WAL through pg_waldump), as a forensic examiner would, holding every key the instance has:

- signing writes nothing linkable: no dedup token, commitment or details in the clear; a
  signature waits sealed to its epoch's key, which is destroyed once it is sealed;
- the tokens are written by the sealer, all of a batch in one transaction, in token order:
  their order and their transaction say at most which batch, and after the daily rewrite
  not even that;
- after forget, nothing of the instance (master key, key files, database, WAL) can test a
  phone number: the key file that opened the dedup key is gone.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from samleng.crypto.details import DETAILS_CIPHERTEXT_BYTES
from samleng.crypto.errors import KeyUnwrapError
from samleng.crypto.keywrap import unwrap_key
from samleng.crypto.leaf import LeafKind
from samleng.crypto.pending import PendingRecord, seal_pending_record
from samleng.crypto.receipts import parse_receipt, receipt_commitment
from samleng.service.petitions.lifecycle import close_petition
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import PendingSignature, Petition, get_petition
from samleng.service.platform.vault import Vault
from samleng.service.signing.dedup import destroy_forgotten_key_files
from samleng.service.signing.signatures import (
    Recorded,
    identifier_token,
    record_signature,
    signing_material,
)
from samleng.service.tlog.epochs import CurrentEpoch, current_epoch, key_name, open_epoch
from samleng.service.tlog.store import rewrite_tokens
from tests.components import pg_program
from tests.conftest import (
    MASTER_KEY,
    OpenPetition,
    add_petition,
    pending_records,
    receipt_of,
    seal,
    sign,
)

PHONES = [f"012 7{i:02d} {i * 37 % 1000:03d}" for i in range(30)]


def sign_all(client: FlaskClient, slug: str, phones: Iterable[str]) -> list[bytes]:
    """Sign once per phone, in order; the commitments of the receipts shown."""
    commitments = []
    for phone in phones:
        answer = sign(client, slug, identifier=phone)
        assert answer.status_code == 200
        secret = parse_receipt(receipt_of(answer))
        commitments.append(receipt_commitment(f"petitions.example.org/p/{slug}", secret))
    return commitments


def tokens_of(app: Flask, slug: str, phones: Iterable[str]) -> list[bytes]:
    """What an examiner holding the instance's keys computes for each known phone."""
    with app.app_context():
        keys = signing_material(get_petition(get_session(), slug), services(app).vault)
    return [identifier_token(keys, phone) for phone in phones]


def files_of(app: Flask, database_url: str) -> bytes:
    """Every byte the database has on disk: SQLite's files, or the PostgreSQL cluster's."""
    if database_url.startswith("sqlite"):
        db = Path(database_url.removeprefix("sqlite:///"))
        paths = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
    else:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
            row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None
        paths = [p for p in Path(row[0]).rglob("*") if p.is_file()]
    return b"".join(_read_unless_gone(p) for p in paths)


def _read_unless_gone(path: Path) -> bytes:
    """A file's bytes; none for one the server removed since it was listed (PostgreSQL
    rewrites its relation cache file, pg_internal.init, by writing a new one and renaming)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


# SQLite's WAL: a 32-byte header, then frames of a 24-byte header and one page each; a frame
# with a non-zero "database size" field ends a transaction (sqlite.org/fileformat2.html).
_WAL_HEADER = struct.Struct(">IIIIIIII")
_FRAME_HEADER = struct.Struct(">IIIIII")


def wal_transactions(wal: bytes) -> list[bytes]:
    """The page images each committed transaction of an SQLite WAL wrote, concatenated."""
    page_size = _WAL_HEADER.unpack_from(wal)[2]
    salts = _WAL_HEADER.unpack_from(wal)[4:6]
    transactions, current = [], b""
    offset = _WAL_HEADER.size
    while offset + _FRAME_HEADER.size + page_size <= len(wal):
        _page, commit, salt1, salt2, _c1, _c2 = _FRAME_HEADER.unpack_from(wal, offset)
        if (salt1, salt2) != salts:
            break  # a frame left over from before the WAL was restarted
        current += wal[offset + _FRAME_HEADER.size : offset + _FRAME_HEADER.size + page_size]
        offset += _FRAME_HEADER.size + page_size
        if commit:
            transactions.append(current)
            current = b""
    return transactions


def spearman(ranks: list[int]) -> float:
    """Spearman's rank correlation of ``ranks`` (a permutation of 0..n-1) with 0..n-1."""
    n = len(ranks)
    return 1 - 6 * sum((r - i) ** 2 for i, r in enumerate(ranks)) / (n * (n * n - 1))


def test_signing_writes_nothing_linkable_on_sqlite(
    app: Flask,
    client: FlaskClient,
    petition: OpenPetition,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not database_url.startswith("sqlite"):
        return  # the PostgreSQL examination is its own test below
    # The day's rewrite would empty the WAL at this first seal; look at a server seized
    # between two rewrites.
    monkeypatch.setattr("samleng.service.tlog.store.rewrite_tokens_daily", lambda engine: False)
    db = Path(database_url.removeprefix("sqlite:///"))
    wal = db.with_name(db.name + "-wal")
    commitments = sign_all(client, petition.slug, PHONES)
    tokens = tokens_of(app, petition.slug, PHONES)
    signing = wal_transactions(wal.read_bytes())
    everything = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    # Nothing of a signature is in the clear: no token, no commitment.
    assert not [t for t in tokens if t in everything]
    assert not [c for c in commitments if c in everything]
    epoch_keys = sorted((db.parent / "instance" / "keys").glob("epoch-*.key"))
    assert len(epoch_keys) == 1

    seal(app)
    sealing = wal_transactions(wal.read_bytes())[len(signing) :]
    # The tokens appear in one transaction only, all of them together: the seal.
    holding = [i for i, frames in enumerate(sealing) if any(t in frames for t in tokens)]
    assert len(holding) == 1, holding
    assert all(t in sealing[holding[0]] for t in tokens)
    assert not any(t in frames for frames in signing for t in tokens)
    # The epoch they were sealed to is retired and its key destroyed: the pending rows left
    # in the WAL open with nothing the instance has.
    assert not any(path.exists() for path in epoch_keys)

    # The tokens are in token order in the file (no rowid), not in the order of signing.
    with app.app_context():
        get_session().connection().exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.read_bytes()
    by_place = sorted(range(len(tokens)), key=lambda i: data.index(tokens[i]))
    by_token = sorted(range(len(tokens)), key=lambda i: tokens[i])
    assert by_place in (by_token, by_token[::-1])
    assert abs(spearman(by_place)) < 0.6  # signing order 0..29 does not show through


def test_a_second_batch_shows_until_the_daily_rewrite_on_sqlite(
    app: Flask, client: FlaskClient, petition: OpenPetition, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        return
    db = Path(database_url.removeprefix("sqlite:///"))
    first, second = PHONES[:15], PHONES[15:]
    sign_all(client, petition.slug, first)
    seal(app)
    sign_all(client, petition.slug, second)
    seal(app)
    tokens = tokens_of(app, petition.slug, PHONES)
    rewrite_tokens(services(app).engine)
    data = db.read_bytes()
    by_place = sorted(range(len(tokens)), key=lambda i: data.index(tokens[i]))
    by_token = sorted(range(len(tokens)), key=lambda i: tokens[i])
    # After the rewrite the file holds all tokens in token order: the batches are gone.
    assert by_place in (by_token, by_token[::-1])


def _pg_examination(database_url: str, start_lsn: str) -> tuple[set[int], set[int], set[int]]:
    """(xmin of every live token, xmin of every pending tuple left in the heap, the
    transactions that inserted into pending_signature since ``start_lsn``, per pg_waldump)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        conn.execute("CHECKPOINT")
        token_xmins = {int(r[0]) for r in conn.execute("SELECT xmin::text FROM dedup_token")}
        pages = conn.execute(
            "SELECT pg_relation_size('pending_signature') / current_setting('block_size')::int"
        ).fetchone()
        assert pages is not None
        pending_xmins: set[int] = set()
        for block in range(int(pages[0])):
            rows = conn.execute(
                "SELECT t_xmin::text FROM heap_page_items(get_raw_page('pending_signature', %s))"
                " WHERE t_xmin IS NOT NULL",
                (block,),
            )
            pending_xmins |= {int(r[0]) for r in rows}
        filenode = conn.execute("SELECT pg_relation_filenode('pending_signature')").fetchone()
        data_directory = conn.execute("SHOW data_directory").fetchone()
        end_lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert end_lsn is not None
        # The segment to start from, named: left to search the folder, pg_waldump may take
        # the segment size from a segment made ahead of time, still zeroed (wal_init_zero).
        first = conn.execute("SELECT pg_walfile_name(%s::pg_lsn)", (start_lsn,)).fetchone()
        # And the segment to end in: given only the first, pg_waldump refuses an end
        # location in a later segment ("not inside file"), as when signing crossed one.
        last = conn.execute("SELECT pg_walfile_name(%s::pg_lsn)", (end_lsn[0],)).fetchone()
    assert filenode is not None and data_directory is not None
    assert first is not None and last is not None
    wal = Path(data_directory[0]) / "pg_wal"
    segments = [str(wal / first[0])] + ([str(wal / last[0])] if last[0] != first[0] else [])
    dump = subprocess.run(
        [pg_program("pg_waldump"), "-p", str(wal), "-s", start_lsn, "-e", end_lsn[0],
         "-r", "Heap", *segments],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert dump.returncode == 0 or "end of WAL" in dump.stderr, dump.stderr
    inserters = {
        int(m.group(1))
        for line in dump.stdout.splitlines()
        if f"/{filenode[0]} " in line + " " and "desc: INSERT" in line
        if (m := re.search(r"tx:\s+(\d+)", line))
    }
    return token_xmins, pending_xmins, inserters


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_signing_writes_nothing_linkable_on_postgresql(
    app: Flask, client: FlaskClient, petition: OpenPetition, database_url: str
) -> None:
    # A replication slot holds the WAL from here on: the examination's CHECKPOINT would
    # otherwise remove the segments it is about to read when the shared cluster has
    # written more than min_wal_size since.
    slot = f"examination_{os.getpid()}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    try:
        commitments = sign_all(client, petition.slug, PHONES)
        tokens = tokens_of(app, petition.slug, PHONES)
        before = files_of(app, database_url)
        assert not [t for t in tokens if t in before]
        assert not [c for c in commitments if c in before]
        seal(app)
        token_xmins, pending_xmins, inserters = _pg_examination(database_url, row[0])
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    # Every token was written by one transaction, the seal; none of the transactions that
    # wrote a pending signature (its signing, with its commit time in the WAL) wrote one.
    assert len(token_xmins) == 1
    assert len(inserters) == len(PHONES)
    assert not token_xmins & inserters
    assert not token_xmins & pending_xmins
    # Their tuples are in token order.
    with psycopg.connect(database_url) as conn:
        by_place = [
            bytes(r[0]) for r in conn.execute("SELECT token FROM dedup_token ORDER BY ctid")
        ]
    assert by_place == sorted(by_place)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_daily_rewrite_merges_the_batches_on_postgresql(
    app: Flask, client: FlaskClient, petition: OpenPetition, database_url: str
) -> None:
    sign_all(client, petition.slug, PHONES[:15])
    seal(app)
    sign_all(client, petition.slug, PHONES[15:])
    seal(app)
    query = "SELECT xmin::text, token FROM dedup_token ORDER BY ctid"
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(query).fetchall()
    assert len({xmin for xmin, _ in rows}) == 2  # until the rewrite, the batch shows
    rewrite_tokens(services(app).engine)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(query).fetchall()
    assert len({xmin for xmin, _ in rows}) == 1
    assert [bytes(t) for _, t in rows] == sorted(bytes(t) for _, t in rows)


def test_forget_leaves_nothing_that_tests_a_phone(
    app: Flask, client: FlaskClient, petition: OpenPetition, database_url: str, runner: object
) -> None:
    """With the master key and every file of the instance and the database, not one of the
    signers' phones tests positive after forget: the only key that opened the dedup key is
    destroyed, whatever copies of the wrapped key and the tokens survive."""
    sign_all(client, petition.slug, PHONES)
    seal(app)
    tokens = tokens_of(app, petition.slug, PHONES)
    vault: Vault = services(app).vault
    with app.app_context():
        session = get_session()
        found = session.scalars(select(Petition).where(Petition.slug == petition.slug)).one()
        wrapped, key_file = found.wrapped_dedup_key, found.dedup_key_file
        close_petition(session, found)
        session.commit()
    assert wrapped is not None and key_file is not None
    assert vault.exists(key_file)
    result = runner.invoke(args=["petition", "forget", petition.slug, "--yes"])  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.output
    assert f"{key_file}.key is destroyed" in result.output
    assert not vault.exists(key_file)

    # Every key the examiner has: the master key and every key file left in the instance.
    keys = [MASTER_KEY, *(path.read_bytes() for path in vault.folder.glob("*.key"))]
    origin = f"petitions.example.org/p/{petition.slug}"
    for key in keys:
        with pytest.raises(KeyUnwrapError):
            unwrap_key(key, wrapped, origin)
    data = files_of(app, database_url)
    if database_url.startswith("sqlite"):
        # Scrubbed besides: neither the tokens nor the wrapped key are left in the files.
        assert not [t for t in tokens if t in data]
        assert wrapped not in data
        # And no 60-byte window anywhere in them opens as a wrapped key with these keys.
        for start in range(0, len(data) - 60):
            window = data[start : start + 60]
            for key in keys:
                with pytest.raises(KeyUnwrapError):
                    unwrap_key(key, window, origin)


def test_the_instance_keeps_its_files_private(
    app: Flask, client: FlaskClient, petition: OpenPetition, database_url: str
) -> None:
    sign_all(client, petition.slug, PHONES[:2])
    vault: Vault = services(app).vault
    assert stat.S_IMODE(vault.folder.stat().st_mode) == 0o700
    for path in vault.folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    if database_url.startswith("sqlite"):
        db = Path(database_url.removeprefix("sqlite:///"))
        files = sorted(db.parent.glob(db.name + "*"))
        assert [p.name[len(db.name) :] for p in files] == ["", "-shm", "-wal"]
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_epoch_outlives_a_signature_being_written_to_it(
    app: Flask, client: FlaskClient, petition: OpenPetition, database_url: str
) -> None:
    """A round that retires an epoch while a signature to it is being written (its
    transaction still open) waits for it, keeps the epoch and its key, and the next round
    seals it: the foreign key from the pending row to its epoch decides."""
    sign_all(client, petition.slug, PHONES[:1])
    vault: Vault = services(app).vault
    with app.app_context():
        session = get_session()
        epoch = current_epoch(session)
        petition_id = get_petition(session, petition.slug).id
    assert epoch is not None
    record = PendingRecord(
        kind=LeafKind.SIGNATURE,
        token=bytes(range(32)),
        commitment=bytes(range(1, 33)),
        details_ciphertext=bytes(DETAILS_CIPHERTEXT_BYTES),
    )
    sealed = seal_pending_record(epoch.public_key, petition.origin, record)
    writer = psycopg.connect(database_url)
    try:
        writer.execute(
            "INSERT INTO pending_signature (id, petition_id, epoch_id, sealed) "
            "VALUES (%s, %s, %s, %s)",
            (bytes(16), petition_id, epoch.id, sealed),
        )
        rounds: list[dict[str, int]] = []
        sealer = threading.Thread(target=lambda: rounds.append(seal(app)))
        sealer.start()
        sealer.join(timeout=2.0)
        assert sealer.is_alive(), "the round did not wait for the signature being written"
        writer.commit()
        sealer.join(timeout=30)
        assert not sealer.is_alive() and rounds == [{petition.slug: 2}]
    finally:
        writer.close()
    # The epoch still holds the late signature: kept, with its key.
    assert vault.exists(key_name(epoch.id))
    assert [p.commitment for p in pending_records(app)] == [record.commitment]
    assert seal(app) == {petition.slug: 3}
    assert not vault.exists(key_name(epoch.id))


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_signature_to_an_epoch_retired_meanwhile_goes_to_the_next(
    app: Flask, petition: OpenPetition, database_url: str
) -> None:
    """A worker's kept epoch is retired by a sealer while the signature's write waits for
    the epoch's row: the write fails on the foreign key, and the signature is sealed to the
    current epoch instead, with no error for the signer."""
    vault: Vault = services(app).vault
    kept = CurrentEpoch(seconds=3600)
    with app.app_context():
        session = get_session()
        old = kept.get(session)
        new = open_epoch(session, vault)
        session.commit()
        petition_id = get_petition(session, petition.slug).id
    record = PendingRecord(
        kind=LeafKind.SIGNATURE,
        token=bytes(range(32)),
        commitment=bytes(range(1, 33)),
        details_ciphertext=bytes(DETAILS_CIPHERTEXT_BYTES),
    )
    retiring = psycopg.connect(database_url)
    try:
        # What retire_epochs does, left uncommitted: the row stays locked until the commit.
        retiring.execute("DELETE FROM seal_epoch WHERE id = %s", (old.id,))
        results: list[Recorded] = []

        def write() -> None:
            with services(app).sessions() as session:
                results.append(
                    record_signature(
                        session,
                        petition_id=petition_id,
                        origin=petition.origin,
                        pending=record,
                        epochs=kept,
                    )
                )

        writer = threading.Thread(target=write)
        writer.start()
        writer.join(timeout=2.0)
        assert writer.is_alive(), "the write did not wait for the epoch's row"
        retiring.commit()
        writer.join(timeout=30)
        assert not writer.is_alive() and results == [Recorded.COUNTED]
    finally:
        retiring.close()
    with app.app_context():
        epochs = get_session().scalars(select(PendingSignature.epoch_id)).all()
    assert new.id in epochs and old.id not in epochs


def test_other_machines_copies_of_a_forgotten_key_are_destroyed(
    app: Flask, client: FlaskClient, petition: OpenPetition, runner: object, tmp_path: Path
) -> None:
    """An app server on another machine holds a copy of each petition's key file; the next
    sealing round there (or `samleng keys tidy`) destroys it once the petition is forgotten,
    and never touches the key file of a petition that is not."""
    sign_all(client, petition.slug, PHONES[:2])
    vault: Vault = services(app).vault
    other = Vault(tmp_path / "other-machine", MASTER_KEY)
    for name in vault.names("dedup-"):
        other.create(name, vault.read(name))
    with app.app_context():
        session = get_session()
        close_petition(session, get_petition(session, petition.slug))
        session.commit()
    assert runner.invoke(args=["petition", "forget", petition.slug, "--yes"]).exit_code == 0  # type: ignore[attr-defined]
    add_petition(app, slug="still-open")
    for name in vault.names("dedup-"):
        other.create(name, vault.read(name))
    with app.app_context():
        destroyed = destroy_forgotten_key_files(get_session(), other)
    assert len(destroyed) == 1
    assert other.names("dedup-") == vault.names("dedup-")  # the open petition's stays
