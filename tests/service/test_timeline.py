"""The campaign after signing: updates and their Atom feeds, deliveries and responses with
the days without an answer, goal steps, and delivery.pdf's actual closing date."""

from __future__ import annotations

import datetime as dt
import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import stream_encode_multipart

from samleng.service.app import create_app
from samleng.service.petitions.lifecycle import close_petition
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import TimelineEvent, get_petition, utc_today
from samleng.service.tlog.delivery import DeliveryFacts, delivery_html
from tests.conftest import add_petition, make_config, seal, sign
from tests.service.test_admin import (
    admin_client,
    cheap_passwords,  # noqa: F401  (the fixture: cheap password hashes here too)
    csrf_of,
    login,
    make_account,
)

ATOM = "{http://www.w3.org/2005/Atom}"


def parse_atom(data: bytes) -> ET.Element:
    """Our own feed, parsed: the service wrote it, so no hostile XML reaches this parser."""
    return ET.fromstring(data)  # noqa: S314


ONION = "b" * 56 + ".onion"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def organiser(app: Flask) -> FlaskClient:
    add_petition(app, slug="land")
    make_account(app, "sokha")
    client = admin_client(app)
    login(client, "sokha")
    return client


def post(client: FlaskClient, what: str, **data: Any) -> Any:
    return client.post(f"/admin/p/land/timeline/{what}", data={"csrf": csrf_of(client), **data})


def test_updates_show_on_the_page_and_in_the_feeds(app: Flask, organiser: FlaskClient) -> None:
    texts = {"en-title": "Delivered", "en-body": "We **delivered** it."}
    texts |= {"km-title": "បានប្រគល់", "km-body": "យើងបានប្រគល់។"}
    answer = post(organiser, "update", **texts)
    assert answer.status_code == 302
    public = app.test_client()
    en = public.get("/en/p/land").get_data(as_text=True)
    assert "Latest update" in en and "<strong>delivered</strong>" in en
    assert 'type="application/atom+xml" href="/en/p/land/updates.atom"' in en
    assert "ព័ត៌មានថ្មីចុងក្រោយ" in public.get("/km/p/land").get_data(as_text=True)
    assert "We <strong>delivered</strong> it." in public.get("/en/p/land/updates").get_data(
        as_text=True
    )

    feed = public.get("/en/p/land/updates.atom")
    assert feed.status_code == 200 and feed.mimetype == "application/atom+xml"
    assert (
        feed.headers["Cache-Control"] == "public, max-age=60" and "Set-Cookie" not in feed.headers
    )
    root = parse_atom(feed.get_data())
    [entry] = root.findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title") == "Delivered"
    assert entry.findtext(f"{ATOM}updated", "").endswith("T00:00:00+00:00")  # a day, no time
    links = [e.get("href", "") for e in root.iter(f"{ATOM}link")]
    assert links and all(link.startswith("https://petitions.example.org/") for link in links)
    assert not any("?" in link for link in links)  # no tracking parameters
    assert "<strong>delivered</strong>" in (entry.findtext(f"{ATOM}content") or "")
    km = parse_atom(public.get("/km/p/land/updates.atom").get_data())
    assert km.find(f"{ATOM}entry/{ATOM}title").text == "បានប្រគល់"  # type: ignore[union-attr]
    site = parse_atom(public.get("/en/updates.atom").get_data())
    assert len(site.findall(f"{ATOM}entry")) == 1


