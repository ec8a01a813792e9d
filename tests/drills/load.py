"""A steady signing load, and the ledger of what its clients were told.

Each client thread plays many signers, one after another: it loads the petition page, posts
the form with a phone number, and remembers every answer. A signer whose attempt failed
tries again a little later (as people do), and now and then someone who already signed signs
again. Each signer's attempts come from one thread, in order, so that the ledger can tell
which receipt must be in the log: the first one acknowledged, unless an earlier attempt of
the same person may have been stored without an answer reaching them.
"""

from __future__ import annotations

import http.client
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field

from samleng.crypto.receipts import parse_receipt, receipt_commitment

TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
RECEIPT = re.compile(r'<p class="receipt">([A-Z2-7-]+)</p>')
HOST = "petitions.example.org"
# Answers given before anything is written: bad form (400), closed (409), too large (413),
# rate limited (429), and shed at the Argon2 gate (503).
NOT_STORED = frozenset({400, 409, 413, 429, 503})
FIRST_PERSON = 500_000
PERSONS_PER_THREAD = 20_000
MAX_ATTEMPTS = 4
PAUSE_SECONDS = 0.03
BURST_PERSON = 900_000  # page loads only: these people never sign


def phone(person: int, international: bool = False) -> str:
    """Person ``person``'s Cambodian mobile number, as they would type it."""
    local = f"{person // 1000:03d} {person % 1000:03d}"
    return f"+855 12 {local}" if international else f"012 {local}"


def address(person: int) -> str:
    """The public address a person signs from (nginx's X-Forwarded-For)."""
    return f"10.{(person >> 16) & 255}.{(person >> 8) & 255}.{person & 255}"


@dataclass
class Attempt:
    """One try to sign: the page load, then (if it came) the posted form."""

    person: int
    repeat: bool
    start: float
    end: float = 0.0
    # "form" while the page load has not succeeded (nothing was posted), then "sign".
    step: str = "form"
    # None: no answer at all (connection refused or reset, timeout).
    status: int | None = None
    receipt: str | None = None
    # The body of a 5xx answer, to check that it is a plain page.
    body: str = ""

    @property
    def acknowledged(self) -> bool:
        """The signer was shown a receipt."""
        return self.step == "sign" and self.status == 200

    @property
    def maybe_stored(self) -> bool:
        """The form was posted and no answer says whether it was kept."""
        return self.step == "sign" and self.status != 200 and self.status not in NOT_STORED


