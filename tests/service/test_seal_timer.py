"""Adaptive sealing (issue 21): a round is due after the interval at the latest, and as soon
as the current epoch holds a batch's worth of signatures, never within the gap of the last
one. Tested on its own with a clock the test moves, and in a real sealing thread."""

from __future__ import annotations

import time

from flask import Flask
from flask.testing import FlaskClient

from samleng.service.petitions.scheduler import SealScheduler, SealTimer, waiting_signatures
from samleng.service.platform.context import services
from tests.conftest import OpenPetition
from tests.service.test_log import sign_many


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_due_after_the_interval_or_a_full_batch() -> None:
    clock = Clock()
    asked: list[int] = []

    def waiting(count: int) -> int:
        asked.append(count)
        return count

    timer = SealTimer(30, batch=500, gap=1.0, clock=clock)
    assert timer.tick == 1.0
    assert not timer.due(lambda: waiting(10_000))  # within the gap: not even counted
    assert asked == []
    clock.now += 1.5
    assert not timer.due(lambda: waiting(499))
    assert timer.due(lambda: waiting(500))
    timer.sealed()
    clock.now += 29.9
    assert not timer.due(lambda: waiting(0))
    clock.now += 0.1
    assert timer.due(lambda: waiting(0))  # the interval: whatever waits
    assert asked == [499, 500, 0]


def test_without_a_batch_only_the_interval() -> None:
    clock = Clock()
    timer = SealTimer(10, batch=0, clock=clock)
    assert timer.tick == 10
    clock.now += 9
    assert not timer.due(lambda: 10**6)
    clock.now += 1
    assert timer.due(lambda: 0)
    assert SealTimer(10, batch=0, clock=clock, due_now=True).due(lambda: 0)


def test_a_full_batch_is_sealed_long_before_the_interval(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    engine, vault = services(app).engine, services(app).vault
    scheduler = SealScheduler(engine, vault, interval=3600, batch=4)
    sign_many(client, petition.slug, 3)
    assert waiting_signatures(engine) == 3
    scheduler.start_once()
    try:
        time.sleep(2.5)  # three wait: below the batch, the hour-long interval holds them
        assert client.get(f"/p/{petition.slug}/count.json").get_json()["count"] == 0
        sign_many(client, petition.slug, 1, start=3)
        deadline = time.monotonic() + 15
        while client.get(f"/p/{petition.slug}/count.json").get_json()["count"] < 4:
            assert time.monotonic() < deadline, "the full batch was not sealed"
            time.sleep(0.2)
        assert waiting_signatures(engine) == 0
    finally:
        scheduler.stop(timeout=30)
    # The thread's last round is over: no connection of the engine's is still out, so the
    # app's teardown closes them all (a round cut off by it left two open, in a later test).
    assert engine.pool.checkedout() == 0
