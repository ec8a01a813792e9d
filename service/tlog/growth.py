"""How a petition grew, per day: the count at the end of each day, from the published
checkpoints, dated by the witnesses' cosignatures once they cosign (as independent parties
saw it), else by the day the log signed it. Never finer than a day: batches already hide the
order of signing, and a chart must not undo that.

The chart is inline SVG (no script, a few KB) with a text alternative, drawn the same on the
petition's page, in the admin and in delivery.pdf.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from samleng.service.platform.models import Cosignature, Petition, SignedCheckpoint

# At most this many points: a longer campaign is drawn by the week (never finer than a day).
MAX_POINTS = 120
WIDTH, HEIGHT, MARGIN = 600, 160, 8


@dataclass(frozen=True, kw_only=True)
class DayCount:
    """The count at the end of one day."""

    day: dt.date
    count: int


def _cosigned_days(session: Session, petition_id: int) -> dict[int, dt.date]:
    """For each checkpoint size a witness cosigned, the UTC day of the earliest cosignature."""
    days: dict[int, dt.date] = {}
    rows = session.execute(
        select(Cosignature.size, Cosignature.lines).where(Cosignature.petition_id == petition_id)
    )
    for size, lines in rows:
        for line in bytes(lines).splitlines():
            try:
                raw = base64.b64decode(line.rsplit(b" ", 1)[-1], validate=True)
            except (binascii.Error, ValueError):
                continue  # verified when it arrived; a line of another form is not a time
            if len(raw) < 12:
                continue
            when = dt.datetime.fromtimestamp(int.from_bytes(raw[4:12], "big"), dt.UTC).date()
            days[size] = min(days.get(size, when), when)
    return days


def daily_counts(session: Session, petition: Petition) -> list[DayCount]:
    """The count at the end of each day something was published, oldest first."""
    cosigned = _cosigned_days(session, petition.id)
    by_day: dict[dt.date, int] = {}
    rows = session.execute(
        select(SignedCheckpoint.size, SignedCheckpoint.signatures, SignedCheckpoint.published_on)
        .where(SignedCheckpoint.petition_id == petition.id)
        .order_by(SignedCheckpoint.size)
    )
    for size, signatures, published in rows:
        day = cosigned.get(size, published)
        if day is None:
            continue
        count = size - 1 if signatures is None else signatures
        by_day[day] = max(by_day.get(day, 0), count)
    result: list[DayCount] = []
    for day in sorted(by_day):
        # A count never goes down: a checkpoint cosigned late must not draw a dip.
        count = max(by_day[day], result[-1].count if result else 0)
        result.append(DayCount(day=day, count=count))
    return result


def coarse(points: Sequence[DayCount]) -> list[DayCount]:
    """At most MAX_POINTS points: a long campaign by the week (each week's last day)."""
    if len(points) <= MAX_POINTS:
        return list(points)
    weeks: dict[tuple[int, int], DayCount] = {}
    for point in points:
        year, week, _ = point.day.isocalendar()
        weeks[(year, week)] = point
    return list(weeks.values())


@dataclass(frozen=True, kw_only=True)
class Chart:
    """What the SVG template draws: the polyline's points and the area under it."""

    points: str
    area: str
    first: DayCount
    last: DayCount
    width: int = WIDTH
    height: int = HEIGHT


def chart(points: Sequence[DayCount]) -> Chart | None:
    """The coordinates of the growth chart; None with fewer than two days to draw."""
    drawn = coarse(points)
    if len(drawn) < 2:
        return None
    start, end = drawn[0].day, drawn[-1].day
    span = max((end - start).days, 1)
    top = max(p.count for p in drawn) or 1
    inner_w, inner_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def xy(point: DayCount) -> str:
        x = MARGIN + inner_w * (point.day - start).days / span
        y = MARGIN + inner_h * (1 - point.count / top)
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(p) for p in drawn)
    base = HEIGHT - MARGIN
    area = f"{MARGIN:.1f},{base:.1f} {line} {WIDTH - MARGIN:.1f},{base:.1f}"
    return Chart(points=line, area=area, first=drawn[0], last=drawn[-1])
