"""A petition's witnesses: who they are, the policy frozen at opening, and asking them to cosign.

The rules (docs/witnesses.md, docs/formats.md §20-21):

- Witnesses are named per petition with their add-checkpoint URL and cosignature key. Those
  added while the petition is a draft, and the quorum, are frozen into petition.json as a
  C2SP tlog-policy when it opens (leaf 0 commits to them); a witness added later is asked
  too, but no verifier requires it.
- After the sealer commits a checkpoint, each witness is sent the newest one, with the
  consistency proof from the size it last cosigned. The sealer never waits for a witness:
  a witness that is down only delays its cosignature; every later round asks again.
- A split view (422, or a witness that has seen more of the log than the log has) stops the
  petition's checkpoints until an organiser looks (``Petition.witness_halt``); signing goes on
  and the signatures wait, sealed to their epochs. A witness not set up for the log, or with
  another key, is marked with its problem for the organisers; it is asked again, slowly.

Takes sessions and engines as arguments; imports nothing of Flask.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from samleng.crypto.cosignature import WitnessVerifier, parse_witness_vkey
from samleng.crypto.errors import Error as CryptoError
from samleng.crypto.errors import KeyFormatError, KeyProblem
from samleng.crypto.note import parse_vkey
from samleng.crypto.policy import (
    Policy,
    PolicyGroup,
    PolicyLog,
    PolicyWitness,
    format_policy,
    parse_policy,
)
from samleng.service.platform.errors import N_, Error, PetitionStateError
from samleng.service.platform.models import (
    Cosignature,
    Petition,
    PetitionStatus,
    SignedCheckpoint,
    Witness,
)
from samleng.service.platform.trail import record
from samleng.service.tlog.store import consistency, latest_signed_checkpoint
from samleng.service.tlog.witnessing import (
    Outcome,
    WitnessAnswer,
    WitnessClient,
    WitnessConfigError,
    WitnessEndpoint,
    check_witness_url,
    retry_delay,
)

log = logging.getLogger(__name__)

# The group of the frozen policy; no witness may take its name.
GROUP = "witnesses"
MAX_WITNESSES = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# The actor of what the witnessing thread records in the audit trail.
WITNESS_ACTOR = "(witnessing)"
# A witness that answered nothing usable this many times in a row is shown to the organisers.
_ATTEMPTS_BEFORE_PROBLEM = 5
# A witness that is not set up for the log is asked again after this long.
_MISCONFIGURED_RETRY = 600.0
# The PostgreSQL advisory lock class for "one request at a time per witness and log" across
# processes (the key's second half is the witness's id).
WITNESS_LOCK = 0x5A4D_5754


class WitnessSetupError(Error, ValueError):
    """A witness or quorum the organiser gave cannot be used; the message says why."""


# Organisers' side: configuration.


def witnesses_of(session: Session, petition: Petition, *, removed: bool = False) -> list[Witness]:
    """The petition's witnesses in the order they were added (the removed ones too if asked)."""
    query = select(Witness).where(Witness.petition_id == petition.id).order_by(Witness.id)
    if not removed:
        query = query.where(Witness.removed.is_(False))
    return list(session.scalars(query))


# What is wrong with a witness key, in words the admin can translate (the crypto library's
# own reasons are English).
WITNESS_KEY_PROBLEMS = {
    KeyProblem.LAYOUT: N_(
        "witness key: write the witness's name, its key ID and its key, joined by '+' "
        "(name+1234abcd+base64)"
    ),
    KeyProblem.NAME: N_("witness key: the name before the first '+' is empty or has a space"),
    KeyProblem.KEY_ID: N_(
        "witness key: the key ID after the name must be 8 digits or letters a-f, in lower case"
    ),
    KeyProblem.BASE64: N_("witness key: the part after the key ID is not base64"),
    KeyProblem.TYPE: N_(
        "witness key: this is not a witness's cosignature key (Ed25519 "
        "tlog-cosignature/v1, type 0x04); a log's own key does not fit here"
    ),
    KeyProblem.KEY: N_("witness key: the part after the key ID does not hold an Ed25519 key"),
    KeyProblem.MISMATCH: N_(
        "witness key: the key ID does not match the name and the key; copy the whole key again"
    ),
}


