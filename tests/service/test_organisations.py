"""Organisations: who organises a petition, who an organiser acts for, and what that allows.

An organiser of an organisation acts on the petitions it organises and on no other; the
organisers are named on the petition's page and frozen into petition.json (and delivery.pdf)
when it opens; the audit trail names the organisation of each action.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from samleng.service.petitions import organisations as orgs
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import OrganisationError, PetitionStateError
from samleng.service.platform.models import (
    Account,
    AuditEvent,
    Organisation,
    PetitionOrganiser,
    get_petition,
    organisers_of,
)
from samleng.service.tlog.delivery import DeliveryFacts, delivery_html
from tests.conftest import add_petition
from tests.service.test_admin import (
    PASSWORD,
    admin_client,
    cheap_passwords,  # noqa: F401  (the fixture: cheap password hashes here too)
    csrf_of,
    draft_form,
    login,
    make_account,
)


def add_org(app: Flask, handle: str, **names: str) -> None:
    with app.app_context():
        session = get_session()
        orgs.create_organisation(
            session,
            handle,
            name_km=names.get("km", f"អង្គការ {handle}"),
            name_en=names.get("en", f"{handle.title()} Centre"),
            website=names.get("website", ""),
        )
        session.commit()


def set_org(app: Flask, account: str, handle: str | None) -> None:
    with app.app_context():
        session = get_session()
        found = session.scalar(select(Account).where(Account.name == account))
        assert found is not None
        chosen = orgs.named_organisation(session, handle) if handle else None
        orgs.set_account_organisation(session, found, chosen)
        session.commit()


def organise(app: Flask, slug: str, *handles: str) -> None:
    with app.app_context():
        session = get_session()
        petition = get_petition(session, slug)
        orgs.set_organisers(
            session, petition, [orgs.named_organisation(session, h) for h in handles]
        )
        session.commit()


def organisers(app: Flask, slug: str) -> list[str]:
    with app.app_context():
        session = get_session()
        return [o.handle for o in organisers_of(session, get_petition(session, slug).id)]


@pytest.fixture
def coalition(app: Flask) -> tuple[FlaskClient, FlaskClient]:
    """Two organisations, a draft and an organiser each: dara (river), sopheap (forest)."""
    add_org(app, "river")
    add_org(app, "forest")
    add_petition(app, slug="river-draft", status="draft")
    add_petition(app, slug="forest-draft", status="draft")
    organise(app, "river-draft", "river")
    organise(app, "forest-draft", "forest")
    make_account(app, "dara", "organiser")
    make_account(app, "sopheap", "organiser")
    set_org(app, "dara", "river")
    set_org(app, "sopheap", "forest")
    dara, sopheap = admin_client(app), admin_client(app)
    login(dara, "dara")
    login(sopheap, "sopheap")
    return dara, sopheap


# --- the rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handle", "fields", "message"),
    [
        ("", {}, "a handle is 1-64"),
        ("Has Space", {}, "a handle is 1-64"),
        ("x" * 65, {}, "a handle is 1-64"),
        ("ok", {"name_km": "  "}, "name in Khmer"),
        ("ok", {"name_en": "x" * 201}, "longer than 200"),
        ("ok", {"name_en": "bell\x07"}, "cannot be shown"),
        ("ok", {"name_en": "right\u202eto left"}, "cannot be shown"),
        ("ok", {"website": "javascript:alert(1)"}, "https://"),
        ("ok", {"website": "https://"}, "https://"),
        ("ok", {"website": "https://[bad"}, "https://"),
        ("ok", {"website": "https://a.example/ b"}, "space"),
        ("ok", {"website": "https://a.example/" + "x" * 300}, "300"),
    ],
)
def test_bad_organisations_are_refused_by_name_and_leave_nothing(
    app: Flask, handle: str, fields: dict[str, str], message: str
) -> None:
    values = {"name_km": "អង្គការ", "name_en": "Centre", "website": ""} | fields
    with app.app_context():
        session = get_session()
        with pytest.raises(OrganisationError, match=message.replace("(", r"\(")):
            orgs.create_organisation(session, handle, **values)
        session.rollback()
        assert session.scalar(select(func.count()).select_from(Organisation)) == 0


def test_handles_are_unique_and_compared_in_lower_case(app: Flask) -> None:
    add_org(app, "river")
    with app.app_context(), pytest.raises(OrganisationError, match="exists already"):
        orgs.create_organisation(get_session(), " RIVER ", name_km="ក", name_en="R")


def test_organisers_are_kept_in_order_and_frozen_when_the_petition_opens(app: Flask) -> None:
    add_org(app, "river", en="River Defenders", km="អ្នកការពារទន្លេ", website="https://river.example")
    add_org(app, "forest", en="Forest Network", km="បណ្ដាញព្រៃឈើ")
    add_petition(app, slug="draft", status="draft")
    organise(app, "draft", "forest", "river")
    assert organisers(app, "draft") == ["forest", "river"]
    with app.app_context():
        session = get_session()
        petition = get_petition(session, "draft")
        with pytest.raises(OrganisationError, match="named twice"):
            orgs.set_organisers(session, petition, [orgs.named_organisation(session, "river")] * 2)
        from samleng.service.petitions.lifecycle import open_petition
        from samleng.service.platform.context import services

        open_petition(session, petition, services(app).vault, can_mail=False)
        session.commit()
        document = json.loads(petition.petition_json or b"")
        assert document["organisers"] == [
            {"name": {"en": "Forest Network", "km": "បណ្ដាញព្រៃឈើ"}},
            {
                "name": {"en": "River Defenders", "km": "អ្នកការពារទន្លេ"},
                "website": "https://river.example",
            },
        ]
        with pytest.raises(PetitionStateError, match="frozen"):
            orgs.set_organisers(session, petition, [])


def test_a_petition_without_organisers_keeps_the_petition_json_it_always_had(app: Flask) -> None:
    add_petition(app, slug="plain")
    with app.app_context():
        document = json.loads(get_petition(get_session(), "plain").petition_json or b"")
    assert "organisers" not in document


# --- who may act on what -------------------------------------------------------------------


def test_an_organiser_acts_only_on_their_organisations_petitions(
    app: Flask, coalition: tuple[FlaskClient, FlaskClient]
) -> None:
    dara, _ = coalition
    index = dara.get("/admin/").get_data(as_text=True)
    assert "river-draft" in index and "forest-draft" not in index
    assert dara.get("/admin/p/river-draft").status_code == 200
    csrf = csrf_of(dara)
    for path, data in (
        ("/admin/p/forest-draft", None),
        ("/admin/p/forest-draft/edit", None),
        ("/admin/p/forest-draft/open", {}),
        ("/admin/p/forest-draft/organisers/add", {"organisation": "river"}),
        ("/admin/organisations", None),
        ("/admin/organisations", {"handle": "evil", "name_km": "ក", "name_en": "E"}),
        ("/admin/accounts/dara/organisation", {"organisation": "forest"}),
    ):
        answer = dara.get(path) if data is None else dara.post(path, data={"csrf": csrf, **data})
        assert answer.status_code == 404, path
    assert organisers(app, "forest-draft") == ["forest"]


def test_a_grant_does_not_widen_what_an_organisations_organiser_may_do(
    app: Flask, coalition: tuple[FlaskClient, FlaskClient]
) -> None:
    from tests.service.test_admin import give

    give(app, "dara", "forest-draft")
    dara, _ = coalition
    assert dara.get("/admin/p/forest-draft").status_code == 404
    # Without an organisation, the grant is what counts, as before organisations.
    set_org(app, "dara", None)
    assert dara.get("/admin/p/forest-draft").status_code == 200
    assert dara.get("/admin/p/river-draft").status_code == 404


def test_a_coalition_petition_is_acted_on_by_each_organisation(
    app: Flask, coalition: tuple[FlaskClient, FlaskClient]
) -> None:
    dara, sopheap = coalition
    csrf = csrf_of(dara)
    answer = dara.post(
        "/admin/p/river-draft/organisers/add", data={"csrf": csrf, "organisation": "forest"}
    )
    assert answer.status_code == 302
    assert organisers(app, "river-draft") == ["river", "forest"]
    assert sopheap.get("/admin/p/river-draft").status_code == 200
    # Nobody removes their own organisation (they would lose the petition); the other one may.
    own = dara.post(
        "/admin/p/river-draft/organisers/remove", data={"csrf": csrf, "organisation": "river"}
    )
    assert own.status_code == 409
    assert "your own organisation" in own.get_data(as_text=True)
    other = sopheap.post(
        "/admin/p/river-draft/organisers/remove",
        data={"csrf": csrf_of(sopheap), "organisation": "river"},
    )
    assert other.status_code == 302
    assert organisers(app, "river-draft") == ["forest"]
    assert dara.get("/admin/p/river-draft").status_code == 404
    with app.app_context():
        trail = (
            get_session()
            .execute(
                select(
                    AuditEvent.actor, AuditEvent.organisation, AuditEvent.action, AuditEvent.detail
                )
                .where(AuditEvent.petition_slug == "river-draft")
                .order_by(AuditEvent.id)
            )
            .all()
        )
    assert [tuple(row) for row in trail] == [
        ("dara", "river", "organiser-add", "forest"),
        ("sopheap", "forest", "organiser-remove", "river"),
    ]


@pytest.mark.parametrize(
    "data",
    [
        {"organisation": "nobody"},
        {"organisation": ""},
        {"organisation": "x" * 5000},
        {},
    ],
)
def test_naming_an_unknown_organisation_is_refused(
    app: Flask, coalition: tuple[FlaskClient, FlaskClient], data: dict[str, str]
) -> None:
    dara, _ = coalition
    answer = dara.post("/admin/p/river-draft/organisers/add", data={"csrf": csrf_of(dara), **data})
    assert answer.status_code == 409
    assert "No organisation with handle" in answer.get_data(as_text=True)
    assert organisers(app, "river-draft") == ["river"]


def test_a_draft_made_by_an_organisations_organiser_is_its_organisations(
    app: Flask, coalition: tuple[FlaskClient, FlaskClient]
) -> None:
    dara, sopheap = coalition
    answer = dara.post("/admin/new", data=draft_form(csrf_of(dara), "river-new"))
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert organisers(app, "river-new") == ["river"]
    assert sopheap.get("/admin/p/river-new").status_code == 404
    with app.app_context():
        created = (
            get_session()
            .execute(
                select(AuditEvent.actor, AuditEvent.organisation).where(
                    AuditEvent.action == "create"
                )
            )
            .all()
        )
    assert [tuple(row) for row in created] == [("dara", "river")]


# --- the administrator's pages ---------------------------------------------------------------


def test_an_admin_adds_organisations_and_gives_accounts_one(app: Flask) -> None:
    make_account(app, "sokha", "admin")
    client = admin_client(app)
    login(client, "sokha")
    csrf = csrf_of(client)
    fields = {"handle": "river", "name_km": "អ្នកការពារទន្លេ", "name_en": "River Defenders"}
    assert client.post("/admin/organisations", data={"csrf": csrf, **fields}).status_code == 302
    page = client.get("/admin/organisations").get_data(as_text=True)
    assert "River Defenders" in page and "អ្នកការពារទន្លេ" in page
    # A refused one says why and keeps what was typed.
    refused = client.post(
        "/admin/organisations",
        data={"csrf": csrf, **fields, "name_en": "Another", "website": "ftp://x"},
    )
    assert refused.status_code == 400
    text = refused.get_data(as_text=True)
    assert "exists already" in text and 'value="Another"' in text
    created = client.post(
        "/admin/accounts",
        data={
            "csrf": csrf,
            "name": "dara",
            "role": "organiser",
            "password": PASSWORD,
            "organisation": "river",
        },
    )
    assert created.status_code == 302
    unknown = client.post(
        "/admin/accounts",
        data={
            "csrf": csrf,
            "name": "vanna",
            "role": "organiser",
            "password": PASSWORD,
            "organisation": "nobody",
        },
    )
    assert unknown.status_code == 400 and "No organisation with handle" in unknown.get_data(
        as_text=True
    )
    assert (
        client.post(
            "/admin/accounts/dara/organisation", data={"csrf": csrf, "organisation": ""}
        ).status_code
        == 302
    )
    with app.app_context():
        session = get_session()
        names = session.scalars(select(Account.name)).all()
        dara = session.scalar(select(Account).where(Account.name == "dara"))
        assert "vanna" not in names and dara is not None and dara.organisation_id is None
        trail = session.execute(
            select(AuditEvent.action, AuditEvent.detail).order_by(AuditEvent.id)
        ).all()
    assert ("create-organisation", "river: River Defenders") in trail
    assert ("create-account", "dara (organiser, river)") in trail
    assert ("account-organisation", "dara: (none)") in trail


# --- where signers and recipients see them ---------------------------------------------------


def test_the_page_and_delivery_pdf_name_the_organisers(app: Flask) -> None:
    add_org(app, "river", en="River Defenders", km="អ្នកការពារទន្លេ", website="https://river.example")
    add_org(app, "forest", en="Forest Network", km="បណ្ដាញព្រៃឈើ")
    add_petition(app, slug="joint", status="draft")
    organise(app, "joint", "river", "forest")
    with app.app_context():
        from samleng.service.petitions.lifecycle import open_petition
        from samleng.service.platform.context import services

        session = get_session()
        petition = get_petition(session, "joint")
        open_petition(session, petition, services(app).vault, can_mail=False)
        session.commit()
        petition_json = petition.petition_json or b""
    client = app.test_client()
    en = client.get("/en/p/joint").get_data(as_text=True)
    km = client.get("/km/p/joint").get_data(as_text=True)
    assert "Organised by:" in en
    assert (
        '<a href="https://river.example" rel="noreferrer noopener">River Defenders</a>, '
        "Forest Network" in en
    )
    assert "អ្នកការពារទន្លេ</a>, បណ្ដាញព្រៃឈើ" in km and "Organised by" not in km
    with app.test_request_context():
        html = delivery_html(
            DeliveryFacts(
                petition_json=petition_json, checkpoint=b"x\n", size=1, bundle_url="https://x"
            )
        )
    # Khmer is given its line-break opportunities (zero-width spaces) in the document.
    html = html.replace("\u200b", "")
    assert "Organised by" in html and "River Defenders" in html and "បណ្ដាញព្រៃឈើ" in html


def test_cli_organisations(app: Flask, runner: Any, tmp_path: Any) -> None:
    result = runner.invoke(
        args=["org", "add", "river", "--name-km", "អ្នកការពារទន្លេ", "--name-en", "River Defenders"]
    )
    assert result.exit_code == 0, result.output
    refused = runner.invoke(args=["org", "add", "Bad Handle", "--name-km", "ក", "--name-en", "B"])
    assert refused.exit_code != 0 and "a handle is 1-64" in refused.output
    listed = runner.invoke(args=["org", "list"])
    assert listed.output == "river\tRiver Defenders\tអ្នកការពារទន្លេ\t\n"
    add_petition(app, slug="draft", status="draft")
    named = runner.invoke(args=["petition", "organisers", "draft", "river"])
    assert named.exit_code == 0 and "organised by: river" in named.output
    unknown = runner.invoke(args=["petition", "organisers", "draft", "nobody"])
    assert unknown.exit_code != 0 and "no organisation with handle 'nobody'" in unknown.output
    assert organisers(app, "draft") == ["river"]
    password = tmp_path / "pw"
    password.write_text(PASSWORD)
    made = runner.invoke(
        args=[
            "admin",
            "create",
            "dara",
            "--role",
            "organiser",
            "--org",
            "river",
            "--password-file",
            str(password),
        ]
    )
    assert made.exit_code == 0 and "of river" in made.output
    nobody = runner.invoke(
        args=[
            "admin",
            "create",
            "vanna",
            "--role",
            "organiser",
            "--org",
            "nobody",
            "--password-file",
            str(password),
        ]
    )
    assert nobody.exit_code != 0 and "no organisation" in nobody.output
    moved = runner.invoke(args=["admin", "set-org", "dara"])
    assert moved.exit_code == 0 and "acts for (none)" in moved.output
    with app.app_context():
        session = get_session()
        assert session.scalar(select(func.count()).select_from(PetitionOrganiser)) == 1
        assert session.scalar(select(Account).where(Account.name == "vanna")) is None
