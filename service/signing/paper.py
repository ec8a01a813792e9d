"""Paper signatures: forms signed on paper, typed in by an organiser.

A paper form becomes a signature like an online one: its identifier is deduplicated with the
same token (a person who signed both ways counts once), its details are sealed to the
organisers' keys, and it waits for the next sealed batch, where it becomes a kind 0x05 leaf
(docs/formats.md §5). Nobody keeps its receipt code: the signer is not at the screen, and an
organiser who kept it could later find the signer's leaf. What the service records of the
entering is who entered how many forms (PaperTally), never which, nor when each was typed.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from samleng.crypto.leaf import LeafKind
from samleng.crypto.tokens import dedup_token
from samleng.service.platform.models import PaperTally
from samleng.service.signing.signatures import (
    SigningMaterial,
    Submission,
    TokenHasher,
    sign_petition,
)
from samleng.service.tlog.epochs import CurrentEpoch


def enter_paper_form(
    session: Session,
    keys: SigningMaterial,
    submission: Submission,
    account: str,
    *,
    hasher: TokenHasher = dedup_token,
    epochs: CurrentEpoch | None = None,
) -> int:
    """Record one paper form entered by ``account``; return how many forms that account has
    entered for the petition. The receipt is dropped here, unseen.

    Raises what sign_petition raises (PetitionStateError once the petition no longer takes
    signatures), with nothing written.
    """
    sign_petition(session, keys, submission, hasher=hasher, epochs=epochs, kind=LeafKind.PAPER)
    return _count_one(session, keys.petition_id, account)


def _count_one(session: Session, petition_id: int, account: str) -> int:
    """Add one to ``account``'s tally for the petition and commit; return the new tally."""
    where = (PaperTally.petition_id == petition_id, PaperTally.account == account)
    for _attempt in range(2):
        changed = session.execute(
            update(PaperTally).where(*where).values(entered=PaperTally.entered + 1)
        )
        if getattr(changed, "rowcount", 0) == 0:
            session.add(PaperTally(petition_id=petition_id, account=account, entered=1))
        try:
            session.commit()
        except IntegrityError:  # the same account's first form, entered twice at once
            session.rollback()
            continue
        break
    return session.scalars(select(PaperTally.entered).where(*where)).one()


def paper_tallies(session: Session, petition_id: int) -> list[tuple[str, int]]:
    """Who entered how many paper forms for the petition, most first."""
    rows = session.execute(
        select(PaperTally.account, PaperTally.entered)
        .where(PaperTally.petition_id == petition_id)
        .order_by(PaperTally.entered.desc(), PaperTally.account)
    ).all()
    return [(account, entered) for account, entered in rows]