class SigningLoad:
    """``threads`` clients signing petition ``slug`` at gunicorn on ``port`` until stopped."""

    def __init__(self, port: int, slug: str, threads: int = 4, seed: int = 0) -> None:
        self.port = port
        self.slug = slug
        self.attempts: list[Attempt] = []
        self.errors: list[BaseException] = []
        self.began = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i, seed), name=f"signer-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        """Start the clients."""
        self.began = time.monotonic()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the clients after their current request; re-raise anything they raised."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "a client thread hung"
        if self.errors:
            raise self.errors[0]

    @property
    def running(self) -> bool:
        """Whether the clients are signing."""
        return not self._stop.is_set()

    def snapshot(self) -> list[Attempt]:
        """The finished attempts so far."""
        with self._lock:
            return list(self.attempts)

    def first_acknowledged_after(self, moment: float, timeout: float) -> float | None:
        """Seconds from ``moment`` to the end of the first acknowledged attempt that started
        at or after it, waiting up to ``timeout``; None if there was none in time."""
        deadline = moment + timeout
        while True:
            ends = [a.end for a in self.snapshot() if a.acknowledged and a.start >= moment]
            if ends:
                return min(ends) - moment
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    # The clients.

    def _request(
        self, method: str, path: str, person: int, body: bytes | None = None
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        headers = {"Host": HOST, "Connection": "close", "X-Forwarded-For": address(person)}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            answer = conn.getresponse()
            return answer.status, answer.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def _attempt(self, person: int, repeat: bool, international: bool) -> Attempt:
        attempt = Attempt(person=person, repeat=repeat, start=time.monotonic())
        try:
            status, text = self._request("GET", f"/en/p/{self.slug}", person)
            token = TOKEN.search(text) if status == 200 else None
            if token is None:
                attempt.status = status
                attempt.body = text if status >= 500 else ""
            else:
                attempt.step = "sign"
                form = {
                    "form_token": token.group(1),
                    "identifier": phone(person, international),
                    "consent": "yes",
                    "website": "",
                }
                body = urllib.parse.urlencode(form).encode()
                status, text = self._request("POST", f"/en/p/{self.slug}/sign", person, body)
                attempt.status = status
                if status == 200:
                    shown = RECEIPT.search(text)
                    assert shown, "a 200 answer to a signature shows no receipt"
                    attempt.receipt = shown.group(1)
                elif status >= 500:
                    attempt.body = text
        except (OSError, http.client.HTTPException):
            attempt.status = None
        attempt.end = time.monotonic()
        return attempt

    def _run(self, index: int, seed: int) -> None:
        try:
            self._sign_until_stopped(index, random.Random(seed * 1000 + index))
        except BaseException as exc:  # re-raised by stop(), in the test's thread
            self.errors.append(exc)
            self._stop.set()

    def _sign_until_stopped(self, index: int, rng: random.Random) -> None:
        fresh = iter(range(FIRST_PERSON + index * PERSONS_PER_THREAD, 10**9))
        tries: dict[int, int] = {}
        retry: list[tuple[float, int]] = []  # (when, person)
        signed: list[int] = []
        while not self._stop.is_set():
            now = time.monotonic()
            repeat = False
            if retry and retry[0][0] <= now:
                person = retry.pop(0)[1]
            elif signed and rng.random() < 0.15:
                person, repeat = rng.choice(signed), True
            else:
                person = next(fresh)
            tries[person] = tries.get(person, 0) + 1
            attempt = self._attempt(person, repeat, international=rng.random() < 0.5)
            with self._lock:
                self.attempts.append(attempt)
            if attempt.acknowledged:
                if not repeat:
                    signed.append(person)
                # Steady, not saturating: the sealer and the database need the cores too.
                self._stop.wait(PAUSE_SECONDS)
                continue
            if tries[person] < MAX_ATTEMPTS and not repeat:
                retry.append((now + rng.uniform(0.5, 2.0), person))
                retry.sort()
            self._stop.wait(0.2)


def burst(port: int, path: str, threads: int, seconds: float) -> list[Attempt]:
    """Many page loads at once for ``seconds``, from as many addresses: the moment a server
    fails, a busy site has requests in flight in every thread of every worker."""
    answers: list[Attempt] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def load_pages(person: int) -> None:
        while time.monotonic() < deadline:
            attempt = Attempt(person=person, repeat=False, start=time.monotonic())
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            headers = {"Host": HOST, "Connection": "close", "X-Forwarded-For": address(person)}
            try:
                conn.request("GET", path, headers=headers)
                answer = conn.getresponse()
                attempt.status = answer.status
                body = answer.read().decode("utf-8", "replace")
                attempt.body = body if answer.status >= 500 else ""
            except (OSError, http.client.HTTPException):
                attempt.status = None
            finally:
                conn.close()
            attempt.end = time.monotonic()
            with lock:
                answers.append(attempt)

    workers = [
        threading.Thread(target=load_pages, args=(BURST_PERSON + i,), daemon=True)
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=seconds + 30)
    return answers


def commitment(origin: str, receipt: str) -> bytes:
    """The leaf commitment ``c`` of a receipt code shown to a signer."""
    return receipt_commitment(origin, parse_receipt(receipt))


@dataclass
class Ledger:
    """What the clients know, person by person."""

    # The receipt that must be in the log: the first acknowledged, with no earlier attempt
    # that may have been stored.
    required: dict[str, int] = field(default_factory=dict)
    # A first acknowledged receipt after an attempt that may have been stored: that
    # attempt's unseen receipt may be the one in the log instead.
    optional: dict[str, int] = field(default_factory=dict)
    # Receipts shown to someone who had signed already: by design never in the log.
    repeats: dict[str, int] = field(default_factory=dict)
    acknowledged: set[int] = field(default_factory=set)
    attempted: set[int] = field(default_factory=set)  # posted the form at least once
    # Persons with an attempt that may have been stored unseen, before or after a receipt
    # they saw: an unseen repeat may be the one the sealer keeps (its pending row can carry
    # an older epoch than the first one's, from a worker whose epoch was a second stale).
    maybe_stored: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, attempts: Iterable[Attempt]) -> Ledger:
        """The ledger of ``attempts`` (in the order they finished)."""
        ledger = cls()
        for attempt in attempts:
            person = attempt.person
            if attempt.step == "sign":
                ledger.attempted.add(person)
            if attempt.maybe_stored:
                ledger.maybe_stored.add(person)
            if not attempt.acknowledged:
                continue
            assert attempt.receipt is not None
            if person in ledger.acknowledged:
                ledger.repeats[attempt.receipt] = person
            elif person in ledger.maybe_stored:
                ledger.optional[attempt.receipt] = person
            else:
                ledger.required[attempt.receipt] = person
            ledger.acknowledged.add(person)
        return ledger

    def receipts_of(self, origin: str) -> dict[int, set[bytes]]:
        """The commitments of the receipts each person was shown."""
        shown: dict[int, set[bytes]] = {}
        for receipt, person in {**self.required, **self.optional, **self.repeats}.items():
            shown.setdefault(person, set()).add(commitment(origin, receipt))
        return shown

    def check(self, origin: str, commitments: set[bytes]) -> list[str]:
        """Everything that contradicts a log whose signature leaves carry ``commitments``.

        Each person is in the log once, under one of the receipts they were shown (the
        sealer keeps one signature per dedup token: the oldest epoch's, and among those of
        one epoch any), or under an unseen one after an attempt that may have been stored.
        """
        problems = []
        shown = {**self.required, **self.optional, **self.repeats}
        found: dict[int, int] = {}
        for receipt, person in shown.items():
            if commitment(origin, receipt) in commitments:
                found[person] = found.get(person, 0) + 1
        twice = [p for p, n in found.items() if n > 1]
        if twice:
            problems.append(f"{len(twice)} persons are in the log more than once")
        unseen = len(commitments) - sum(found.values())
        # Acknowledged persons whose leaf carries a receipt nobody saw: possible only after
        # an attempt that may have been stored.
        hidden = self.acknowledged - set(found)
        if not hidden <= self.maybe_stored:
            problems.append(f"{len(hidden - self.maybe_stored)} acknowledged persons are missing")
        ceiling = len(self.maybe_stored - set(found))
        if not len(hidden) <= unseen <= ceiling:
            problems.append(
                f"{unseen} leaves carry receipts nobody saw; expected {len(hidden)}..{ceiling}"
            )
        count = len(commitments)
        if not len(self.acknowledged) <= count <= len(self.attempted):
            problems.append(
                f"count {count} is not within {len(self.acknowledged)} acknowledged "
                f"and {len(self.attempted)} attempted persons"
            )
        return problems
