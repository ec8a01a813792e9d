"""Asking witnesses to cosign checkpoints: the C2SP tlog-witness v1.0.0 ``add-checkpoint`` call.

One call sends one checkpoint to one witness and returns a :class:`WitnessAnswer` whose
:class:`Outcome` says what the witness answered, in the terms the sealer acts on:

============  ==============================================  =================================
outcome       when                                            the sealer then
============  ==============================================  =================================
cosigned      200 with a valid cosignature by the witness's   stores the lines, records the size
              key (lines of other keys are ignored)
conflict      409: the witness last cosigned another size     records ``known_size``, resends
              (not larger than the checkpoint's)              once (:meth:`WitnessClient.submit`)
split view    422 (inconsistent proof or a different root     alerts loudly, stops publishing
              for a size it cosigned), or 409 with a size     new checkpoints until an
              larger than the checkpoint's                    organiser looks
unknown log   404: the witness does not know this log         alerts the organisers
forbidden     403: the witness does not trust the log key     alerts the organisers
bad request   400: the witness could not read the request     alerts (a bug on our side)
wrong key     200 without a cosignature by the expected key   alerts (the witness changed key)
misconfigured the URL cannot be used here (an onion address   alerts the organisers
              without SAMLENG_WITNESS_PROXY); nothing is sent
garbage       any other answer, or one that breaks the spec   retries later, alerts if it lasts
unavailable   timeout, connection or proxy error, 429, 5xx    retries with :func:`retry_delay`
============  ==============================================  =================================

Nothing here touches the database or Flask: the caller passes the checkpoint, the old size and
the proof, and stores what comes back. A witness URL on a ``.onion`` host is reached only
through the SOCKS5 proxy given (``socks5h://``, so that Tor resolves the name; never local
DNS); other URLs are reached directly. urllib3 is the HTTP client: maintained, synchronous like
the sealer, with connection reuse (the spec asks for keep-alive), separate connect and read
timeouts, and SOCKS through its ``contrib.socks`` module (PySocks).
"""

import base64
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

import urllib3
from urllib3.contrib.socks import SOCKSProxyManager

from samleng.crypto.checkpoint import Checkpoint, parse_checkpoint_body
from samleng.crypto.cosignature import (
    WitnessVerifier,
    cosignature_timestamp,
    parse_signature_block,
)
from samleng.crypto.errors import VerificationError
from samleng.crypto.merkle import HASH_SIZE, MAX_PROOF_LENGTH
from samleng.crypto.note import split_signed_note
from samleng.service.platform.errors import N_, Error

SIZE_CONTENT_TYPE = "text/x.tlog.size"
DEFAULT_TIMEOUT = 10.0
# Far above any answer a witness gives (a few signature lines, or a size), so a hostile or
# broken witness cannot make the sealer read without end.
MAX_ANSWER_BYTES = 64 << 10
_SIZE_BODY = re.compile(rb"(0|[1-9][0-9]{0,18})\n")
_URL_CHARACTERS = re.compile(r"[!-~]*")
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_FIRST_RETRY = 5.0
_LAST_RETRY = 3600.0


class WitnessConfigError(Error):
    """A witness URL or proxy setting that cannot be used; the message says why."""


class Outcome(StrEnum):
    """What a witness's answer means for the sealer (see the module docstring)."""

    COSIGNED = "cosigned"
    CONFLICT = "conflict"
    SPLIT_VIEW = "split view"
    UNKNOWN_LOG = "unknown log"
    FORBIDDEN = "forbidden"
    BAD_REQUEST = "bad request"
    WRONG_KEY = "wrong key"
    MISCONFIGURED = "misconfigured"
    GARBAGE = "garbage"
    UNAVAILABLE = "unavailable"


# Answers that mean the witness will not cosign this log until a person acts.
ALERTS = frozenset(
    {
        Outcome.UNKNOWN_LOG,
        Outcome.FORBIDDEN,
        Outcome.BAD_REQUEST,
        Outcome.WRONG_KEY,
        Outcome.MISCONFIGURED,
    }
)