def test_a_feed_reader_reads_back_every_entry(app: Flask, organiser: FlaskClient) -> None:
    """feedparser, as feed readers parse: well-formed Atom, each entry with its title,
    link, id and date, in both languages and in the site's feed."""
    for n in range(3):
        post(organiser, "update", **{"en-title": f"Update {n}", "en-body": f"Body *{n}*."})
    post(organiser, "update", **{"km-title": "ព័ត៌មានថ្មី", "km-body": "អត្ថបទ។"})
    public = app.test_client()
    for path, titles in (
        ("/en/p/land/updates.atom", {"Update 0", "Update 1", "Update 2", "ព័ត៌មានថ្មី"}),
        ("/km/p/land/updates.atom", {"Update 0", "Update 1", "Update 2", "ព័ត៌មានថ្មី"}),
        ("/en/updates.atom", {"Update 0", "Update 1", "Update 2", "ព័ត៌មានថ្មី"}),
    ):
        feed = feedparser.parse(public.get(path).get_data())
        assert not feed.bozo, (path, feed.get("bozo_exception"))
        assert feed.version == "atom10" and feed.feed.title
        assert {entry.title for entry in feed.entries} == titles, path
        for entry in feed.entries:
            assert entry.link.startswith("https://petitions.example.org/"), entry.link
            assert entry.id and entry.updated_parsed is not None
        assert len({entry.id for entry in feed.entries}) == len(feed.entries)


def test_feeds_point_at_the_onion_for_onion_readers(tmp_path: Path, database_url: str) -> None:
    app = create_app(make_config(tmp_path, database_url, onion_address=ONION))
    upgrade(services(app).engine)
    add_petition(app, slug="land")
    feed = app.test_client().get("/en/p/land/updates.atom", base_url=f"http://{ONION}")
    links = [e.get("href", "") for e in parse_atom(feed.get_data()).iter(f"{ATOM}link")]
    assert links and all(link.startswith(f"http://{ONION}/") for link in links)
    services(app).engine.dispose()


def test_deliveries_responses_and_the_days_without_an_answer(
    app: Flask, organiser: FlaskClient
) -> None:
    delivered = (utc_today() - dt.timedelta(days=47)).isoformat()
    assert post(
        organiser, "delivery", day=delivered, institution="Ministry of Justice",
        received_by="The minister's office", how="By hand",
    ).status_code == 302  # fmt: skip
    public = app.test_client()
    page = public.get("/en/p/land").get_data(as_text=True).replace("&#39;", "'")
    assert re.search(
        r"Delivered to Ministry of Justice on [A-Z][a-z]+ \d+, \d{4}; no response for 47 days\.",
        page,
    )
    assert "Received by The minister's office." in page
    km = public.get("/km/p/land").get_data(as_text=True)
    assert "មិនទាន់មានការឆ្លើយតបរយៈពេល ៤៧ ថ្ងៃហើយ" in km

    answer = organiser.post(
        "/admin/p/land/timeline/response",
        data={
            "csrf": csrf_of(organiser), "day": utc_today().isoformat(),
            "institution": "Ministry of Justice", "summary": "The case is under review.",
            "attachment": (io.BytesIO(PDF), "letter.pdf"),
        },
    )  # fmt: skip
    assert answer.status_code == 302
    page = public.get("/en/p/land").get_data(as_text=True)
    assert "no response for" not in page
    assert "Response from Ministry of Justice: The case is under review." in page
    link = re.search(r'href="(/p/land/attachments/[0-9a-f]{64})"', page)
    assert link
    with public.get(link.group(1)) as download:
        assert download.status_code == 200 and download.get_data() == PDF
        assert download.mimetype == "application/pdf"
        assert download.headers["Content-Disposition"].startswith("attachment;")
    assert public.get("/p/land/attachments/" + "0" * 64).status_code == 404


