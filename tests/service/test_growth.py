"""The growth chart: the count at the end of each day, from the published checkpoints, dated
by the witnesses' cosignatures once they cosign; inline SVG with a text alternative."""

from __future__ import annotations

import datetime as dt
import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from samleng.crypto.cosignature import CosignatureSigner
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import Cosignature, SignedCheckpoint, get_petition
from samleng.service.tlog import witnesses
from samleng.service.tlog.delivery import DeliveryFacts, delivery_html
from samleng.service.tlog.growth import MAX_POINTS, DayCount, chart, coarse, daily_counts
from tests.conftest import add_petition, seal, sign

DAY = dt.date(2026, 11, 1)


def grow(app: Flask, client: FlaskClient, days: list[int]) -> None:
    """Sign and seal once per entry, then date each checkpoint ``DAY + days[i]``."""
    for i, _ in enumerate(days):
        assert sign(client, "land", identifier=f"012 345 6{i:02d}").status_code == 200
        seal(app)
    with app.app_context():
        session = get_session()
        petition_id = get_petition(session, "land").id
        session.execute(
            update(SignedCheckpoint)
            .where(SignedCheckpoint.petition_id == petition_id, SignedCheckpoint.size == 1)
            .values(published_on=DAY)
        )
        for i, offset in enumerate(days):
            session.execute(
                update(SignedCheckpoint)
                .where(SignedCheckpoint.petition_id == petition_id, SignedCheckpoint.size == i + 2)
                .values(published_on=DAY + dt.timedelta(days=offset))
            )
        session.commit()


def counts(app: Flask) -> list[tuple[int, int]]:
    with app.app_context():
        session = get_session()
        found = daily_counts(session, get_petition(session, "land"))
    return [((p.day - DAY).days, p.count) for p in found]


def test_the_count_at_the_end_of_each_day(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="land")
    grow(app, client, [0, 0, 2, 5])
    assert counts(app) == [(0, 2), (2, 3), (5, 4)]


def test_a_witness_cosignature_dates_the_checkpoint(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="land")
    grow(app, client, [0, 1])
    signer = CosignatureSigner(name="witness.example", seed=bytes(32))
    with app.app_context():
        session = get_session()
        petition = get_petition(session, "land")
        witness = witnesses.add_witness(
            session, petition, name="w1", url="https://w.example", vkey=signer.verifier.vkey
        )
        session.flush()
        # Size 3 was cosigned four days later: that is when an independent party saw it.
        later = dt.datetime.combine(DAY + dt.timedelta(days=4), dt.time(9), tzinfo=dt.UTC)
        line = signer.cosign(b"irrelevant\n", int(later.timestamp()))
        session.add(Cosignature(petition_id=petition.id, size=3, witness_id=witness.id, lines=line))
        session.commit()
    assert counts(app) == [(0, 1), (4, 2)]


def test_a_long_campaign_is_drawn_by_the_week() -> None:
    points = [DayCount(day=DAY + dt.timedelta(days=i), count=i) for i in range(400)]
    drawn = coarse(points)
    assert len(drawn) <= MAX_POINTS and drawn[-1] == points[-1]
    assert all((b.day - a.day).days == 7 for a, b in zip(drawn[1:-1], drawn[2:-1], strict=False))
    assert chart(points[:1]) is None


def test_the_page_draws_it_with_a_text_alternative(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="land")
    grow(app, client, [0, 3])
    page = client.get("/en/p/land").get_data(as_text=True)
    svg = re.search(r"<svg.*?</svg>", page, re.S)
    assert svg and 'role="img"' in svg.group(0) and "<title" in svg.group(0)
    assert len(svg.group(0)) < 4096 and "<script" not in page
    assert "From 1 signatures on November 1, 2026 to 2 on November 4, 2026." in page
    assert "<summary>The count per day</summary>" in page
    km = client.get("/km/p/land").get_data(as_text=True)
    assert "ពីហត្ថលេខា ១ នៅថ្ងៃទី១ ខែវិច្ឆិកា ឆ្នាំ២០២៦ ដល់ ២" in km
    with app.app_context():
        session = get_session()
        petition = get_petition(session, "land")
        facts = DeliveryFacts(
            petition_json=petition.petition_json or b"", checkpoint=b"x\n", size=3,
            bundle_url="https://x", growth=daily_counts(session, petition),
        )  # fmt: skip
    with app.test_request_context():
        html = delivery_html(facts).replace("\u200b", "")
    assert "<polyline" in html and "How the petition grew, day by day: from 1 on November 1" in html
    assert "កំណើននៃញត្តិតាមថ្ងៃ៖ ពី ១ នៅថ្ងៃទី១ ខែវិច្ឆិកា" in html


def test_a_petition_with_one_day_has_no_chart(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="land")
    assert "<svg" not in client.get("/en/p/land").get_data(as_text=True)
