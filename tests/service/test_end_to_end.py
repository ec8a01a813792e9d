"""The organisers' whole path (docs/organisers.md), through the real command lines and pages.

keygen → petition create with the public key file → open → sign with details (a journalist keeps
a checkpoint, a signer downloads a receipt proof) → close → seal → export → verify (against the
kept checkpoint and the receipt) → export-details → decrypt (the details come back) → sample
(seeded with the final checkpoint's hash; same seed, same indices).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from samleng.crypto.audit import main as audit
from samleng.crypto.tokens import Argon2Params
from samleng.service.platform.context import services
from samleng.service.tlog.store import seal_all
from tests.conftest import TEXTS, receipt_of, sign

PASSPHRASE = "ដើមត្នោត rice field monsoon lantern"
SIGNERS = [
    {"identifier": "012 345 001", "name": "សុខ ដារ៉ា", "locality": "ភ្នំពេញ", "comment": "ដោះលែង"},
    {"identifier": "012 345 002"},
    {"identifier": "012 345 003", "name": "Chan Thy", "contact": "thy@example.org"},
    {"identifier": "012 345 004", "locality": "Battambang", "comment": "Free them all."},
]


def cli(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_organisers_path(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(
        "samleng.crypto.audit.KEYFILE_ARGON2",
        Argon2Params(time_cost=1, memory_kib=8, parallelism=1),
    )
    offline = tmp_path / "offline"
    offline.mkdir()
    passphrase = offline / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n", encoding="utf-8")

    # 1. On the offline machine: the key pair.
    keys = offline / "organisers"
    assert audit(["keygen", "--out", str(keys), "--passphrase-file", str(passphrase)]) == 0
    capsys.readouterr()

    # 2. On the server: create with the public key file, open.
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(TEXTS), encoding="utf-8")
    cli(
        runner, "petition", "create", "free-them", "--texts", str(texts), "--goal", "10",
        "--identifier", "phone", "--details-key", f"{keys}.pub",
    )  # fmt: skip
    cli(runner, "petition", "open", "free-them")

    # 3. Signers sign, some with details; one signer's repeat is not counted.
    receipts = []
    for signer in SIGNERS:
        response = sign(client, "free-them", **signer)
        assert response.status_code == 200
        receipts.append(receipt_of(response))
    seal_all(services(app).engine, services(app).vault)
    kept = tmp_path / "checkpoint-kept"  # what a journalist saves from the site
    kept.write_bytes(client.get("/p/free-them/checkpoint").data)
    proof = tmp_path / "receipt-proof.txt"  # what the first signer downloads
    answer = client.post(
        "/en/p/free-them/receipt", data={"receipt": receipts[0], "format": "proof"}
    )
    assert answer.status_code == 200
    proof.write_bytes(answer.data)
    sign(client, "free-them", identifier="012 345 001")  # a repeat
    sign(client, "free-them", identifier="012 345 005", name="Last")  # pending at closing

    # 4. Close, seal what was pending, export the bundle and the sealed details.
    cli(runner, "petition", "close", "free-them")
    seal_all(services(app).engine, services(app).vault)
    bundle = tmp_path / "bundle"
    cli(runner, "export", "free-them", str(bundle))
    assert (bundle / "delivery.pdf").is_file()
    details = tmp_path / "details.bin"
    assert "wrote 5 sealed records" in cli(runner, "export-details", "free-them", str(details))

    # 5. Anyone verifies the bundle; the journalist against the checkpoint kept during signing,
    # the signer against their receipt proof.
    assert audit(["verify", str(bundle), "--known-checkpoint", str(kept)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "count 5"
    assert audit(["receipt", str(proof), "--bundle", str(bundle)]) == 0
    assert "the bundle counts 5" in capsys.readouterr().out

    # 6. Offline: the details come back, one row per signature (order is the log's).
    out = offline / "details.csv"
    assert (
        audit(
            [
                "decrypt",
                "--key",
                f"{keys}.key",
                "--bundle",
                str(bundle),
                "--passphrase-file",
                str(passphrase),
                "--out",
                str(out),
                str(details),
            ]
        )  # fmt: skip
        == 0
    )
    err = capsys.readouterr().err
    assert "opened 5 of 5 records" in err
    assert "សុខ" not in err and "Chan Thy" not in err
    table = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert sorted(row["index"] for row in table) == ["1", "2", "3", "4", "5"]
    got = sorted((row["name"], row["locality"], row["comment"], row["contact"]) for row in table)
    assert got == sorted(
        [
            ("សុខ ដារ៉ា", "ភ្នំពេញ", "ដោះលែង", ""),
            ("", "", "", ""),
            ("Chan Thy", "", "", "thy@example.org"),
            ("", "Battambang", "Free them all.", ""),
            ("Last", "", "", ""),
        ]
    )

    # 7. The sample audit: the same seed gives the same indices, anywhere.
    final_hash = hashlib.sha256((bundle / "checkpoint").read_bytes()).hexdigest()  # published
    seed = f"{final_hash} Cambodia lottery 2026-03-01: 482913"  # then the draw
    sample = ["sample", "--bundle", str(bundle), "--seed", seed, "-k", "3"]
    assert audit(sample) == 0
    first = capsys.readouterr()
    indices = [int(line) for line in first.out.splitlines()]
    assert len(set(indices)) == 3 and all(1 <= i <= 5 for i in indices)
    assert "detection probability" in first.err
    assert audit(sample) == 0
    assert capsys.readouterr().out == first.out

    # 8. The public bundle.zip is what the delivery document's QR code points at.
    response = client.get("/p/free-them/bundle.zip")
    assert response.status_code == 200
    response.close()

    # 9. Forget: the dedup key and tokens go; the log and its bundle stay public.
    cli(runner, "petition", "forget", "free-them", "--yes")
    assert audit(["verify", str(bundle)]) == 0
