"""Two workers signing the same identifier at the same moment still make one signature, and
sealers racing each other seal each signature once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flask import Flask
from sqlalchemy import func, select

from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import DedupToken, Leaf, PendingSignature
from tests.conftest import OpenPetition, seal, sign


def test_200_concurrent_submissions_of_20_identifiers(app: Flask, petition: OpenPetition) -> None:
    phones = [f"012 345 {600 + i:03d}" for i in range(20)]
    # Fetch every form first, then fire the posts together so that duplicates race.
    work = [phones[i % 20] for i in range(200)]

    def submit(phone: str) -> int:
        return sign(app.test_client(), petition.slug, identifier=phone).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(submit, work))
    assert statuses == [200] * 200
    with app.app_context():
        session = get_session()
        assert session.scalar(select(func.count()).select_from(DedupToken)) == 0
        assert session.scalar(select(func.count()).select_from(PendingSignature)) == 200
    # Three sealers at once, as the in-process schedulers of three workers might be.
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda _: seal(app), range(3)))
    with app.app_context():
        session = get_session()
        assert session.scalar(select(func.count()).select_from(DedupToken)) == 20
        assert session.scalar(select(func.count()).select_from(PendingSignature)) == 0
        assert session.scalar(select(func.count()).select_from(Leaf)) == 21
