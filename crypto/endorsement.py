"""Endorsements: organisations that publicly stand behind a petition (a joint statement).

Normative: docs/formats.md §23. Each endorsement, and each withdrawal of one, is a canonical
JSON record appended to the petition's log as a leaf of kind 0x06 with ``c = H(record)`` and
``d`` zero; the bundle carries the records, in log order, as ``endorsements.json``.
Endorsement leaves never count as signatures.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from samleng.crypto.canonical import canonical_json
from samleng.crypto.errors import EndorsementError

ENDORSEMENT_FORMAT = "samleng-endorsement/v1"
WITHDRAWAL_FORMAT = "samleng-endorsement-withdrawal/v1"
ENDORSEMENTS_FILE = "endorsements.json"
MAX_NAME = 200
MAX_WEBSITE = 300
_ID = re.compile(r"[0-9a-f]{32}")
_C = re.compile(r"[0-9a-f]{64}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Control characters, line and paragraph separators and bidirectional overrides: never in a
# name printed on a page or in a PDF, where they could disguise it.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ENDORSEMENT_MEMBERS = {"day", "format", "id", "name", "origin"}
_WITHDRAWAL_MEMBERS = {"day", "format", "origin", "withdraws"}


@dataclass(frozen=True, kw_only=True)
class Endorsement:
    """One organisation's endorsement of a petition, as its record says."""

    id: str
    name_en: str
    name_km: str
    website: str | None
    day: dt.date

    def name(self, lang: str) -> str:
        """Its name in ``lang`` (Khmer or English)."""
        return self.name_km if lang == "km" else self.name_en


@dataclass(frozen=True, kw_only=True)
class Withdrawal:
    """The withdrawal of an earlier endorsement: ``withdraws`` is that endorsement's c."""

    withdraws: bytes
    day: dt.date


def check_name(value: str, lang: str) -> str:
    """An organisation's name as it may stand in a record; EndorsementError otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise EndorsementError(f"the name in {lang} is empty")
    if value != " ".join(value.split()):
        raise EndorsementError(f"the name in {lang} has spaces around it or in a row")
    if len(value) > MAX_NAME:
        raise EndorsementError(f"the name in {lang} is longer than {MAX_NAME} characters")
    if _UNPRINTABLE.search(value):
        raise EndorsementError(f"the name in {lang} has a character that cannot be shown")
    return value


def check_website(value: str) -> str:
    """A website as it may stand in a record: an http(s) address; EndorsementError otherwise."""
    if not isinstance(value, str) or len(value) > MAX_WEBSITE:
        raise EndorsementError(f"the website is not a string of at most {MAX_WEBSITE} characters")
    if _UNPRINTABLE.search(value) or any(c.isspace() for c in value):
        raise EndorsementError("the website has a space or a character that cannot be shown")
    try:
        parts = urlsplit(value)
        scheme, host = parts.scheme, parts.hostname
    except ValueError:
        scheme, host = "", None
    if scheme not in ("http", "https") or not host:
        raise EndorsementError("the website must be an address starting with https:// or http://")
    return value


def endorsement_record(
    origin: str,
    *,
    id: str,
    name_en: str,
    name_km: str,
    website: str | None,
    day: dt.date,
) -> bytes:
    """The canonical record of an endorsement (§23); EndorsementError for a bad field."""
    record: dict[str, Any] = {
        "format": ENDORSEMENT_FORMAT,
        "origin": origin,
        "id": id,
        "name": {"en": check_name(name_en, "English"), "km": check_name(name_km, "Khmer")},
        "day": day.isoformat(),
    }
    if not _ID.fullmatch(id):
        raise EndorsementError("an endorsement id is 32 lower-case hex digits")
    if website is not None:
        record["website"] = check_website(website)
    return canonical_json(record)


def withdrawal_record(origin: str, *, withdraws: bytes, day: dt.date) -> bytes:
    """The canonical record of the withdrawal of the endorsement whose c is ``withdraws``."""
    if len(withdraws) != 32:
        raise EndorsementError("a withdrawal names the 32-byte c of an endorsement")
    return canonical_json(
        {
            "format": WITHDRAWAL_FORMAT,
            "origin": origin,
            "withdraws": withdraws.hex(),
            "day": day.isoformat(),
        }
    )


def record_hash(record: bytes) -> bytes:
    """The leaf's c of a record: SHA-256 of its canonical bytes."""
    return hashlib.sha256(record).digest()


