"""Endorsements end to end: the public request form, the organisers' approval, kind 0x06
leaves at the next seal, the page and delivery.pdf, and a bundle whose verifier prints the
endorsers apart from the signers and refuses a tampered endorsements.json."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select

from samleng.crypto.audit import main as audit
from samleng.crypto.bundle import sha256sums
from samleng.crypto.endorsement import ENDORSEMENTS_FILE
from samleng.crypto.leaf import LeafKind, decode_leaf
from samleng.service.petitions import endorsements
from samleng.service.petitions.lifecycle import close_petition
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import Endorsement, Leaf, get_petition
from samleng.service.platform.trail import events
from tests.conftest import OpenPetition, add_petition, seal
from tests.service.test_admin import (
    admin_client,
    cheap_passwords,  # noqa: F401  (the fixture: cheap password hashes here too)
    csrf_of,
    login,
    make_account,
)
from tests.service.test_custody import create, make_machines
from tests.service.test_log import sign_many

TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
RIVER = {
    "name_km": "អ្នកការពារទន្លេ",
    "name_en": "River Defenders",
    "website": "https://river.example",
}


def request_form(
    client: FlaskClient, slug: str, lang: str = "en", **fields: str
) -> tuple[int, str]:
    page = client.get(f"/{lang}/p/{slug}/endorse")
    match = TOKEN.search(page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)
    answer = client.post(f"/{lang}/p/{slug}/endorse", data={"form_token": match.group(1), **fields})
    return answer.status_code, answer.get_data(as_text=True)


def rows(app: Flask) -> list[Endorsement]:
    with app.app_context():
        found = get_session().scalars(select(Endorsement).order_by(Endorsement.id)).all()
        get_session().expunge_all()
        return list(found)


def organiser(app: Flask) -> tuple[FlaskClient, str]:
    make_account(app, "sokha")
    client = admin_client(app)
    login(client, "sokha")
    return client, csrf_of(client)


def export(runner: FlaskCliRunner, slug: str, target: Path) -> None:
    result = runner.invoke(args=["export", slug, str(target)])
    assert result.exit_code == 0, result.output


def test_a_request_approved_is_logged_listed_and_verified_apart_from_the_count(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    petition: OpenPetition,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sign_many(client, petition.slug, 3)
    status, page = request_form(client, petition.slug, **RIVER, contact="+855 12 000 111")
    assert status == 200 and "Your request was sent to the organisers." in page
    [waiting] = rows(app)
    assert (waiting.status, waiting.contact, waiting.record) == (
        "requested",
        "+855 12 000 111",
        None,
    )
    assert "River Defenders" not in client.get(f"/en/p/{petition.slug}").get_data(as_text=True)

    admin, csrf = organiser(app)
    dashboard = admin.get(f"/admin/p/{petition.slug}").get_data(as_text=True)
    assert "+855 12 000 111" in dashboard
    answer = admin.post(
        f"/admin/p/{petition.slug}/endorsements/approve",
        data={"csrf": csrf, "endorsement": str(waiting.id)},
    )
    assert answer.status_code == 302
    [approved] = rows(app)
    assert approved.status == "approved" and approved.contact is None and approved.record
    seal(app)
    with app.app_context():
        kinds = [
            decode_leaf(leaf).kind
            for leaf in get_session().scalars(select(Leaf.leaf).order_by(Leaf.index))
        ]
    assert kinds.count(LeafKind.ENDORSEMENT) == 1 and kinds[-1] == LeafKind.ENDORSEMENT
    # The endorsement is a leaf, never a signature.
    assert client.get(f"/p/{petition.slug}/count.json").get_json() == {
        "count": 3,
        "online": 3,
        "paper": 0,
        "photos": 0,
        "goal": 100,
        "size": 5,
    }
    en = client.get(f"/en/p/{petition.slug}").get_data(as_text=True)
    assert "3 of 100 signatures" in en
    assert (
        'Endorsed by 1 organisation: <a href="https://river.example" rel="noreferrer noopener">'
        "River Defenders</a>" in en
    )
    km = client.get(f"/km/p/{petition.slug}").get_data(as_text=True)
    assert "គាំទ្រដោយអង្គការចំនួន ១៖" in km and "អ្នកការពារទន្លេ" in km

    bundle = tmp_path / "bundle"
    export(runner, petition.slug, bundle)
    assert audit(["verify", str(bundle)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [
        "endorsements 1",
        "endorsed by: River Defenders / អ្នកការពារទន្លេ",
        "count 3",
    ]
    assert any(line.startswith("ok endorsements: 1 records match") for line in out)

    # Tampered: a name changed, a record dropped, the file removed; the sums redone each time.
    record = json.loads((bundle / ENDORSEMENTS_FILE).read_bytes())
    renamed = [dict(record[0], name={"en": "Someone Else", "km": "អ្នកផ្សេង"})]
    for name, content, expected in (
        (
            "renamed",
            json.dumps(renamed, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode(),
            "does not hash to c",
        ),
        ("dropped", b"[]", "has 0 records, the log 1"),
        (
            "spaced",
            (bundle / ENDORSEMENTS_FILE).read_bytes().replace(b",", b", ", 1),
            "not canonical JSON",
        ),
        ("removed", None, "no endorsements.json"),
    ):
        copy = tmp_path / name
        shutil.copytree(bundle, copy)
        if content is None:
            (copy / ENDORSEMENTS_FILE).unlink()
        else:
            (copy / ENDORSEMENTS_FILE).write_bytes(content)
        (copy / "SHA256SUMS").write_bytes(sha256sums(copy))
        assert audit(["verify", str(copy)]) == 1, name
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error.startswith("error: endorsements: ") and expected in error, (name, error)


def test_withdrawal_and_refusal(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    petition: OpenPetition,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    admin, csrf = organiser(app)
    add = admin.post(f"/admin/p/{petition.slug}/endorsements/add", data={"csrf": csrf, **RIVER})
    assert add.status_code == 302
    request_form(client, petition.slug, name_km="ក្រុមព្រៃឈើ", name_en="Forest Group")
    refused_row = rows(app)[1]
    refused = admin.post(
        f"/admin/p/{petition.slug}/endorsements/reject",
        data={"csrf": csrf, "endorsement": str(refused_row.id)},
    )
    assert refused.status_code == 302
    assert [r.name_en for r in rows(app)] == ["River Defenders"]  # nothing of the refused kept
    seal(app)
    river = rows(app)[0]
    withdrawn = admin.post(
        f"/admin/p/{petition.slug}/endorsements/withdraw",
        data={"csrf": csrf, "endorsement": str(river.id)},
    )
    assert withdrawn.status_code == 302
    seal(app)
    [row] = rows(app)
    assert row.leaf_index == 1 and row.withdrawal_leaf_index == 2
    assert "River Defenders" not in client.get(f"/en/p/{petition.slug}").get_data(as_text=True)
    bundle = tmp_path / "bundle"
    export(runner, petition.slug, bundle)
    assert audit(["verify", str(bundle)]) == 0
    assert capsys.readouterr().out.splitlines()[-3:] == [
        "endorsements 0",
        "withdrawn: River Defenders / អ្នកការពារទន្លេ",
        "count 0",
    ]
    again = admin.post(
        f"/admin/p/{petition.slug}/endorsements/withdraw",
        data={"csrf": csrf, "endorsement": str(river.id)},
    )
    assert again.status_code == 409 and "withdrawn already" in again.get_data(as_text=True)
    with app.app_context():
        trail = [e.action for e in events(get_session())]
    assert {"endorsement-add", "endorsement-reject", "endorsement-withdraw"} <= set(trail)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name_km": "", "name_en": "X"}, "name_km", "name in Khmer"),
        ({"name_km": "ក", "name_en": "x" * 201}, "name_en", "name in English"),
        ({"name_km": "ក", "name_en": "bell\u0007"}, "name_en", "name in English"),
        ({"name_km": "ក\u202e", "name_en": "X"}, "name_km", "name in Khmer"),
        ({"name_km": "ក", "name_en": "X", "website": "javascript:alert(1)"}, "website", "https://"),
        ({"name_km": "ក", "name_en": "X", "website": "https://[bad"}, "website", "https://"),
        ({"name_km": "ក", "name_en": "X", "contact": "c" * 301}, "contact", "300"),
    ],
)
def test_the_public_form_refuses_bad_input_and_keeps_nothing(
    app: Flask,
    client: FlaskClient,
    petition: OpenPetition,
    fields: dict[str, str],
    field: str,
    message: str,
) -> None:
    status, page = request_form(client, petition.slug, **fields)
    assert status == 400
    assert "Your request was not sent." in page and message in page
    assert f'id="e-{field}"' in page
    assert rows(app) == []


def test_the_public_form_in_khmer_and_its_refusals(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    status, page = request_form(client, petition.slug, "km", name_km="", name_en="X")
    assert status == 400 and "សូមសរសេរឈ្មោះអង្គការជាភាសាខ្មែរ" in page
    # Without a token, or with one used already: refused, nothing stored.
    answer = client.post(f"/en/p/{petition.slug}/endorse", data=RIVER)
    assert answer.status_code == 400 and "too old" in answer.get_data(as_text=True)
    page_html = client.get(f"/en/p/{petition.slug}/endorse").get_data(as_text=True)
    token = TOKEN.search(page_html)
    assert token
    assert (
        client.post(
            f"/en/p/{petition.slug}/endorse", data={"form_token": token.group(1), **RIVER}
        ).status_code
        == 200
    )
    twice = client.post(
        f"/en/p/{petition.slug}/endorse", data={"form_token": token.group(1), **RIVER}
    )
    assert twice.status_code == 400 and "already sent" in twice.get_data(as_text=True)
    assert len(rows(app)) == 1
    assert "Set-Cookie" not in twice.headers and twice.headers["Cache-Control"] == "no-store"


def test_a_closed_petition_takes_no_endorsement(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="over")
    page = client.get("/en/p/over/endorse").get_data(as_text=True)
    token = TOKEN.search(page)
    assert token
    with app.app_context():
        session = get_session()
        close_petition(session, get_petition(session, "over"))
        session.commit()
    answer = client.post("/en/p/over/endorse", data={"form_token": token.group(1), **RIVER})
    assert answer.status_code == 409 and "This petition is closed." in answer.get_data(as_text=True)
    assert rows(app) == []
    assert client.get("/en/p/nope/endorse").status_code == 404


def test_the_queue_has_a_cap(
    app: Flask, client: FlaskClient, petition: OpenPetition, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endorsements, "MAX_WAITING", 1)
    assert request_form(client, petition.slug, **RIVER)[0] == 200
    status, page = request_form(client, petition.slug, name_km="ក", name_en="Second")
    assert status == 503 and "Too many requests are waiting" in page
    assert len(rows(app)) == 1


def test_details_stay_matched_to_their_leaves_around_endorsements(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    machines = make_machines(tmp_path / "machines", 1)
    status, output = create(app, "mixed", machines)
    assert status == 0, output
    assert runner.invoke(args=["petition", "open", "mixed"]).exit_code == 0
    sign_many(client, "mixed", 2)
    seal(app)
    added = runner.invoke(
        args=["endorsement", "add", "mixed", "--name-km", "ក", "--name-en", "First"]
    )
    assert added.exit_code == 0, added.output
    sign_many(client, "mixed", 2, start=10)
    seal(app)  # the endorsement leaf comes after this batch's signatures
    sign_many(client, "mixed", 1, start=20)
    seal(app)
    listed = runner.invoke(args=["endorsement", "list", "mixed"]).output
    assert re.fullmatch(r"\d+\tleaf 5\tFirst\tក\t\n", listed), listed
    bundle, details = tmp_path / "bundle", tmp_path / "details.bin"
    export(runner, "mixed", bundle)
    assert runner.invoke(args=["export-details", "mixed", str(details)]).exit_code == 0
    out = tmp_path / "details.csv"
    machine = machines[0]
    assert audit([
        "decrypt", "--key", str(machine / "org.key"), "--bundle", str(bundle), str(details),
        "--out", str(out), "--passphrase-file", str(machine / "passphrase.txt"),
    ]) == 0  # fmt: skip
    with out.open(newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert sorted(int(row[0]) for row in table[1:]) == [1, 2, 3, 4, 6]
    # The sample audit draws signature leaves only.
    from samleng.crypto.bundle import verify_bundle
    from samleng.crypto.checkpoint import Checkpoint
    from samleng.crypto.sample import sample_indices

    report = verify_bundle(bundle)
    assert report.count == 5 and report.other_leaves == (5,)
    final = Checkpoint(origin=report.origin, size=report.size, root=report.root)
    drawn = sample_indices(final, "seed", 5, frozenset(report.other_leaves))
    assert sorted(drawn) == [1, 2, 3, 4, 6]
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Endorsement)) == 1
    services(app).engine.dispose()