def add_witness(session: Session, petition: Petition, *, name: str, url: str, vkey: str) -> Witness:
    """Add a witness to the petition (frozen into its policy if it is still a draft)."""
    if petition.status not in (PetitionStatus.DRAFT, PetitionStatus.OPEN, PetitionStatus.CLOSED):
        raise PetitionStateError(f"petition {petition.slug!r} is {petition.status}: no witnesses")
    if not _NAME.fullmatch(name) or name in (GROUP, "none"):
        raise WitnessSetupError(
            N_(
                "witness name %(name)s: use 1 to 64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit (not %(group)s or 'none')"
            ),
            name=repr(name),
            group=repr(GROUP),
        )
    try:
        check_witness_url(url)
    except WitnessConfigError as exc:
        raise WitnessSetupError(exc.message, **exc.values) from None
    try:
        verifier = parse_witness_vkey(vkey)
    except KeyFormatError as exc:
        if exc.problem is None:
            raise WitnessSetupError(
                N_("witness key: not an Ed25519 tlog-cosignature/v1 verifier key (%(reason)s)"),
                reason=str(exc),
            ) from None
        raise WitnessSetupError(WITNESS_KEY_PROBLEMS[exc.problem]) from None
    if len(url) > 300:
        raise WitnessSetupError(N_("witness URL: at most 300 characters"))
    if len(verifier.vkey) > 400:
        raise WitnessSetupError(N_("witness key: at most 400 characters"))
    _check_policy_line(name, verifier, url)
    existing = witnesses_of(session, petition, removed=True)
    if sum(not w.removed for w in existing) >= MAX_WITNESSES:
        raise WitnessSetupError(N_("a petition has at most %(most)s witnesses"), most=MAX_WITNESSES)
    for other in existing:
        if other.name == name:
            raise WitnessSetupError(
                N_("this petition already has a witness named %(name)s"), name=repr(name)
            )
        if parse_witness_vkey(other.vkey).public_key == verifier.public_key:
            raise WitnessSetupError(
                N_("witness %(name)s already has this key"), name=repr(other.name)
            )
    witness = Witness(
        petition_id=petition.id,
        name=name,
        url=url,
        vkey=verifier.vkey,
        frozen=petition.status == PetitionStatus.DRAFT,
        removed=False,
        known_size=0,
    )
    session.add(witness)
    return witness


def _check_policy_line(name: str, verifier: WitnessVerifier, url: str) -> None:
    """Refuse a witness the frozen policy could not carry and read back (a key name with a
    control character, say): petition.json would hold a policy that no verifier reads."""
    policy = Policy(
        logs=(),
        witnesses=(PolicyWitness(name=name, verifier=verifier, url=url),),
        groups=(PolicyGroup(name=GROUP, threshold=1, members=(name,)),),
        quorum=GROUP,
    )
    try:
        parse_policy(format_policy(policy))
    except CryptoError as exc:
        raise WitnessSetupError(f"witness {name!r} cannot be written in a policy: {exc}") from None


def remove_witness(session: Session, petition: Petition, name: str) -> Witness:
    """Stop asking a witness. Before opening it is deleted; after, its cosignatures stay."""
    witness = next((w for w in witnesses_of(session, petition) if w.name == name), None)
    if witness is None:
        raise WitnessSetupError(
            N_("petition %(slug)s has no witness named %(name)s"),
            slug=repr(petition.slug),
            name=repr(name),
        )
    if petition.status == PetitionStatus.DRAFT:
        session.delete(witness)
    else:
        witness.removed = True
    return witness


def set_quorum(session: Session, petition: Petition, quorum: int | None) -> None:
    """Set how many of the frozen witnesses must cosign (None: all); only while a draft."""
    if petition.status != PetitionStatus.DRAFT:
        raise PetitionStateError(
            f"petition {petition.slug!r} is {petition.status}: its quorum was frozen when it opened"
        )
    if quorum is not None and not 1 <= quorum <= MAX_WITNESSES:
        raise WitnessSetupError(
            N_("quorum %(quorum)s: between 1 and %(most)s"), quorum=quorum, most=MAX_WITNESSES
        )
    petition.witness_quorum = quorum