def _day(value: object) -> dt.date:
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise EndorsementError("day is not a date written YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise EndorsementError(f"day {value} is not a date") from None


def parse_record(value: object, origin: str) -> Endorsement | Withdrawal:
    """Read one record of ``origin``'s petition; EndorsementError naming what is wrong."""
    if not isinstance(value, dict):
        raise EndorsementError("a record is not a JSON object")
    kind = value.get("format")
    if value.get("origin") != origin:
        raise EndorsementError(f"a record of another petition (origin {value.get('origin')!r})")
    if kind == ENDORSEMENT_FORMAT:
        members = set(value) - {"website"}
        if members != _ENDORSEMENT_MEMBERS:
            raise EndorsementError(f"an endorsement has the members {sorted(value)}")
        name = value["name"]
        if not isinstance(name, dict) or set(name) != {"en", "km"}:
            raise EndorsementError("an endorsement's name is not {en, km}")
        if not isinstance(value["id"], str) or not _ID.fullmatch(value["id"]):
            raise EndorsementError("an endorsement id is 32 lower-case hex digits")
        website = value.get("website")
        return Endorsement(
            id=value["id"],
            name_en=check_name(name["en"], "English"),
            name_km=check_name(name["km"], "Khmer"),
            website=None if website is None else check_website(website),
            day=_day(value["day"]),
        )
    if kind == WITHDRAWAL_FORMAT:
        if set(value) != _WITHDRAWAL_MEMBERS:
            raise EndorsementError(f"a withdrawal has the members {sorted(value)}")
        if not isinstance(value["withdraws"], str) or not _C.fullmatch(value["withdraws"]):
            raise EndorsementError("a withdrawal names an endorsement by 64 lower-case hex digits")
        return Withdrawal(withdraws=bytes.fromhex(value["withdraws"]), day=_day(value["day"]))
    raise EndorsementError(f"a record of unknown format {kind!r}")


@dataclass(frozen=True, kw_only=True)
class Endorsements:
    """What a petition's endorsement records add up to: who endorses it now, and who did and
    withdrew, each in log order."""

    current: tuple[Endorsement, ...] = ()
    withdrawn: tuple[Endorsement, ...] = ()


def endorsements_file(records: Sequence[bytes]) -> bytes:
    """The bundle's endorsements.json: the records, in log order, as one canonical array."""
    return canonical_json([json.loads(record) for record in records])


def check_endorsements(
    data: bytes, leaves: Sequence[tuple[int, bytes, bytes]], origin: str
) -> Endorsements:
    """Check endorsements.json against the log's kind 0x06 leaves ``(index, c, d)``.

    Each record, in order, must hash to its leaf's c (re-encoded canonically: the file must be
    canonical JSON, so its records are the bytes that were hashed), every d must be zero, and
    a withdrawal must name an endorsement earlier in the log, not yet withdrawn.
    """
    try:
        values = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise EndorsementError(f"{ENDORSEMENTS_FILE} is not UTF-8 JSON") from None
    if not isinstance(values, list):
        raise EndorsementError(f"{ENDORSEMENTS_FILE} is not a JSON array")
    try:
        canonical = canonical_json(values)
    except (ValueError, UnicodeEncodeError):
        raise EndorsementError(f"{ENDORSEMENTS_FILE} cannot be canonical JSON") from None
    if canonical != data:
        raise EndorsementError(f"{ENDORSEMENTS_FILE} is not canonical JSON (docs/formats.md §3)")
    if len(values) != len(leaves):
        raise EndorsementError(
            f"{ENDORSEMENTS_FILE} has {len(values)} records, the log {len(leaves)} leaves of "
            "kind 0x06"
        )
    live: dict[bytes, Endorsement] = {}
    gone: dict[bytes, Endorsement] = {}
    for value, (index, c, d) in zip(values, leaves, strict=True):
        where = f"leaf {index}"
        if record_hash(canonical_json(value)) != c:
            raise EndorsementError(f"{where}: its record in {ENDORSEMENTS_FILE} does not hash to c")
        if d != bytes(32):
            raise EndorsementError(f"{where}: an endorsement leaf's d is not zero")
        try:
            record = parse_record(value, origin)
        except EndorsementError as exc:
            raise EndorsementError(f"{where}: {exc}") from None
        if isinstance(record, Endorsement):
            live[c] = record
        elif record.withdraws in live:
            gone[record.withdraws] = live.pop(record.withdraws)
        elif record.withdraws in gone:
            raise EndorsementError(f"{where}: withdraws an endorsement withdrawn already")
        else:
            raise EndorsementError(f"{where}: withdraws no earlier endorsement of this petition")
    return Endorsements(current=tuple(live.values()), withdrawn=tuple(gone.values()))
