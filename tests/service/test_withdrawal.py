"""Withdrawal: a signer takes back a counted signature with the receipt code; a kind 0x03
leaf at the next seal names it; the count drops; the verifier checks every withdrawal names
an earlier signature, once. The answer never shows more than a receipt check would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select

from samleng.crypto.audit import main as audit
from samleng.crypto.bundle import sha256sums, verify_bundle
from samleng.crypto.checkpoint import Checkpoint, sign_checkpoint
from samleng.crypto.leaf import LEAF_SIZE, LeafKind, decode_leaf, withdrawal_leaf
from samleng.crypto.merkle import leaf_hash, root_hash
from samleng.crypto.receipts import format_receipt, new_receipt_secret
from samleng.service.petitions.lifecycle import close_petition
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import Leaf, PendingWithdrawal, Petition, get_petition
from samleng.service.tlog.store import log_signer
from tests.conftest import MASTER_KEY, OpenPetition, seal
from tests.service.test_log import export, sign_many


def withdraw(client: FlaskClient, slug: str, code: str, lang: str = "en") -> tuple[int, str]:
    answer = client.post(f"/{lang}/p/{slug}/withdraw", data={"receipt": code})
    assert "Set-Cookie" not in answer.headers and answer.headers["Cache-Control"] == "no-store"
    return answer.status_code, answer.get_data(as_text=True)


def check(client: FlaskClient, slug: str, code: str, lang: str = "en") -> str:
    return client.post(f"/{lang}/p/{slug}/receipt", data={"receipt": code}).get_data(as_text=True)


def pending(app: Flask) -> int:
    with app.app_context():
        return int(get_session().scalar(select(func.count()).select_from(PendingWithdrawal)) or 0)


def test_a_signer_withdraws_and_the_count_drops(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    petition: OpenPetition,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    codes = sign_many(client, petition.slug, 3)
    seal(app)
    page = check(client, petition.slug, codes[0])
    assert "Withdraw my signature" in page and 'action="/en/p/free-them/withdraw"' in page
    status, page = withdraw(client, petition.slug, codes[0], "km")
    assert status == 200 and "ហត្ថលេខារបស់អ្នកកំពុងត្រូវដកវិញ។" in page
    # What the signer sees now is what a check of the code shows: nothing more.
    assert check(client, petition.slug, codes[0], "km") == page
    assert client.get("/p/free-them/count.json").get_json()["count"] == 3
    # Asking twice queues it once.
    withdraw(client, petition.slug, codes[0])
    assert pending(app) == 1
    seal(app)
    assert pending(app) == 0
    assert client.get("/p/free-them/count.json").get_json()["count"] == 2
    assert "Your signature was withdrawn." in check(client, petition.slug, codes[0])
    assert "2 of 100 signatures" in client.get("/en/p/free-them").get_data(as_text=True)
    status, page = withdraw(client, petition.slug, codes[0])
    assert status == 200 and "Your signature was withdrawn." in page and pending(app) == 0
    with app.app_context():
        kinds = [
            decode_leaf(b).kind
            for b in get_session().scalars(select(Leaf.leaf).order_by(Leaf.index))
        ]
    assert kinds.count(LeafKind.WITHDRAWAL) == 1 and kinds[-1] == LeafKind.WITHDRAWAL
    # The others are untouched.
    assert "Your signature is counted." in check(client, petition.slug, codes[1])

    bundle = tmp_path / "bundle"
    export(runner, petition.slug, bundle)
    assert audit(["verify", str(bundle)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["withdrawals 1", "count 2"]
    assert any(line.startswith("ok withdrawals: 1 withdrawals") for line in out)
    report = verify_bundle(bundle)
    assert (report.count, report.withdrawals, report.other_leaves) == (2, 1, (4,))


def test_what_cannot_be_withdrawn(app: Flask, client: FlaskClient, petition: OpenPetition) -> None:
    [waiting] = sign_many(client, petition.slug, 1)
    # Not sealed yet: the page says what a check says, and nothing is queued.
    status, page = withdraw(client, petition.slug, waiting)
    assert status == 200 and "This receipt code is not in the log yet." in page
    status, page = withdraw(client, petition.slug, format_receipt(new_receipt_secret()))
    assert status == 200 and "not in the log yet" in page
    status, page = withdraw(client, petition.slug, "not a code")
    assert status == 400 and "This is not a receipt code." in page
    assert pending(app) == 0
    seal(app)
    with app.app_context():
        session = get_session()
        close_petition(session, get_petition(session, petition.slug))
        session.commit()
    status, page = withdraw(client, petition.slug, waiting, "km")
    assert status == 409 and "ការដកហត្ថលេខាវិញបានបញ្ចប់" in page
    assert "Withdraw my signature" not in check(client, petition.slug, waiting)
    assert pending(app) == 0


def _resign(bundle: Path, leaves: bytes, app: Flask) -> None:
    """What a forger holding the log key does: new leaves, a checkpoint signed over them."""
    (bundle / "leaves.bin").write_bytes(leaves)
    hashes = [leaf_hash(leaves[o : o + LEAF_SIZE]) for o in range(0, len(leaves), LEAF_SIZE)]
    with app.app_context():
        petition = get_session().scalars(select(Petition)).one()
        signer = log_signer(petition, MASTER_KEY)
        note = sign_checkpoint(
            Checkpoint(origin=petition.origin, size=len(hashes), root=root_hash(hashes)), signer
        )
    shutil.rmtree(bundle / "checkpoints")
    os.mkdir(bundle / "checkpoints")
    (bundle / "checkpoint").write_bytes(note)
    (bundle / "checkpoints" / str(len(hashes))).write_bytes(note)
    (bundle / "SHA256SUMS").write_bytes(sha256sums(bundle))


def test_the_verifier_refuses_a_withdrawal_of_nothing(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    petition: OpenPetition,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sign_many(client, petition.slug, 2)
    seal(app)
    bundle = tmp_path / "bundle"
    export(runner, petition.slug, bundle)
    leaves = (bundle / "leaves.bin").read_bytes()
    first_c = leaves[LEAF_SIZE + 17 : LEAF_SIZE + 49]  # the first signature's c
    wrong_c = withdrawal_leaf(first_c)[:17] + bytes(32) + first_c
    later = leaves[:LEAF_SIZE] + withdrawal_leaf(first_c) + leaves[LEAF_SIZE:]
    cases = (
        ("of nothing", leaves + withdrawal_leaf(bytes(32)), "withdraws no signature earlier"),
        ("of a later one", later, "withdraws no signature earlier"),
        ("of the header", leaves + withdrawal_leaf(leaves[17:49]), "withdraws no signature"),
        ("with a wrong c", leaves + wrong_c, "H(label || d)"),
    )
    for name, forged, expected in cases:
        copy = tmp_path / name.replace(" ", "-")
        shutil.copytree(bundle, copy)
        _resign(copy, forged, app)
        assert audit(["verify", str(copy)]) == 1, name
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error.startswith("error: withdrawals: ") and expected in error, (name, error)
    twice = tmp_path / "twice"
    shutil.copytree(bundle, twice)
    signature_c = leaves[LEAF_SIZE + 17 : LEAF_SIZE + 49]
    _resign(twice, leaves + withdrawal_leaf(signature_c) * 2, app)
    assert audit(["verify", str(twice)]) == 1
    assert "repeats the commitment" in capsys.readouterr().err