@dataclass(frozen=True, kw_only=True)
class WitnessAnswer:
    """One witness's answer to one checkpoint. ``detail`` is safe to log and show organisers."""

    outcome: Outcome
    detail: str
    status: int | None = None
    cosignatures: bytes = b""  # verified signature lines by the witness's key, each with LF
    timestamp: int | None = None  # the newest cosignature's time
    known_size: int | None = None  # the size the witness knows, from a 409

    @property
    def should_retry(self) -> bool:
        """Return whether to try again later with backoff (the witness may come back)."""
        return self.outcome in (Outcome.UNAVAILABLE, Outcome.GARBAGE)

    @property
    def is_split_view(self) -> bool:
        """Return whether to alert loudly and stop publishing checkpoints."""
        return self.outcome is Outcome.SPLIT_VIEW

    @property
    def needs_organisers(self) -> bool:
        """Return whether the witness is not set up for this log (or changed key)."""
        return self.outcome in ALERTS


@dataclass(frozen=True, kw_only=True)
class WitnessEndpoint:
    """A witness to ask: its submission prefix and its cosignature key."""

    url: str
    verifier: WitnessVerifier

    @property
    def is_onion(self) -> bool:
        """Return whether the witness is a Tor onion service."""
        host = urlsplit(self.url).hostname or ""
        return host.endswith(".onion")