def check_quorum(session: Session, petition: Petition) -> int:
    """The quorum the draft would freeze (0 without witnesses); WitnessSetupError if it
    asks for more witnesses than the draft has."""
    count = sum(w.frozen for w in witnesses_of(session, petition))
    quorum = count if petition.witness_quorum is None else petition.witness_quorum
    if quorum > count:
        raise WitnessSetupError(
            N_(
                "the quorum is %(quorum)s but the petition has %(count)s witness(es): add "
                "witnesses or lower the quorum before opening"
            ),
            quorum=quorum,
            count=count,
        )
    return quorum


def frozen_policy(session: Session, petition: Petition, log_vkey: str) -> Policy | None:
    """The policy petition.json will carry: the draft's witnesses, any ``k`` of them.

    None when the petition has no witnesses. Raises WitnessSetupError when the quorum asks
    for more witnesses than there are.
    """
    witnesses = [w for w in witnesses_of(session, petition) if w.frozen]
    quorum = check_quorum(session, petition)
    if not witnesses:
        return None
    return Policy(
        logs=(PolicyLog(verifier=parse_vkey(log_vkey)),),
        witnesses=tuple(
            PolicyWitness(name=w.name, verifier=parse_witness_vkey(w.vkey), url=w.url)
            for w in witnesses
        ),
        groups=(
            PolicyGroup(name=GROUP, threshold=quorum, members=tuple(w.name for w in witnesses)),
        ),
        quorum=GROUP,
    )


def frozen_policy_file(session: Session, petition: Petition, log_vkey: str) -> bytes | None:
    """The tlog-policy file frozen into petition.json, or None without witnesses."""
    policy = frozen_policy(session, petition, log_vkey)
    return None if policy is None else format_policy(policy)


def published_policy(petition: Petition) -> Policy | None:
    """The policy petition.json froze when the petition opened, or None."""
    if petition.petition_json is None:
        return None
    member = json.loads(petition.petition_json).get("witness_policy")
    return None if member is None else parse_policy(member.encode("utf-8"))


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """Who has cosigned the newest checkpoint, for the petition page and the admin."""

    size: int
    names: tuple[str, ...]  # the frozen policy's witnesses
    cosigned: tuple[str, ...]  # those of them that cosigned the newest checkpoint
    quorum: int
    halted: bool

    @property
    def met(self) -> bool:
        """Whether the newest checkpoint has the quorum."""
        return len(self.cosigned) >= self.quorum


def coverage(session: Session, petition: Petition) -> Coverage | None:
    """Who witnessed the newest checkpoint; None for a petition without a witness policy."""
    policy = published_policy(petition)
    state = latest_signed_checkpoint(session, petition)
    if policy is None or state is None:
        return None
    group = policy.groups[0]
    cosigned = set(
        session.scalars(
            select(Witness.name)
            .join(Cosignature, Cosignature.witness_id == Witness.id)
            .where(Cosignature.petition_id == petition.id, Cosignature.size == state.size)
        )
    )
    return Coverage(
        size=state.size,
        names=group.members,
        cosigned=tuple(name for name in group.members if name in cosigned),
        quorum=group.threshold,
        halted=petition.witness_halt is not None,
    )


def resume(petition: Petition) -> str | None:
    """Let the petition publish checkpoints again after a split-view alert; return why it
    had stopped (None if it had not). The caller records who did it."""
    reason = petition.witness_halt
    petition.witness_halt = None
    return reason


# The witnessing thread's side.


