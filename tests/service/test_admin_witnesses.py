"""Witnesses in the organisers' admin: listed with their state, added (frozen while a draft,
with a warning once open), removed, the quorum set, and the split-view alarm resumed."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import Petition, Witness
from tests.conftest import add_petition
from tests.crypto.logfactory import make_cosigners
from tests.service.test_admin import (
    admin_client,
    cheap_passwords,  # noqa: F401 - the autouse fixture, for this module too
    csrf_of,
    events,
    give,
    login,
    make_account,
)

W1, W2 = make_cosigners(2, seed=21)


def post(client: FlaskClient, slug: str, action: str, **form: str) -> tuple[int, str]:
    form["csrf"] = csrf_of(client, f"/admin/p/{slug}")
    answer = client.post(f"/admin/p/{slug}/witnesses/{action}", data=form)
    return answer.status_code, answer.get_data(as_text=True)


def stored(app: Flask) -> list[tuple[str, bool, bool]]:
    with app.app_context():
        rows = get_session().scalars(select(Witness).order_by(Witness.id)).all()
        return [(w.name, w.frozen, w.removed) for w in rows]


def admin(app: Flask) -> FlaskClient:
    make_account(app, "root")
    client = admin_client(app)
    login(client, "root")
    return client


def test_a_drafts_witnesses_and_quorum(app: Flask) -> None:
    add_petition(app, slug="draft-one", status="draft")
    client = admin(app)
    status, _ = post(
        client, "draft-one", "add", name="w1", url="https://w1.example", vkey=W1.verifier.vkey
    )
    assert status == 302
    post(client, "draft-one", "add", name="w2", url="https://w2.example", vkey=W2.verifier.vkey)
    assert post(client, "draft-one", "quorum", quorum="2")[0] == 302
    page = client.get("/admin/p/draft-one").get_data(as_text=True)
    assert "w1" in page and "yes, when it opens" in page and 'value="2"' in page
    assert stored(app) == [("w1", True, False), ("w2", True, False)]
    # Removed from a draft: gone.
    assert post(client, "draft-one", "remove", name="w2")[0] == 302
    assert stored(app) == [("w1", True, False)]
    # Opening refuses a quorum the witnesses cannot meet, and says why.
    form = {"csrf": csrf_of(client, "/admin/p/draft-one")}
    refused = client.post("/admin/p/draft-one/open", data=form)
    assert refused.status_code == 409
    assert "The quorum is 2 but the petition has 1 witness" in refused.get_data(as_text=True)
    assert post(client, "draft-one", "quorum", quorum="")[0] == 302
    assert client.post("/admin/p/draft-one/open", data=form).status_code == 302
    actions = [e[1] for e in events(app)]
    assert actions.count("witness-add") == 2 and "witness-quorum" in actions


def test_a_witness_added_after_opening_is_said_not_to_be_in_the_policy(app: Flask) -> None:
    add_petition(app, slug="open-one")
    client = admin(app)
    page = client.get("/admin/p/open-one").get_data(as_text=True)
    assert "a witness added now is asked to cosign, but it is not part of the policy" in page
    post(client, "open-one", "add", name="late", url="https://late.example", vkey=W1.verifier.vkey)
    page = client.get("/admin/p/open-one").get_data(as_text=True)
    assert "no: asked to cosign, but no verifier requires it" in page
    assert post(client, "open-one", "quorum", quorum="1")[0] == 409  # frozen at opening
    # Removed after opening: kept, marked removed.
    post(client, "open-one", "remove", name="late")
    assert stored(app) == [("late", False, True)]
    assert "removed" in client.get("/admin/p/open-one").get_data(as_text=True)


def test_bad_witnesses_are_refused_and_nothing_is_stored(app: Flask) -> None:
    add_petition(app, slug="draft-two", status="draft")
    client = admin(app)
    vkey = W1.verifier.vkey
    for form, message in (
        ({"name": "a b", "url": "https://w.example", "vkey": vkey}, "Witness name"),
        ({"name": "w", "url": "ftp://w.example", "vkey": vkey}, "http(s)"),
        ({"name": "w", "url": "https://w.example", "vkey": "nonsense"}, "key"),
        ({"name": "w", "url": "https://w.example", "vkey": ""}, "key"),
        ({"name": "w" * 300, "url": "https://w.example", "vkey": vkey}, "Witness name"),
    ):
        status, page = post(client, "draft-two", "add", **form)
        assert status == 409 and message in page, (form, page[-500:])
    for quorum in ("0", "17", "x", "-1", "٣"):
        status, page = post(client, "draft-two", "quorum", quorum=quorum)
        assert status == 409, quorum
    assert stored(app) == []
    assert post(client, "draft-two", "remove", name="nobody")[0] == 409
    # Without the CSRF token nothing happens.
    answer = client.post(
        "/admin/p/draft-two/witnesses/add", data={"name": "w", "url": "https://w.example"}
    )
    assert answer.status_code == 403 and stored(app) == []


def test_an_organiser_acts_only_on_their_petitions(app: Flask) -> None:
    add_petition(app, slug="alices", status="draft")
    add_petition(app, slug="bobs", status="draft")
    make_account(app, "alice", "organiser")
    give(app, "alice", "alices")
    alice = admin_client(app)
    login(alice, "alice")
    form = {"name": "w", "url": "https://w.example", "vkey": W1.verifier.vkey}
    assert post(alice, "alices", "add", **form)[0] == 302
    csrf = csrf_of(alice, "/admin/p/alices")
    assert alice.post("/admin/p/bobs/witnesses/add", data={**form, "csrf": csrf}).status_code == 404
    assert stored(app) == [("w", True, False)]


def test_the_split_view_alarm_and_resuming(app: Flask) -> None:
    add_petition(app, slug="halted")
    with app.app_context():
        session = get_session()
        session.execute(update(Petition).values(witness_halt="witness w1: inconsistent (422)"))
        session.commit()
    client = admin(app)
    index = client.get("/admin/").get_data(as_text=True)
    assert "checkpoints stopped" in index
    page = client.get("/admin/p/halted").get_data(as_text=True)
    assert "Checkpoints stopped" in page and "inconsistent (422)" in page
    make_account(app, "org", "organiser")
    give(app, "org", "halted")
    organiser = admin_client(app)
    login(organiser, "org")
    assert "Resume publishing" not in organiser.get("/admin/p/halted").get_data(as_text=True)
    csrf = csrf_of(organiser, "/admin/p/halted")
    assert (
        organiser.post("/admin/p/halted/witnesses/resume", data={"csrf": csrf}).status_code == 404
    )
    csrf = csrf_of(client, "/admin/p/halted")
    assert client.post("/admin/p/halted/witnesses/resume", data={"csrf": csrf}).status_code == 302
    assert "Checkpoints stopped" not in client.get("/admin/p/halted").get_data(as_text=True)
    assert ("root", "witness-resume", "halted", "witness w1: inconsistent (422)") in events(app)
    again = client.post("/admin/p/halted/witnesses/resume", data={"csrf": csrf})
    assert again.status_code == 409