def check_witness_url(url: str) -> str:
    """Return the ``add-checkpoint`` URL for a submission prefix; WitnessConfigError if unusable."""
    # One word of visible ASCII: the policy file carries it as one word, and urlsplit would
    # quietly drop a tab or newline from what it parses but not from what is stored.
    if not _URL_CHARACTERS.fullmatch(url):
        raise WitnessConfigError(
            N_(
                "witness URL %(url)s must be visible ASCII without spaces (write an "
                "international domain name in its xn-- form)"
            ),
            url=repr(url),
        )
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0  # .port raises ValueError beyond 65535
    except ValueError:
        port_ok = False
    if not port_ok:
        raise WitnessConfigError(N_("witness URL %(url)s is not a valid URL"), url=repr(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WitnessConfigError(
            N_("witness URL %(url)s is not an http(s) URL with a host"), url=repr(url)
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise WitnessConfigError(
            N_("witness URL %(url)s must not carry a user, query or fragment"), url=repr(url)
        )
    return url.rstrip("/") + "/add-checkpoint"


def check_proxy_url(proxy: str) -> str:
    """Return a SOCKS5 proxy URL that resolves names at the proxy; WitnessConfigError otherwise."""
    parts = urlsplit(proxy)
    if parts.scheme != "socks5h" or not parts.hostname or parts.port is None:
        raise WitnessConfigError(
            f"witness proxy {proxy!r} must be socks5h://HOST:PORT (socks5h: Tor resolves the "
            "onion name; socks5:// would look it up in local DNS, which cannot and must not)"
        )
    return proxy


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> bytes:
    """Return the request body: ``old N``, one base64 proof hash a line, a blank line, the note."""
    if old_size < 0:
        raise ValueError("old size must not be negative")
    if len(proof) > MAX_PROOF_LENGTH or any(len(h) != HASH_SIZE for h in proof):
        raise ValueError("a consistency proof is at most 63 hashes of 32 bytes")
    if old_size == 0 and proof:
        raise ValueError("the proof from size 0 is empty")
    lines = [b"old %d\n" % old_size, *(base64.b64encode(h) + b"\n" for h in proof)]
    return b"".join(lines) + b"\n" + checkpoint


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> float:
    """Return seconds to wait before attempt ``attempts + 1``: doubling from 5 s to 1 h, jittered.

    The jitter (up to a fifth) keeps several logs from retrying a witness in step.
    """
    base = min(_FIRST_RETRY * (1 << min(max(attempts - 1, 0), 20)), _LAST_RETRY)
    jitter: float = (rng or random.SystemRandom()).random()
    return base * (1 + jitter / 5)


def _checkpoint(note: bytes) -> Checkpoint:
    """Parse the caller's signed checkpoint; ValueError if it is not one (a caller's bug)."""
    try:
        text, _ = split_signed_note(note)
        return parse_checkpoint_body(text)
    except VerificationError as err:
        raise ValueError(f"not a signed checkpoint: {err}") from None


class _SlowAnswer(Exception):
    """The answer did not arrive whole before the deadline."""


def _read_limited(response: urllib3.BaseHTTPResponse, deadline: float) -> bytes | None:
    """Read an answer of at most MAX_ANSWER_BYTES before ``deadline``; None if it is longer.

    urllib3's read timeout bounds each wait for bytes, not the whole answer: a witness that
    sends a byte a second would hold the sealer's thread for ever without this deadline.
    """
    body = bytearray()
    while chunk := response.read1(4096):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES or time.monotonic() > deadline:
            response.close()  # the rest stays unread: this connection is not reused
            if len(body) > MAX_ANSWER_BYTES:
                return None
            raise _SlowAnswer
    return bytes(body)


def interpret_answer(
    status: int,
    content_type: str,
    body: bytes,
    *,
    checkpoint: bytes,
    witness: WitnessVerifier,
) -> WitnessAnswer:
    """Return what a witness's HTTP answer to ``add-checkpoint`` of ``checkpoint`` means."""
    if status == 200:
        return _cosigned(body, checkpoint, witness)
    if status == 409:
        return _conflict(content_type, body, checkpoint)
    fixed = {
        422: (
            Outcome.SPLIT_VIEW,
            "the witness refused the checkpoint as inconsistent with the "
            "one it cosigned before (422): a split view of the log, or a bad proof",
        ),
        404: (Outcome.UNKNOWN_LOG, "the witness does not know this log (404)"),
        403: (Outcome.FORBIDDEN, "the witness does not trust this log's key (403)"),
        400: (Outcome.BAD_REQUEST, "the witness could not read the request (400)"),
    }
    if status in fixed:
        outcome, detail = fixed[status]
        return WitnessAnswer(outcome=outcome, detail=detail, status=status)
    if status in _RETRY_STATUSES:
        return WitnessAnswer(
            outcome=Outcome.UNAVAILABLE,
            detail=f"the witness is busy or failing ({status})",
            status=status,
        )
    return WitnessAnswer(
        outcome=Outcome.GARBAGE, detail=f"unexpected HTTP status {status}", status=status
    )


def _cosigned(body: bytes, checkpoint: bytes, witness: WitnessVerifier) -> WitnessAnswer:
    """Check a 200 answer: signature lines, one or more by ``witness`` that verify."""
    try:
        lines = parse_signature_block(body)
    except VerificationError as err:
        return WitnessAnswer(
            outcome=Outcome.GARBAGE, detail=f"200 without signature lines: {err}", status=200
        )
    text, _ = split_signed_note(checkpoint)
    good: list[bytes] = []
    times: list[int] = []
    for line in lines:
        if (line.name, line.key_id) != (witness.name, witness.key_id):
            continue  # the spec: ignore cosignatures from keys we do not know
        timestamp = witness.verify(text, line.signature)
        try:
            claimed = cosignature_timestamp(line)
        except VerificationError:
            claimed = None
        if timestamp is None or claimed != timestamp or timestamp == 0:
            return WitnessAnswer(
                outcome=Outcome.GARBAGE,
                detail="the witness's cosignature does not verify (or has time 0)",
                status=200,
            )
        good.append(line.line + b"\n")
        times.append(timestamp)
    if not good:
        return WitnessAnswer(
            outcome=Outcome.WRONG_KEY,
            detail=f"200, but no cosignature by the witness key {witness.vkey}",
            status=200,
        )
    return WitnessAnswer(
        outcome=Outcome.COSIGNED,
        detail=f"cosigned by {witness.name}",
        status=200,
        cosignatures=b"".join(good),
        timestamp=max(times),
    )


def _conflict(content_type: str, body: bytes, checkpoint: bytes) -> WitnessAnswer:
    """Check a 409 answer: ``text/x.tlog.size`` holding the size the witness knows."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    match = _SIZE_BODY.fullmatch(body)
    if media_type != SIZE_CONTENT_TYPE or not match:
        return WitnessAnswer(
            outcome=Outcome.GARBAGE, detail="409 without a text/x.tlog.size body", status=409
        )
    known = int(match.group(1))
    size = _checkpoint(checkpoint).size
    if known > size:
        return WitnessAnswer(
            outcome=Outcome.SPLIT_VIEW,
            detail=f"the witness cosigned size {known} of this log, larger than this "
            f"checkpoint's {size}: the log was rolled back or forked",
            status=409,
            known_size=known,
        )
    return WitnessAnswer(
        outcome=Outcome.CONFLICT,
        detail=f"the witness last cosigned size {known}",
        status=409,
        known_size=known,
    )


def _describe(err: Exception) -> str:
    """Name a connection failure without echoing anything the remote side chose."""
    # NewConnectionError is a subclass of ConnectTimeoutError in urllib3 2: test it first.
    if isinstance(err, urllib3.exceptions.NewConnectionError):
        return "could not connect (or the proxy could not)"
    if isinstance(err, urllib3.exceptions.TimeoutError):
        return "timed out"
    return type(err).__name__


class WitnessClient:
    """Sends ``add-checkpoint`` requests, one at a time per witness and log.

    ``proxy`` (``socks5h://HOST:PORT``, e.g. Tor's) carries the requests to onion witnesses;
    ``timeout`` bounds connecting and the whole answer, in seconds.
    """

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, proxy: str | None = None) -> None:
        """Make a client; WitnessConfigError for a proxy that is not socks5h."""
        self.timeout = timeout
        urllib3_timeout = urllib3.Timeout(connect=timeout, read=timeout)
        headers = {"User-Agent": "samleng", "Content-Type": "text/plain; charset=utf-8"}
        self._direct = urllib3.PoolManager(timeout=urllib3_timeout, retries=False, headers=headers)
        self._proxied: SOCKSProxyManager | None = None
        if proxy is not None:
            self._proxied = SOCKSProxyManager(
                check_proxy_url(proxy), timeout=urllib3_timeout, retries=False, headers=headers
            )
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _lock(self, url: str, checkpoint: bytes) -> threading.Lock:
        """Return the lock of one witness and one log (origin = the note's first line)."""
        key = (url, checkpoint.split(b"\n", 1)[0].decode("utf-8", "replace"))
        with self._locks_lock:
            return self._locks.setdefault(key, threading.Lock())

    def _pool(self, witness: WitnessEndpoint) -> urllib3.PoolManager:
        """Choose the direct pool, or the SOCKS one for an onion witness."""
        if not witness.is_onion:
            return self._direct
        if self._proxied is None:
            raise WitnessConfigError(
                f"{witness.url} is an onion address, but no SOCKS5 proxy is configured "
                "(SAMLENG_WITNESS_PROXY, e.g. socks5h://127.0.0.1:9050)"
            )
        return self._proxied

    def add_checkpoint(
        self, witness: WitnessEndpoint, checkpoint: bytes, old_size: int, proof: Sequence[bytes]
    ) -> WitnessAnswer:
        """Send one ``add-checkpoint`` request and return the witness's answer.

        ``checkpoint`` is the signed note (it may carry other cosignatures), ``old_size`` the
        size this witness last cosigned (0 at first) and ``proof`` the consistency proof from
        it. Raises WitnessConfigError for an unusable URL; every answer, error or silence of
        the witness is a :class:`WitnessAnswer`.
        """
        url = check_witness_url(witness.url)
        _checkpoint(checkpoint)
        body = add_checkpoint_body(old_size, proof, checkpoint)
        pool = self._pool(witness)
        with self._lock(witness.url, checkpoint):
            deadline = time.monotonic() + self.timeout
            try:
                response = pool.request(
                    "POST", url, body=body, preload_content=False, redirect=False
                )
                try:
                    answer = _read_limited(response, deadline)
                finally:
                    response.release_conn()
            except _SlowAnswer:
                return WitnessAnswer(
                    outcome=Outcome.UNAVAILABLE,
                    detail=f"no whole answer within {self.timeout:g} s",
                )
            except (urllib3.exceptions.HTTPError, OSError) as err:
                return WitnessAnswer(
                    outcome=Outcome.UNAVAILABLE, detail=f"no answer: {_describe(err)}"
                )
        if answer is None:
            return WitnessAnswer(
                outcome=Outcome.GARBAGE,
                detail=f"answer longer than {MAX_ANSWER_BYTES} bytes",
                status=response.status,
            )
        return interpret_answer(
            response.status,
            response.headers.get("Content-Type", ""),
            answer,
            checkpoint=checkpoint,
            witness=witness.verifier,
        )

    def submit(
        self,
        witness: WitnessEndpoint,
        checkpoint: bytes,
        old_size: int,
        proof_from: Callable[[int], Sequence[bytes]],
    ) -> WitnessAnswer:
        """Send a checkpoint; on a 409 naming a size we can prove from, resend once from it.

        ``proof_from(n)`` returns the consistency proof from size ``n`` to the checkpoint's.
        The answer's ``known_size`` (after a 409) is what to store for this witness.
        """
        answer = self.add_checkpoint(witness, checkpoint, old_size, proof_from(old_size))
        if answer.outcome is not Outcome.CONFLICT or answer.known_size is None:
            return answer
        known = answer.known_size
        again = self.add_checkpoint(witness, checkpoint, known, proof_from(known))
        if again.known_size is None and again.outcome is not Outcome.COSIGNED:
            return WitnessAnswer(
                outcome=again.outcome,
                detail=again.detail,
                status=again.status,
                known_size=known,
            )
        return again

    def close(self) -> None:
        """Close every pooled connection."""
        self._direct.clear()
        if self._proxied is not None:
            self._proxied.clear()