def due_witnesses(session: Session) -> list[int]:
    """Ids of witnesses that have not cosigned their petition's newest checkpoint."""
    newest = (
        select(SignedCheckpoint.petition_id, func.max(SignedCheckpoint.size).label("size"))
        .group_by(SignedCheckpoint.petition_id)
        .subquery()
    )
    cosigned = (
        select(Cosignature.witness_id, func.max(Cosignature.size).label("size"))
        .group_by(Cosignature.witness_id)
        .subquery()
    )
    rows = session.execute(
        select(Witness.id)
        .join(Petition, Petition.id == Witness.petition_id)
        .join(newest, newest.c.petition_id == Witness.petition_id)
        .outerjoin(cosigned, cosigned.c.witness_id == Witness.id)
        .where(Witness.removed.is_(False), Petition.witness_halt.is_(None))
        .where(func.coalesce(cosigned.c.size, 0) < newest.c.size)
        .order_by(Witness.id)
    )
    return [row[0] for row in rows]


@dataclass(frozen=True, kw_only=True)
class _Request:
    petition_id: int
    slug: str
    name: str
    endpoint: WitnessEndpoint
    size: int
    note: bytes
    old_size: int
    proofs: dict[int, list[bytes]]


def _prepare(session: Session, witness_id: int) -> _Request | None:
    """Read what to send the witness: the newest checkpoint and the proofs it may need."""
    witness = session.get(Witness, witness_id)
    if witness is None or witness.removed:
        return None
    petition = session.get(Petition, witness.petition_id)
    state = None if petition is None else latest_signed_checkpoint(session, petition)
    if petition is None or state is None or petition.witness_halt is not None:
        return None
    # The proof from the size it knows; a 409 may name another, read then (see _proof_from).
    old = witness.known_size
    proofs = {} if old > state.size else {old: _proof(session, petition, old, state.size)}
    return _Request(
        petition_id=petition.id,
        slug=petition.slug,
        name=witness.name,
        endpoint=WitnessEndpoint(url=witness.url, verifier=parse_witness_vkey(witness.vkey)),
        size=state.size,
        note=state.note,
        old_size=old,
        proofs=proofs,
    )


def _proof(session: Session, petition: Petition, old: int, new: int) -> list[bytes]:
    return [] if old in (0, new) else consistency(session, petition, old, new)


@dataclass
class Backoff:
    """Per witness: failed attempts in a row and when to try again (monotonic seconds)."""

    attempts: dict[int, int] = field(default_factory=dict)
    not_before: dict[int, float] = field(default_factory=dict)

    def ready(self, witness_id: int, now: float) -> bool:
        """Whether the witness may be asked now."""
        return self.not_before.get(witness_id, 0.0) <= now

    def succeeded(self, witness_id: int) -> None:
        """Forget the witness's failures."""
        self.attempts.pop(witness_id, None)
        self.not_before.pop(witness_id, None)

    def failed(self, witness_id: int, now: float, at_least: float = 0.0) -> int:
        """Count a failure and schedule the next attempt; return the failures in a row."""
        attempts = self.attempts.get(witness_id, 0) + 1
        self.attempts[witness_id] = attempts
        self.not_before[witness_id] = now + max(retry_delay(attempts), at_least)
        return attempts


@dataclass(frozen=True, kw_only=True)
class Asked:
    """One request made: to which witness of which petition, for which size, and the answer."""

    slug: str
    name: str
    size: int
    answer: WitnessAnswer


def ask_witness(
    engine: Engine, witness_id: int, client: WitnessClient, backoff: Backoff
) -> Asked | None:
    """Send one witness the newest checkpoint of its petition and store what it answers.

    None when there was nothing to send. One request at a time per witness: on PostgreSQL an
    advisory lock held for the request keeps other processes from asking it meanwhile (they
    skip it this round).
    """
    with Session(engine) as lock_session:
        if not _try_lock(lock_session, witness_id):
            return None
        with Session(engine) as session:
            request = _prepare(session, witness_id)
        if request is None:
            return None
        if request.old_size > request.size:
            answer = WitnessAnswer(
                outcome=Outcome.SPLIT_VIEW,
                detail=f"the witness has cosigned size {request.old_size}, but the log has "
                f"only {request.size} leaves",
            )
        else:
            try:
                answer = client.submit(
                    request.endpoint, request.note, request.old_size, _proof_from(engine, request)
                )
            except WitnessConfigError as exc:
                answer = WitnessAnswer(outcome=Outcome.MISCONFIGURED, detail=str(exc))
        _store(engine, witness_id, request, answer, backoff)
        lock_session.rollback()
    return Asked(slug=request.slug, name=request.name, size=request.size, answer=answer)


