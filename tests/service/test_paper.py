"""Paper signatures: an organiser types paper forms into the admin; each is deduplicated with
the online signatures, sealed like them, and logged as a kind 0x05 leaf; the count shows its
online and paper parts on the page, in count.json, on the dashboard, in the verifier and in
delivery.pdf. The admin keeps who entered how many forms, never which."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select

from samleng.crypto.audit import main as audit
from samleng.crypto.bundle import verify_bundle
from samleng.crypto.details import open_details
from samleng.crypto.leaf import LeafKind, decode_leaf
from samleng.service.petitions.lifecycle import close_petition
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import (
    AuditEvent,
    Leaf,
    PaperTally,
    PendingSignature,
    get_petition,
)
from tests.conftest import OpenPetition, add_petition, pending_records, seal
from tests.service.test_admin import (
    admin_client,
    cheap_passwords,  # noqa: F401  (the fixture: cheap password hashes here too)
    login,
    make_account,
)
from tests.service.test_delivery import pdf_text
from tests.service.test_endorsements import organiser
from tests.service.test_log import export, sign_many
from tests.service.test_withdrawal import withdraw


def enter(admin: FlaskClient, csrf: str, slug: str, **fields: str) -> tuple[int, str]:
    answer = admin.post(f"/admin/p/{slug}/paper", data={"csrf": csrf, **fields})
    if answer.status_code == 302:
        answer = admin.get(answer.headers["Location"])
    return answer.status_code, answer.get_data(as_text=True)


def kinds(app: Flask) -> list[int]:
    with app.app_context():
        return [
            decode_leaf(leaf).kind
            for leaf in get_session().scalars(select(Leaf.leaf).order_by(Leaf.index))
        ]


def stored(app: Flask) -> tuple[int, int]:
    """Pending signatures and paper tallies in the database."""
    with app.app_context():
        session = get_session()
        return (
            int(session.scalar(select(func.count()).select_from(PendingSignature)) or 0),
            int(session.scalar(select(func.sum(PaperTally.entered))) or 0),
        )


def test_paper_forms_count_apart_and_once_with_online_signatures(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    petition: OpenPetition,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    codes = sign_many(client, petition.slug, 3)
    seal(app)  # (within one batch, a person on both counts in either part, once)
    admin, csrf = organiser(app)
    page = admin.get(f"/admin/p/{petition.slug}/paper").get_data(as_text=True)
    assert 'id="f-identifier"' in page and "autofocus" in page
    status, page = enter(admin, csrf, petition.slug, identifier="012 345 000")  # signed online
    assert status == 200 and "You have entered 1 form for this petition." in page
    status, page = enter(
        admin, csrf, petition.slug, identifier="+855 97 111 2222", name="Sokha", locality="Kampot"
    )
    assert "You have entered 2 forms" in page
    enter(admin, csrf, petition.slug, identifier="097 111 3333", comment="Free them.")
    enter(admin, csrf, petition.slug, identifier="097 111 2222")  # a second form, same person
    # The page after a form shows nothing of it.
    assert "Sokha" not in page and "2222" not in page
    # Waiting like online signatures: sealed to the epoch, the details to the organisers' key.
    paper = [r for r in pending_records(app) if r.kind == LeafKind.PAPER]
    assert len(paper) == 4
    opened = [
        open_details(
            petition.details_private_key, petition.origin, r.commitment, r.details_ciphertext
        )
        for r in paper
    ]
    assert {"name": "Sokha", "locality": "Kampot"} in opened
    seal(app)
    # The online repeat and the paper repeat are dropped: 3 online, 2 on paper.
    assert kinds(app).count(LeafKind.PAPER) == 2
    assert client.get(f"/p/{petition.slug}/count.json").get_json() == {
        "count": 5,
        "online": 3,
        "paper": 2,
        "photos": 0,
        "goal": 100,
        "size": 6,
    }
    [listed] = client.get("/petitions.json").get_json()["petitions"]
    assert (listed["count"], listed["online"], listed["paper"]) == (5, 3, 2)
    en = client.get(f"/en/p/{petition.slug}").get_data(as_text=True)
    assert "5 of 100 signatures" in en and "3 online and 2 on paper." in en
    km = client.get(f"/km/p/{petition.slug}").get_data(as_text=True)
    assert "៣" in km and "២" in km and "3 online" not in km
    dashboard = admin.get(f"/admin/p/{petition.slug}").get_data(as_text=True)
    assert "3 online and 2 on paper." in dashboard
    # Who entered how many, never which, nor when each.
    with app.app_context():
        session = get_session()
        tallies = session.execute(select(PaperTally.account, PaperTally.entered)).all()
        trail = session.scalars(select(AuditEvent.action)).all()
    assert [tuple(t) for t in tallies] == [("sokha", 4)]
    assert not [action for action in trail if "paper" in action]
    page = admin.get(f"/admin/p/{petition.slug}/paper").get_data(as_text=True)
    assert re.search(r"<td>sokha</td><td>4</td>", page)

    # A withdrawal of an online signature and an update: the parts stay right.
    withdraw(client, petition.slug, codes[1])
    update = admin.post(
        f"/admin/p/{petition.slug}/timeline/update",
        data={"csrf": csrf, "en-title": "Delivered soon", "en-body": "Thank you."},
    )
    assert update.status_code == 302
    seal(app)
    assert client.get(f"/p/{petition.slug}/count.json").get_json()["online"] == 2
    with app.app_context():
        close_petition(get_session(), get_petition(get_session(), petition.slug))
        get_session().commit()
    bundle = tmp_path / "bundle"
    export(runner, petition.slug, bundle)
    report = verify_bundle(bundle)
    assert (report.count, report.paper, report.withdrawals) == (4, 2, 1)
    assert audit(["verify", str(bundle)]) == 0
    assert capsys.readouterr().out.splitlines()[-4:] == [
        "online 2",
        "paper 2",
        "withdrawals 1",
        "count 4",
    ]
    text = pdf_text(bundle / "delivery.pdf")
    assert "2 online · 2 on paper" in text
    assert "Sokha" not in text


def test_bad_paper_forms_are_refused_and_leave_nothing(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    admin, csrf = organiser(app)
    for fields, message in (
        ({"identifier": "12"}, "This phone number does not look right."),
        ({"identifier": ""}, "Please enter your phone number."),
        ({"identifier": "012 345 678", "name": "x" * 101}, "at most 100 characters"),
        ({"identifier": "012 345 678", "name": "a\ue000b"}, "characters we cannot read"),
        ({"identifier": "012 345 678", "comment": "ខ" * 500}, "Please shorten the comment."),
        ({"identifier": "012 345 678", "contact": "nobody"}, "leave the field empty"),
    ):
        status, page = enter(admin, csrf, petition.slug, **fields)
        assert status == 400 and message in page, (fields, re.sub(r"<[^>]+>", "", page)[-1500:])
        assert "This form was not saved." in page
    assert admin.post(
        f"/admin/p/{petition.slug}/paper", data={"identifier": "012 345 678"}
    ).status_code in (400, 403)  # no CSRF token
    assert stored(app) == (0, 0)
    # The form comes back in Khmer for a Khmer admin.
    admin.get("/admin/language/km?next=/admin/")
    status, page = enter(admin, csrf, petition.slug, identifier="12")
    assert status == 400 and "This phone number" not in page and 'lang="km"' in page
    assert stored(app) == (0, 0)


def test_paper_forms_only_while_the_petition_takes_signatures(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    draft = add_petition(app, slug="a-draft", status="draft")
    admin, csrf = organiser(app)
    status, page = enter(admin, csrf, draft.slug, identifier="012 345 678")
    assert status == 409 and "paper forms cannot be entered" in page
    with app.app_context():
        close_petition(get_session(), get_petition(get_session(), petition.slug))
        get_session().commit()
    page = admin.get(f"/admin/p/{petition.slug}/paper").get_data(as_text=True)
    assert 'id="paper-form"' not in page and "paper forms cannot be entered" in page
    status, page = enter(admin, csrf, petition.slug, identifier="012 345 678")
    assert status == 409
    assert stored(app) == (0, 0)
    # An organiser not given the petition does not see its paper page.
    make_account(app, "vanna", role="organiser")
    other = admin_client(app)
    login(other, "vanna")
    assert other.get(f"/admin/p/{petition.slug}/paper").status_code == 404


def test_paper_forms_without_an_identifier(app: Flask, client: FlaskClient) -> None:
    open_ = add_petition(app, slug="no-id", identifier_mode="none")
    admin, csrf = organiser(app)
    page = admin.get(f"/admin/p/{open_.slug}/paper").get_data(as_text=True)
    assert (
        'id="f-identifier"' not in page
        and 'id="f-name" name="name" autocomplete="off" autofocus' in page
    )
    for _ in range(2):
        status, _page = enter(admin, csrf, open_.slug, name="Dara")
        assert status == 200
    seal(app)
    assert client.get(f"/p/{open_.slug}/count.json").get_json()["paper"] == 2