@pytest.mark.parametrize(
    ("data", "field_text"),
    [
        (
            {"attachment": b"<html><script>alert(1)</script>"},
            "Attach a PDF, PNG or JPEG file.",
        ),
        (
            {"attachment": b"PK\x03\x04zip"},
            "Attach a PDF, PNG or JPEG file.",
        ),
        ({"day": "2999-01-01"}, "This day has not come yet."),
        ({"day": "soon"}, "Give the date as YYYY-MM-DD."),
        ({"institution": "  "}, "This field is needed."),
        ({"summary": "x" * 2001}, "This is longer than the field allows."),
    ],
)
def test_a_bad_response_is_refused_and_leaves_nothing(
    app: Flask, organiser: FlaskClient, data: dict[str, Any], field_text: str
) -> None:
    form = {
        "csrf": csrf_of(organiser), "day": utc_today().isoformat(),
        "institution": "Ministry", "summary": "No.",
    } | data  # fmt: skip
    if "attachment" in form:  # a fresh file for each database's run
        form["attachment"] = (io.BytesIO(form["attachment"]), "response.pdf")
    answer = organiser.post("/admin/p/land/timeline/response", data=form)
    assert answer.status_code == 400
    assert field_text in answer.get_data(as_text=True)
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(TimelineEvent)) == 0
    folder = Path(app.instance_path) / "attachments"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_an_attachment_over_the_cap_is_refused(app: Flask, organiser: FlaskClient) -> None:
    fields = {"csrf": csrf_of(organiser), "day": utc_today().isoformat(), "institution": "M",
              "summary": "S"}  # fmt: skip
    files = {"attachment": FileStorage(io.BytesIO(PDF + b"0" * (10 * 1024 * 1024)), "big.pdf")}
    # Encoded here and closed here: werkzeug's test client leaves a body this large open.
    body, length, boundary = stream_encode_multipart(fields | files)
    with body:
        answer = organiser.post(
            "/admin/p/land/timeline/response",
            input_stream=body,
            content_length=length,
            content_type=f"multipart/form-data; boundary={boundary}",
        )
    assert answer.status_code == 400 and "larger than 10 MB" in answer.get_data(as_text=True)


def test_goal_steps(app: Flask, organiser: FlaskClient) -> None:
    assert post(organiser, "steps", steps="2, 4 → 100").status_code == 302
    for bad in ("4 2", "0 5", "x", " ".join(str(i) for i in range(1, 12)), "9" * 12):
        refused = post(organiser, "steps", steps=bad)
        assert refused.status_code == 400, bad
    public = app.test_client()
    for i in range(3):
        sign(public, "land", identifier=f"012 345 67{i}")
    seal(app)
    page = public.get("/en/p/land").get_data(as_text=True)
    assert "3 of 4 signatures" in page and "Step 2 of 3. Next: 100 signatures." in page
    assert "Reached 2 signatures." in page
    km = public.get("/km/p/land").get_data(as_text=True)
    assert "ដំណាក់កាលទី ២ ក្នុងចំណោម ៣។" in km
    assert post(organiser, "steps", steps="").status_code == 302
    assert "Step " not in public.get("/en/p/land").get_data(as_text=True)


def test_the_update_form_refuses_half_a_language(app: Flask, organiser: FlaskClient) -> None:
    refused = post(organiser, "update", **{"en-title": "Only a title"})
    assert refused.status_code == 400
    assert "A language needs a title and a body." in refused.get_data(as_text=True)
    assert 'value="Only a title"' in refused.get_data(as_text=True)
    empty = post(organiser, "update")
    assert empty.status_code == 400 and "at least one language" in empty.get_data(as_text=True)


def test_delivery_pdf_says_the_day_signing_actually_closed(app: Flask) -> None:
    planned = utc_today() + dt.timedelta(days=30)
    add_petition(app, slug="early", closes_on=planned)
    with app.app_context():
        session = get_session()
        petition = get_petition(session, "early")
        close_petition(session, petition, dt.date(2026, 12, 1))
        session.commit()
        facts = DeliveryFacts(
            petition_json=petition.petition_json or b"", checkpoint=b"x\n", size=1,
            bundle_url="https://x", closed_on=petition.closed_on,
        )  # fmt: skip
    with app.test_request_context():
        html = delivery_html(facts).replace("\u200b", "")
    assert (
        "December 1, 2026" in html and planned.strftime("%B") not in html.split("Period")[1][:200]
    )