def _try_lock(session: Session, witness_id: int) -> bool:
    """Take the witness's transaction-scoped lock on PostgreSQL (always granted elsewhere)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    granted = session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:cls, :key)"),
        {"cls": WITNESS_LOCK, "key": witness_id},
    )
    return bool(granted)


def _proof_from(engine: Engine, request: _Request) -> Callable[[int], Sequence[bytes]]:
    def proof_from(old: int) -> Sequence[bytes]:
        if old not in request.proofs:
            with Session(engine) as session:
                petition = session.get(Petition, request.petition_id)
                if petition is None:  # deleted meanwhile: the witness gets an empty proof
                    return []
                request.proofs[old] = _proof(session, petition, old, request.size)
        return request.proofs[old]

    return proof_from


def _store(
    engine: Engine, witness_id: int, request: _Request, answer: WitnessAnswer, backoff: Backoff
) -> None:
    """Record the answer: the cosignature, the size the witness knows, or the alarm."""
    now = time.monotonic()
    with Session(engine) as session:
        witness = session.get(Witness, witness_id)
        petition = session.get(Petition, request.petition_id)
        if witness is None or petition is None:
            return
        if answer.known_size is not None:
            witness.known_size = answer.known_size
        outcome = answer.outcome
        if outcome is Outcome.COSIGNED:
            witness.known_size = request.size
            witness.problem = None
            if session.get(Cosignature, (petition.id, request.size, witness.id)) is None:
                session.add(
                    Cosignature(
                        petition_id=petition.id,
                        size=request.size,
                        witness_id=witness.id,
                        lines=answer.cosignatures,
                    )
                )
            backoff.succeeded(witness_id)
        elif outcome is Outcome.SPLIT_VIEW:
            reason = f"witness {witness.name}: {answer.detail}"[:400]
            petition.witness_halt = reason
            witness.problem = answer.detail[:400]
            record(
                session,
                WITNESS_ACTOR,
                "witness-split-view",
                petition_slug=petition.slug,
                detail=reason,
            )
            log.critical(
                "SPLIT VIEW on %s: %s. No new checkpoint is published until an organiser "
                "has looked (samleng witness resume %s)",
                petition.slug,
                reason,
                petition.slug,
            )
        elif answer.needs_organisers:
            if witness.problem != answer.detail[:400]:
                log.error("witness %s of %s: %s", witness.name, petition.slug, answer.detail)
                record(
                    session,
                    WITNESS_ACTOR,
                    "witness-problem",
                    petition_slug=petition.slug,
                    detail=f"{witness.name}: {answer.detail}",
                )
            witness.problem = answer.detail[:400]
            backoff.failed(witness_id, now, at_least=_MISCONFIGURED_RETRY)
        elif outcome is Outcome.CONFLICT:
            backoff.failed(witness_id, now)
        else:  # unavailable or garbage: it may come back
            attempts = backoff.failed(witness_id, now)
            if attempts >= _ATTEMPTS_BEFORE_PROBLEM and witness.problem is None:
                witness.problem = f"no usable answer {attempts} times in a row: {answer.detail}"
                log.warning("witness %s of %s: %s", witness.name, petition.slug, witness.problem)
        session.commit()


def witness_round(
    engine: Engine, client: WitnessClient, backoff: Backoff, *, now: float | None = None
) -> list[Asked]:
    """Ask every due witness once, one after the other; return what each answered.

    The sealer's command runs this after sealing; the in-process witnessing thread asks them
    in parallel (service/petitions/scheduler.py).
    """
    now = time.monotonic() if now is None else now
    with Session(engine) as session:
        due = [w for w in due_witnesses(session) if backoff.ready(w, now)]
    asked = []
    for witness_id in due:
        done = ask_witness(engine, witness_id, client, backoff)
        if done is not None:
            asked.append(done)
    return asked
