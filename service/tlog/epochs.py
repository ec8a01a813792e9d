"""Sealing epochs: the short-lived keys pending signatures are sealed to.

The newest epoch is current: signing seals to its public key (in the database, so any app
server can). Its private key is a key file of the sealer's (service/platform/vault.py). Each sealing
round opens a new epoch when the current one holds signatures, seals the older epochs'
signatures, then retires every older epoch that has none left: deletes its row and destroys
its key file. A signature can only be written while its epoch's row exists (a foreign key),
so an epoch cannot be retired under a signature being written to it, and a key is never
destroyed while a signature sealed to it waits.

Takes sessions and the vault as arguments; imports nothing of Flask.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from samleng.crypto.pending import generate_epoch_keypair
from samleng.service.platform.errors import Error
from samleng.service.platform.models import PendingSignature, SealEpoch
from samleng.service.platform.vault import Vault

_PREFIX = "epoch-"


class SealingUnavailable(Error):
    """No sealing epoch accepts signatures right now (a 503: try again)."""


@dataclass(frozen=True, kw_only=True)
class Epoch:
    """A sealing epoch: its number and public key."""

    id: int
    public_key: bytes


def key_name(epoch_id: int) -> str:
    """The name of the key file of epoch ``epoch_id``."""
    return f"{_PREFIX}{epoch_id}"


def current_epoch(session: Session) -> Epoch | None:
    """The newest sealing epoch, or None before the first."""
    row = session.execute(
        select(SealEpoch.id, SealEpoch.public_key).order_by(SealEpoch.id.desc()).limit(1)
    ).first()
    return None if row is None else Epoch(id=row[0], public_key=row[1])


def open_epoch(session: Session, vault: Vault) -> Epoch:
    """Make a new current epoch: its key file first, then its row (the caller commits).

    Under the sealer lock only, so that tidy_epoch_keys never meets a key file whose row is
    about to be committed.
    """
    private, public = generate_epoch_keypair()
    number = (session.scalar(select(func.max(SealEpoch.id))) or 0) + 1
    vault.create(key_name(number), private)
    try:
        session.add(SealEpoch(id=number, public_key=public))
        session.flush()
    except BaseException:
        vault.destroy(key_name(number))
        raise
    return Epoch(id=number, public_key=public)


def ensure_epoch(session: Session, vault: Vault) -> Epoch:
    """The current epoch, opened if there is none yet (the caller commits)."""
    return current_epoch(session) or open_epoch(session, vault)


def epoch_private_key(vault: Vault, epoch_id: int) -> bytes:
    """The private key of epoch ``epoch_id``, from its key file."""
    return vault.read(key_name(epoch_id))


def waiting_in_current_epoch(session: Session) -> int:
    """How many signatures the current epoch holds (what the next round would seal)."""
    current = current_epoch(session)
    if current is None:
        return 0
    return int(
        session.scalar(
            select(func.count())
            .select_from(PendingSignature)
            .where(PendingSignature.epoch_id == current.id)
        )
        or 0
    )


def epochs_with_signatures(session: Session) -> set[int]:
    """The epochs that have pending signatures."""
    return set(session.scalars(select(PendingSignature.epoch_id).distinct()))


def retire_epochs(session: Session, before: int) -> list[int]:
    """Delete the rows of the epochs older than ``before`` that no pending signature needs.

    The foreign key decides: on PostgreSQL the delete waits for a signature being written
    to that epoch and then fails, as it does on SQLite, so the epoch stays for the next
    round. Returns the epochs deleted; the caller commits, then destroys their key files.
    """
    retired = []
    for epoch_id in session.scalars(select(SealEpoch.id).where(SealEpoch.id < before)):
        try:
            with session.begin_nested():
                session.execute(delete(SealEpoch).where(SealEpoch.id == epoch_id))
        except IntegrityError:
            continue
        retired.append(epoch_id)
    return retired


def tidy_epoch_keys(session: Session, vault: Vault) -> list[int]:
    """Destroy the key files of epochs that have no row (retired, or never committed after a
    crash). Under the sealer lock only. Returns the epochs whose file was destroyed."""
    known = set(session.scalars(select(SealEpoch.id)))
    destroyed = []
    for name in vault.names(_PREFIX):
        number = name.removeprefix(_PREFIX)
        if number.isascii() and number.isdigit() and int(number) not in known:
            vault.destroy(name)
            destroyed.append(int(number))
    return destroyed


class CurrentEpoch:
    """The newest sealing epoch, as one worker keeps it for a couple of seconds: a signature
    then reads nothing before its write. A stale one is harmless: the write refuses an epoch
    that is gone, and the epoch's key lives until its last signature is sealed."""

    def __init__(self, seconds: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._kept: tuple[float, Epoch] | None = None

    def get(self, session: Session, *, fresh: bool = False) -> Epoch:
        """The current epoch; read from the database when ``fresh`` or when it ran out."""
        kept = self._kept
        if not fresh and kept is not None and self._clock() < kept[0]:
            return kept[1]
        epoch = current_epoch(session)
        # The read ends here: on SQLite a transaction that read before it writes can fail
        # at the write if another writer committed meanwhile.
        session.commit()
        if epoch is None:
            # The sealer makes the first one when a petition opens; without one nothing
            # can be written, and the signer is asked to try again.
            raise SealingUnavailable("there is no sealing epoch yet")
        self._kept = (self._clock() + self.seconds, epoch)
        return epoch
