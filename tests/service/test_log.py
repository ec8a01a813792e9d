"""The signature log through the app: sealing, checkpoints, proofs, receipts, export."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from samleng.crypto.audit import main as audit
from samleng.crypto.bundle import sha256sums
from samleng.crypto.checkpoint import (
    Checkpoint,
    LogSigner,
    generate_log_signer,
    parse_checkpoint_body,
    sign_checkpoint,
    verify_checkpoint,
)
from samleng.crypto.details import details_digest, open_details
from samleng.crypto.leaf import LEAF_SIZE, LeafKind, decode_leaf
from samleng.crypto.merkle import verify_consistency
from samleng.crypto.receipts import parse_receipt, receipt_commitment
from samleng.crypto.tlogproof import verify_receipt
from samleng.service.petitions.lifecycle import close_petition
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import Leaf, Petition, get_petition
from samleng.service.tlog.store import log_signer, seal_all
from tests.conftest import MASTER_KEY, OpenPetition, receipt_of, sign


def seal(app: Flask) -> dict[str, int]:
    return seal_all(services(app).engine, services(app).vault)


def vkey_of(client: FlaskClient, slug: str) -> str:
    return client.get(f"/p/{slug}/vkey").get_data(as_text=True).strip()


def sign_many(client: FlaskClient, slug: str, n: int, start: int = 0) -> list[str]:
    return [
        receipt_of(sign(client, slug, identifier=f"012 345 {start + i:03d}", name=f"N{i}"))
        for i in range(n)
    ]


def test_opening_writes_the_header_and_first_checkpoint(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    vkey = vkey_of(client, petition.slug)
    note = client.get(f"/p/{petition.slug}/checkpoint")
    assert note.mimetype == "text/plain"
    checkpoint = verify_checkpoint(note.data, vkey)
    assert (checkpoint.origin, checkpoint.size) == (petition.origin, 1)
    with app.app_context():
        stored = get_session().scalars(select(Petition)).one()
        header = decode_leaf(get_session().scalars(select(Leaf.leaf)).one())
    assert stored.petition_json is not None
    assert header.kind == LeafKind.HEADER
    assert header.c == hashlib.sha256(stored.petition_json).digest()
    assert client.get(f"/p/{petition.slug}/count.json").get_json() == {
        "count": 0,
        "online": 0,
        "paper": 0,
        "photos": 0,
        "goal": 100,
        "size": 1,
    }


def test_seal_counts_and_proves(app: Flask, client: FlaskClient, petition: OpenPetition) -> None:
    vkey = vkey_of(client, petition.slug)
    sign_many(client, petition.slug, 3)
    assert client.get(f"/p/{petition.slug}/count.json").get_json()["count"] == 0
    assert seal(app) == {petition.slug: 4}
    assert seal(app) == {}
    sign_many(client, petition.slug, 5, start=100)
    assert seal(app) == {petition.slug: 9}
    assert client.get(f"/p/{petition.slug}/count.json").get_json()["count"] == 8
    page = client.get(f"/en/p/{petition.slug}").get_data(as_text=True)
    assert "8 of 100 signatures" in page and "Checkpoint fingerprint" in page

    latest = verify_checkpoint(client.get(f"/p/{petition.slug}/checkpoint").data, vkey)
    for old_size in (1, 4):
        old = verify_checkpoint(client.get(f"/p/{petition.slug}/checkpoints/{old_size}").data, vkey)
        text = client.get(f"/p/{petition.slug}/proof/consistency?old={old_size}").data
        proof = [base64.b64decode(line) for line in text.splitlines()]
        verify_consistency(old.size, latest.size, old.root, latest.root, proof)
    assert client.get(f"/p/{petition.slug}/checkpoints/5").status_code == 404
    assert client.get(f"/p/{petition.slug}/proof/consistency?old=99").status_code == 400
    assert client.get(f"/p/{petition.slug}/proof/consistency?old=x").status_code == 400


def test_batches_are_shuffled(app: Flask, client: FlaskClient, petition: OpenPetition) -> None:
    receipts = sign_many(client, petition.slug, 40)
    seal(app)
    order = [receipt_commitment(petition.origin, parse_receipt(r)) for r in receipts]
    with app.app_context():
        sealed = get_session().scalars(select(Leaf.commitment).order_by(Leaf.index)).all()[1:]
    assert sorted(sealed) == sorted(order)
    assert sealed != order  # 1 / 40! that a fair shuffle keeps the order


def test_receipt_page(app: Flask, client: FlaskClient, petition: OpenPetition) -> None:
    vkey = vkey_of(client, petition.slug)
    code = sign_many(client, petition.slug, 2)[1]
    url = f"/km/p/{petition.slug}/receipt"
    form = client.get(url)
    assert form.status_code == 200 and 'name="receipt"' in form.get_data(as_text=True)
    waiting = client.post(url.replace("/km/", "/en/"), data={"receipt": code, "format": "page"})
    assert "not in the log yet" in waiting.get_data(as_text=True)
    seal(app)
    lower = code.lower().replace("-", " ")
    counted = client.post(url.replace("/km/", "/en/"), data={"receipt": lower, "format": "page"})
    page = counted.get_data(as_text=True)
    assert "Your signature is counted" in page
    # The count is 2: the log's header entry is not a signature, so it is not "of 3".
    assert re.search(r"It is entry [12] of the 2 entries in the signature log", page), page
    assert counted.headers["Cache-Control"] == "no-store"
    proof = client.post(url, data={"receipt": code, "format": "proof"})
    assert proof.mimetype == "text/plain" and "attachment" in proof.headers["Content-Disposition"]
    check = verify_receipt(proof.data, vkey)
    assert (check.origin, check.size, check.kind) == (petition.origin, 3, LeafKind.SIGNATURE)


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AA", 200, "not in the log yet"),
        ("not a code", 400, "is not a receipt code"),
        ("", 400, "is not a receipt code"),
        ("A" * 5000, 400, "is not a receipt code"),
    ],
)
def test_receipt_page_refusals(
    client: FlaskClient, petition: OpenPetition, code: str, status: int, message: str
) -> None:
    response = client.post(f"/en/p/{petition.slug}/receipt", data={"receipt": code})
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    # No number or address is on this page for "this" to point at.
    assert "this phone number" not in response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers


def test_a_repeat_and_a_new_signature_look_alike_until_the_next_batch(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    """Right after signing, the receipt page says the same of a new signature's code and of
    a repeated number's (both stored, sealed alike): not in the log yet. Only after the batch
    do they differ, as the count does (SECURITY.md). Signed within one epoch, either may be
    the one the sealer keeps."""
    url = f"/en/p/{petition.slug}/receipt"
    new = receipt_of(sign(client, petition.slug, identifier="012 345 678"))
    repeat = receipt_of(sign(client, petition.slug, identifier="+855 12 345 678"))

    def answer(code: str) -> str:
        page = client.post(url, data={"receipt": code})
        assert page.status_code == 200
        return page.get_data(as_text=True).replace(code, "CODE")

    assert answer(new) == answer(repeat)
    assert "not in the log yet" in answer(new)
    seal(app)
    counted = [code for code in (new, repeat) if "Your signature is counted" in answer(code)]
    assert len(counted) == 1
    other = repeat if counted == [new] else new
    assert "not in the log yet" in answer(other)  # while the petition takes signatures
    with app.app_context():
        session = get_session()
        close_petition(session, get_petition(session, petition.slug))
        session.commit()
    assert "was not found" in answer(other)  # nothing can arrive any more


def test_a_closed_petition_with_signatures_waiting_still_says_not_yet(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    code = receipt_of(sign(client, petition.slug, identifier="012 345 678"))
    with app.app_context():
        session = get_session()
        close_petition(session, get_petition(session, petition.slug))
        session.commit()
    url = f"/en/p/{petition.slug}/receipt"
    for typed in (code, "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AA"):
        assert "not in the log yet" in client.post(url, data={"receipt": typed}).get_data(
            as_text=True
        )
    seal(app)
    assert "counted" in client.post(url, data={"receipt": code}).get_data(as_text=True)
    unknown = client.post(url, data={"receipt": "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AA"})
    assert "was not found" in unknown.get_data(as_text=True)


def test_concurrent_sealers_make_one_log(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    sign_many(client, petition.slug, 30)
    results: list[dict[str, int]] = []
    threads = [threading.Thread(target=lambda: results.append(seal(app))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=len) == [{}, {}, {}, {petition.slug: 31}]
    with app.app_context():
        indices = get_session().scalars(select(Leaf.index).order_by(Leaf.index)).all()
    assert indices == list(range(31))


def _flipper(offset: int) -> Callable[[Path, LogSigner], None]:
    def flip(bundle: Path, _signer: LogSigner) -> None:
        data = bytearray((bundle / "leaves.bin").read_bytes())
        data[3 * LEAF_SIZE + offset] ^= 0x08  # kind 0x01 becomes 0x09, which no version defines
        (bundle / "leaves.bin").write_bytes(bytes(data))

    return flip


def _drop_leaf(bundle: Path, _signer: LogSigner) -> None:
    data = (bundle / "leaves.bin").read_bytes()
    (bundle / "leaves.bin").write_bytes(data[: 2 * LEAF_SIZE] + data[3 * LEAF_SIZE :])


def _swap_leaves(bundle: Path, _signer: LogSigner) -> None:
    data = (bundle / "leaves.bin").read_bytes()
    a, b = data[2 * LEAF_SIZE : 3 * LEAF_SIZE], data[3 * LEAF_SIZE : 4 * LEAF_SIZE]
    (bundle / "leaves.bin").write_bytes(data[: 2 * LEAF_SIZE] + b + a + data[4 * LEAF_SIZE :])


def _edit_petition(bundle: Path, _signer: LogSigner) -> None:
    text = (bundle / "petition.json").read_text(encoding="utf-8")
    (bundle / "petition.json").write_text(text.replace('"goal":100', '"goal":10'), "utf-8")


def _foreign_checkpoint(bundle: Path, _signer: LogSigner) -> None:
    note = (bundle / "checkpoint").read_bytes()
    body = note[: note.index(b"\n\n") + 1]
    _, other = generate_log_signer(body.split(b"\n")[0].decode())
    checkpoint = parse_checkpoint_body(body)
    forged = sign_checkpoint(checkpoint, other)
    (bundle / "checkpoint").write_bytes(forged)
    (bundle / "checkpoints" / str(checkpoint.size)).write_bytes(forged)


def _fork_history(bundle: Path, signer: LogSigner) -> None:
    note = (bundle / "checkpoints" / "5").read_bytes()
    checkpoint = parse_checkpoint_body(note[: note.index(b"\n\n") + 1])
    fork = Checkpoint(origin=checkpoint.origin, size=5, root=hashlib.sha256(b"fork").digest())
    (bundle / "checkpoints" / "5").write_bytes(sign_checkpoint(fork, signer))


# Each tampering, and the check that must name it. A changed byte inside a leaf's hashes and
# a swap of two leaves are indistinguishable to any verifier: both change the root.
TAMPERS = {
    "flip-kind-byte": (_flipper(16), "leaf format: leaf 3"),
    "flip-digest-byte": (_flipper(60), "root:"),
    "drop-leaf": (_drop_leaf, "tree size:"),
    "swap-leaves": (_swap_leaves, "root:"),
    "edit-petition": (_edit_petition, "header leaf:"),
    "foreign-key": (_foreign_checkpoint, "checkpoint signature:"),
    "forked-history": (_fork_history, "historical checkpoints consistent:"),
}


def export(runner: FlaskCliRunner, slug: str, target: Path) -> None:
    result = runner.invoke(args=["export", slug, str(target)])
    assert result.exit_code == 0, result.output


def test_export_verifies_and_tampering_is_caught(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    petition: OpenPetition,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sign_many(client, petition.slug, 4)
    seal(app)
    sign_many(client, petition.slug, 3, start=50)
    assert runner.invoke(args=["seal"]).output == f"sealed {petition.slug}\n"
    bundle = tmp_path / "bundle"
    export(runner, petition.slug, bundle)
    assert sorted(p.name for p in (bundle / "checkpoints").iterdir()) == ["1", "5", "8"]
    assert audit(["verify", str(bundle)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "count 7"

    refused = runner.invoke(args=["export", petition.slug, str(bundle)])
    assert refused.exit_code != 0 and "exists" in refused.output

    with app.app_context():
        signer = log_signer(get_session().scalars(select(Petition)).one(), MASTER_KEY)
    for name, (tamper, expected) in TAMPERS.items():
        copy = tmp_path / name
        shutil.copytree(bundle, copy)
        tamper(copy, signer)
        (copy / "SHA256SUMS").write_bytes(sha256sums(copy))  # a forger would redo the sums
        assert audit(["verify", str(copy)]) == 1, name
        message = capsys.readouterr().err.strip().splitlines()[-1]
        assert message.startswith("error: " + expected), (name, message)


def test_export_details_for_the_key_holder(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    petition: OpenPetition,
    tmp_path: Path,
) -> None:
    sign_many(client, petition.slug, 3)
    seal(app)
    out = tmp_path / "details.bin"
    result = runner.invoke(args=["export-details", petition.slug, str(out)])
    assert result.exit_code == 0 and "wrote 3 sealed records" in result.output
    data = out.read_bytes()
    with app.app_context():
        leaves = get_session().scalars(select(Leaf).order_by(Leaf.index)).all()[1:]
    names = set()
    offset = 0
    for leaf in leaves:
        (length,) = struct.unpack(">H", data[offset : offset + 2])
        ct = data[offset + 2 : offset + 2 + length]
        offset += 2 + length
        decoded = decode_leaf(leaf.leaf)
        assert len(leaf.leaf) == LEAF_SIZE and details_digest(ct) == decoded.d
        names.add(
            open_details(petition.details_private_key, petition.origin, decoded.c, ct)["name"]
        )
    assert offset == len(data) and names == {"N0", "N1", "N2"}
