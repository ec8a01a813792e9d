"""Coalition custody through the service: a 2-of-3 petition made with the command line,
signed through the form, its details exported and opened by two organisations on machines
of their own, and combined; and the single-key petitions made before it, unchanged."""

from __future__ import annotations

import base64
import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from samleng.crypto.audit import main as audit
from samleng.crypto.custody import Custody, custody_from_petition, single_key_custody
from samleng.crypto.details import generate_details_keypair
from samleng.crypto.keyfile import generate_key_files
from samleng.crypto.tokens import Argon2Params
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import AuditEvent, Leaf, Petition, get_petition
from tests.conftest import TEXTS, add_petition, receipt_of, seal, sign
from tests.service.test_admin import (
    admin_client,
    cheap_passwords,  # noqa: F401  (the fixture: cheap password hashes here too)
    csrf_of,
    draft_form,
    login,
    make_account,
)
from tests.service.test_verification import Inbox, link_path, make_mail_app, smtp  # noqa: F401

CHEAP = Argon2Params(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "seven random words make a fine passphrase"
SIGNERS = [
    {"name": "Sok Dara", "locality": "Phnom Penh"},
    {"name": "Chan Thy", "comment": "Free them"},
    {},  # no details at all: the record is as long as the others
    {"locality": "Siem Reap", "contact": "thy@example.org"},
]


@dataclass
class Coalition:
    slug: str
    machines: list[Path]
    work: Path


def make_machines(where: Path, n: int = 3) -> list[Path]:
    """Each organisation's machine: its key file (made offline) and passphrase."""
    machines = []
    for org in range(1, n + 1):
        machine = where / f"org-{org}"
        machine.mkdir(parents=True)
        private, public = generate_key_files(PASSPHRASE, CHEAP)
        (machine / "org.key").write_bytes(private)
        (machine / "org.pub").write_bytes(public)
        (machine / "passphrase.txt").write_text(PASSPHRASE + "\n")
        machines.append(machine)
    return machines


def create(app: Flask, slug: str, machines: list[Path], *extra: str) -> tuple[int, str]:
    texts = machines[0].parent / "texts.json"
    texts.write_text(json.dumps(TEXTS), encoding="utf-8")
    keys = [arg for m in machines for arg in ("--details-key", str(m / "org.pub"))]
    result = app.test_cli_runner().invoke(
        args=["petition", "create", slug, "--texts", str(texts), "--goal", "100",
              "--identifier", "phone", *keys, *extra]
    )  # fmt: skip
    return result.exit_code, result.output


def coalition_petition(
    app: Flask, client: FlaskClient, where: Path, slug: str = "coalition"
) -> Coalition:
    machines = (
        make_machines(where / "machines")
        if not (where / "machines").exists()
        else [where / "machines" / f"org-{i}" for i in (1, 2, 3)]
    )
    status, output = create(app, slug, machines, "--threshold", "2")
    assert status == 0, output
    assert app.test_cli_runner().invoke(args=["petition", "open", slug]).exit_code == 0
    for i, fields in enumerate(SIGNERS):
        receipt_of(sign(client, slug, identifier=f"012 777 {i:03d}", **fields))
    seal(app)
    work = where / slug
    work.mkdir()
    exported = app.test_cli_runner().invoke(
        args=["export-details", slug, str(work / "details.bin")]
    )
    assert exported.exit_code == 0, exported.output
    return Coalition(slug=slug, machines=machines, work=work)


def open_shares(coalition: Coalition, org: int) -> Path:
    """On organisation ``org``'s own machine (1-based): its copy of details.bin, its key."""
    machine = coalition.machines[org - 1]
    details = machine / f"{coalition.slug}-details.bin"
    shutil.copy(coalition.work / "details.bin", details)
    out = machine / f"{coalition.slug}-org-{org}.shares"
    status = audit(
        ["shares", "open", "--key", str(machine / "org.key"), str(details), "--out", str(out),
         "--passphrase-file", str(machine / "passphrase.txt")]
    )  # fmt: skip
    assert status == 0
    return out


def combine(table: Path, details: Path, shares: list[Path]) -> tuple[int, Path]:
    table.mkdir(exist_ok=True)
    carried = [str(shutil.copy(path, table / path.name)) for path in shares]
    out = table / "details.csv"
    return audit(["shares", "combine", *carried, "--details", str(details), "--out", str(out)]), out


def test_two_of_three_organisations_open_the_details(
    app: Flask, client: FlaskClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coalition = coalition_petition(app, client, tmp_path)
    with app.app_context():
        petition = get_petition(get_session(), coalition.slug)
        assert petition.petition_json is not None
        custody = custody_from_petition(json.loads(petition.petition_json)["details"])
        assert (custody.threshold, custody.keys, custody.version) == (2, 3, 2)
        records = (
            get_session()
            .scalars(
                select(Leaf.details_ciphertext).where(
                    Leaf.petition_id == petition.id, Leaf.index > 0
                )
            )
            .all()
        )
    # One length for every record, with details or without.
    assert (
        len({len(r or b"") for r in records}) == 1 and len(records[0] or b"") == custody.record_size
    )
    first, third = open_shares(coalition, 1), open_shares(coalition, 3)
    table = tmp_path / "table"
    shutil.copy(coalition.work / "details.bin", tmp_path / "details.bin")
    status, out = combine(table, tmp_path / "details.bin", [first, third])
    assert status == 0
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["index", "name", "locality", "comment", "contact"]
    opened = sorted(tuple(row[1:]) for row in rows[1:])
    expected = sorted(
        tuple(fields.get(k, "") for k in ("name", "locality", "comment", "contact"))
        for fields in SIGNERS
    )
    assert opened == expected


def test_one_organisation_alone_opens_nothing(
    app: Flask, client: FlaskClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coalition = coalition_petition(app, client, tmp_path)
    only = open_shares(coalition, 2)
    capsys.readouterr()
    status, out = combine(tmp_path / "table", coalition.work / "details.bin", [only])
    assert status != 0 and not out.exists()
    assert "1 more" in capsys.readouterr().err


def test_shares_of_another_petition_are_refused(
    app: Flask, client: FlaskClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = coalition_petition(app, client, tmp_path, "ours")
    theirs = coalition_petition(app, client, tmp_path, "theirs")
    mixed = [open_shares(ours, 1), open_shares(theirs, 3)]
    capsys.readouterr()
    status, out = combine(tmp_path / "table", ours.work / "details.bin", mixed)
    assert status != 0 and not out.exists()
    assert "holds shares of petitions.example.org/p/theirs, but the details file is of" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("extra", "keys", "message"),
    [
        ((), 3, "say how many organisations must agree"),
        (("--threshold", "4"), 3, "between 1 and the number of keys"),
        (("--threshold", "2"), 1, "between 1 and the number of keys"),
    ],
)
def test_bad_custody_is_refused_and_nothing_is_stored(
    app: Flask, tmp_path: Path, extra: tuple[str, ...], keys: int, message: str
) -> None:
    machines = make_machines(tmp_path / "m", 3)[:keys]
    status, output = create(app, "refused", machines, *extra)
    assert status == 1 and message in output, output
    with app.app_context():
        assert get_session().scalars(select(Petition)).all() == []


def test_a_key_given_twice_is_refused(app: Flask, tmp_path: Path) -> None:
    machines = make_machines(tmp_path / "m", 1)
    status, output = create(app, "twice", machines * 2, "--threshold", "1")
    assert status == 1 and "given twice" in output


def test_a_single_key_petition_is_as_before(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    petition = add_petition(app)  # one key, as every petition made before coalition custody
    sign(client, petition.slug, identifier="012 345 678", name="Sok")
    seal(app)
    with app.app_context():
        row = get_petition(get_session(), petition.slug)
        assert row.details_custody is None
        document = json.loads(row.petition_json or b"")
        assert set(document["details"]) == {"public_key", "suite"}
    exported = app.test_cli_runner().invoke(
        args=["export-details", petition.slug, str(tmp_path / "details.bin")]
    )
    assert exported.exit_code == 0
    data = (tmp_path / "details.bin").read_bytes()
    assert data[:2] == b"\x04\x30" and len(data) == 2 + 1072  # a version 1 file


# --- the admin's draft form ------------------------------------------------------------------


def pasted(count: int) -> tuple[str, list[bytes]]:
    """``count`` organisations' public keys, as pasted into the form: one per line."""
    publics = [generate_details_keypair()[1] for _ in range(count)]
    return "\n".join(base64.b64encode(key).decode() for key in publics), publics


@pytest.fixture
def organiser(app: Flask) -> FlaskClient:
    make_account(app, "sokha")
    client = admin_client(app)
    login(client, "sokha")
    return client


def test_the_admin_makes_a_coalition_draft_and_changes_it(
    app: Flask, organiser: FlaskClient
) -> None:
    csrf = csrf_of(organiser)
    text, publics = pasted(3)
    form = draft_form(csrf, "river", details_key=None, details_key_text=text + "\n")
    assert organiser.post("/admin/new", data={**form, "details_threshold": "2"}).status_code == 302
    with app.app_context():
        custody = get_petition(get_session(), "river").custody()
        created = (
            get_session()
            .scalars(select(AuditEvent.detail).where(AuditEvent.action == "create"))
            .all()
        )
    assert custody == Custody(public_keys=tuple(publics), threshold=2)
    assert created == ["details sealed to 2 of 3 keys"]

    # The edit page shows the keys in share order and the threshold, so they can be checked.
    page = organiser.get("/admin/p/river/edit").get_data(as_text=True)
    assert text in page and 'name="details_threshold" min="1" max="16" value="2"' in page
    # The page as it is, saved again, changes nothing; the threshold alone can change.
    edited = draft_form(csrf, "river", details_key=None, details_key_text=text)
    assert (
        organiser.post("/admin/p/river/edit", data={**edited, "details_threshold": "3"}).status_code
        == 302
    )
    with app.app_context():
        assert get_petition(get_session(), "river").custody() == Custody(
            public_keys=tuple(publics), threshold=3
        )
    # Back to one organisation: a single-key petition again (version 1 records).
    one, (public,) = pasted(1)
    edited = draft_form(csrf, "river", details_key=None, details_key_text=one)
    assert organiser.post("/admin/p/river/edit", data=edited).status_code == 302
    with app.app_context():
        petition = get_petition(get_session(), "river")
        assert petition.custody() == single_key_custody(public)
        assert petition.details_custody is None
    # A single-key draft's threshold is shown empty: keys added to it need one chosen.
    page = organiser.get("/admin/p/river/edit").get_data(as_text=True)
    assert 'name="details_threshold" min="1" max="16" value=""' in page
    refused = organiser.post(
        "/admin/p/river/edit",
        data=draft_form(csrf, "river", details_key=None, details_key_text=text),
    )
    assert refused.status_code == 400
    assert "With 3 details keys, say how many organisations must agree" in refused.get_data(
        as_text=True
    )


@pytest.mark.parametrize(
    ("keys", "threshold", "field", "message"),
    [
        (3, "", "details_threshold", "With 3 details keys, say how many organisations must agree"),
        (3, "4", "details_threshold",
         "The threshold must be between 1 and the number of keys (3), not 4."),
        (2, "0", "details_threshold", "The threshold is a whole number from 1 to 16."),
        (2, "²", "details_threshold", "The threshold is a whole number from 1 to 16."),
        (2, "1" * 5000, "details_threshold", "The threshold is a whole number from 1 to 16."),
        (17, "2", "details_key", "A petition has at most 16 details keys, not 17."),
        ("twice", "2", "details_key", "A details public key is given twice."),
        ("garbled", "2", "details_key", "The details public key on line 2 is not base64."),
    ],
)  # fmt: skip
def test_the_admin_form_refuses_a_custody_it_cannot_use(
    app: Flask, organiser: FlaskClient, keys: int | str, threshold: str, field: str, message: str
) -> None:
    if keys == "twice":
        one, _ = pasted(1)
        text = f"{one}\n{one}"
    elif keys == "garbled":
        one, _ = pasted(1)
        text = f"{one}\nnot a key at all"
    else:
        assert isinstance(keys, int)
        text, _ = pasted(keys)
    form = draft_form(
        csrf_of(organiser), "river", details_key=None, details_key_text=text,
        details_threshold=threshold,
    )  # fmt: skip
    answer = organiser.post("/admin/new", data=form)
    assert answer.status_code == 400
    body = answer.get_data(as_text=True).replace("&#39;", "'")
    # The message stands between the field's label and the field, and what was typed stays.
    assert body.index(f'for="f-{field}"') < body.index(message) < body.index(f'id="f-{field}"')
    assert text.splitlines()[0] in body
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Petition)) == 0


@pytest.mark.parametrize("goal", ["²", "1" * 5000, "0", "-5", "١٠"])
def test_the_admin_form_refuses_a_goal_that_is_no_number(
    app: Flask, organiser: FlaskClient, goal: str
) -> None:
    answer = organiser.post("/admin/new", data=draft_form(csrf_of(organiser), "river", goal=goal))
    if goal == "١٠":  # Arabic-Indic digits are decimal digits: ten, as int() reads them
        assert answer.status_code == 302
        return
    assert answer.status_code == 400
    assert "The goal is a whole number of signatures, at least 1." in answer.get_data(as_text=True)


# --- email verification -----------------------------------------------------------------------


def test_email_verification_with_coalition_custody(
    tmp_path: Path,
    database_url: str,
    smtp: tuple[Inbox, int],  # noqa: F811  (the fixture, imported above)
) -> None:
    inbox, port = smtp
    app = make_mail_app(tmp_path, database_url, port)
    machines = make_machines(tmp_path / "machines")
    status, output = create(
        app, "mailed", machines, "--threshold", "2", "--identifier", "email",
        "--verification", "email",
    )  # fmt: skip
    assert status == 0, output
    assert app.test_cli_runner().invoke(args=["petition", "open", "mailed"]).exit_code == 0
    client = app.test_client()
    answer = sign(client, "mailed", identifier="dara@example.org", name="Sok Dara")
    assert answer.status_code == 200 and "Check your email" in answer.get_data(as_text=True)
    path = link_path(inbox.last()[1])
    confirmed = client.post(path)
    assert confirmed.status_code == 200
    receipt_of(confirmed)
    seal(app)
    # A link of another size (cut short, or of a single-key petition) is refused, not a 500.
    assert client.get(path[:-40]).status_code == 400
    work = tmp_path / "work"
    work.mkdir()
    exported = app.test_cli_runner().invoke(
        args=["export-details", "mailed", str(work / "details.bin")]
    )
    assert exported.exit_code == 0, exported.output
    coalition = Coalition(slug="mailed", machines=machines, work=work)
    shares = [open_shares(coalition, 2), open_shares(coalition, 3)]
    status, out = combine(tmp_path / "table", work / "details.bin", shares)
    assert status == 0
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert [row[1] for row in rows[1:]] == ["Sok Dara"]
    services(app).engine.dispose()
