"""What the service publishes verifies with Go's sumdb/note and sumdb/tlog.

The bundle comes from ``samleng export`` and the receipt proof from the web page, exactly as
an auditor and a signer would get them.
"""

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from samleng.service.platform.context import services
from samleng.service.tlog.store import seal_all
from tests.conftest import OpenPetition, receipt_of, sign
from tests.interop.conftest import run


def test_go_verifies_an_exported_bundle_and_a_web_receipt(
    go_verify: Path,
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    petition: OpenPetition,
    tmp_path: Path,
) -> None:
    codes = [
        receipt_of(sign(client, petition.slug, identifier=f"012 345 {i:03d}")) for i in range(6)
    ]
    seal_all(services(app).engine, services(app).vault)
    sign(client, petition.slug, identifier="012 999 999")
    seal_all(services(app).engine, services(app).vault)

    bundle = tmp_path / "bundle"
    assert runner.invoke(args=["export", petition.slug, str(bundle)]).exit_code == 0
    checked = run(go_verify, "bundle", bundle)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[-1] == "count 7"

    proof = client.post(
        f"/en/p/{petition.slug}/receipt", data={"receipt": codes[3], "format": "proof"}
    )
    assert proof.status_code == 200
    (tmp_path / "proof.txt").write_bytes(proof.data)
    receipt = run(go_verify, "receipt", tmp_path / "proof.txt", bundle / "vkey")
    assert receipt.returncode == 0, receipt.stderr
