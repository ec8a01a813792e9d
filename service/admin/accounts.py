"""Accounts, logins, and who may see which petition.

An admin sees every petition and manages accounts. An organiser who acts for an
organisation sees only the petitions it organises (and the drafts they create, which it
then organises); an organiser without one, as every account from before organisations,
only the petitions granted to them. Anything else is answered as "not found", so an
organiser cannot even learn that another petition's draft exists.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.expression import Exists

from samleng.service.admin import logins, totp
from samleng.service.admin.errors import AccountError, LoginFailed, WrongCode, WrongPassword
from samleng.service.admin.passwords import hash_password, needs_rehash, verify_password
from samleng.service.platform.errors import N_, PetitionNotFound
from samleng.service.platform.models import (
    ROLES,
    Account,
    Petition,
    PetitionGrant,
    PetitionOrganiser,
)

ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def normalise_name(name: str) -> str:
    """Account names are compared in lower case, without surrounding spaces."""
    return name.strip().lower()


def create_account(session: Session, name: str, role: str, password: str) -> Account:
    """Create an active account; AccountError or PasswordPolicyError when it cannot be."""
    name = normalise_name(name)
    if not ACCOUNT_NAME.match(name):
        raise AccountError(
            N_(
                "an account name is 1-64 lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        )
    if role not in ROLES:
        raise AccountError(N_("the role must be one of %(roles)s"), roles=", ".join(ROLES))
    if session.scalar(select(Account.id).where(Account.name == name)) is not None:
        raise AccountError(N_("an account named %(name)s exists already"), name=repr(name))
    account = Account(name=name, role=role, password_hash=hash_password(password), active=True)
    session.add(account)
    session.flush()
    return account


def find_account(session: Session, name: str) -> Account | None:
    """The account with this name, if any."""
    return session.scalar(select(Account).where(Account.name == normalise_name(name)))


def authenticate(
    session: Session,
    name: str,
    password: str,
    code: str,
    *,
    master_key: bytes,
    now: float | None = None,
) -> Account:
    """The account whose name, password and (if enrolled) TOTP code are right.

    Raises LoginFailed otherwise, the same for every cause. The password is checked even for
    an unknown name (against a dummy hash), so timing does not reveal which names exist.
    Rehashes the password when the pinned parameters changed.

    Ends the session's read (:func:`end_read`) before the slow hash; the writes that follow
    are left for the caller to commit.
    """
    account = find_account(session, name[:100])
    end_read(session)
    if not verify_password(account.password_hash if account else None, password):
        raise LoginFailed("wrong name, password or code")
    # verify_password is False without an account; checked again here, not by an assert,
    # because asserts vanish under `python -O` and this is the login decision.
    if account is None or not account.active:
        raise LoginFailed("wrong name, password or code")
    if account.wrapped_totp_secret is not None:
        use_totp_code(session, account, code, master_key=master_key, now=now)
    if needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    return account


def end_read(session: Session) -> None:
    """End the session's transaction before a slow password hash, so that the writes after
    it start from a fresh snapshot: SQLite refuses a write from a snapshot that another
    writer overtook meanwhile ("database is locked"), and PostgreSQL need not keep one
    open. Only for callers with nothing pending yet (it commits)."""
    session.commit()


def use_totp_code(
    session: Session, account: Account, code: str, *, master_key: bytes, now: float | None = None
) -> None:
    """Accept ``code`` from the account's enrolled authenticator, once; LoginFailed if it
    is wrong, expired, or already used (here or by a login at the same moment)."""
    if account.wrapped_totp_secret is None:
        raise LoginFailed("wrong name, password or code")
    secret = totp.unwrap_secret(master_key, account.wrapped_totp_secret, account.id)
    step = totp.matching_step(
        secret, code, time.time() if now is None else now, account.totp_last_step
    )
    if step is None or not _claim_step(session, account, step):
        raise LoginFailed("wrong name, password or code")


def _claim_step(session: Session, account: Account, step: int) -> bool:
    """Record ``step`` as the last one used, only if no later or equal step was: a compare-
    and-set in SQL, so that two logins racing with one code cannot both succeed (the second
    UPDATE waits for the first and then matches no row)."""
    claimed = session.execute(
        update(Account)
        .where(
            Account.id == account.id,
            or_(Account.totp_last_step.is_(None), Account.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(claimed, "rowcount", 0) or 0) != 1:
        return False
    set_committed_value(account, "totp_last_step", step)  # what the UPDATE wrote
    return True


def check_password(account: Account, password: str) -> bool:
    """Whether ``password`` is the account's (to confirm a sensitive change)."""
    return verify_password(account.password_hash, password)


def change_password(session: Session, account: Account, current: str, new: str) -> None:
    """Set a new password after checking the current one (LoginFailed if it is wrong).
    Ends the session's read before the hash (:func:`end_read`); the caller commits."""
    end_read(session)
    if not check_password(account, current):
        raise LoginFailed("the current password is wrong")
    account.password_hash = hash_password(new)
    account.must_change_password = False
    session.flush()


def reset_password(session: Session, account: Account, *, reset_totp: bool = False) -> str:
    """Give the account a one-time password to be changed at the next login; return it.

    With ``reset_totp`` the authenticator is removed too (the organiser lost it); otherwise
    the login still asks for its code. The caller ends the account's sessions and commits.
    """
    password = secrets.token_urlsafe(15)
    account.password_hash = hash_password(password)
    account.must_change_password = True
    if reset_totp:
        account.wrapped_totp_secret = None
        account.totp_last_step = None
    session.flush()
    return password


def confirm_identity(
    session: Session,
    account: Account,
    password: str,
    code: str,
    *,
    master_key: bytes,
    now: float | None = None,
) -> None:
    """What changing the second factor asks for: the password and, while an authenticator
    is enrolled, a fresh code from it (used up, like at login). A session cookie alone is
    not enough. WrongPassword or WrongCode otherwise. Ends the session's read first
    (:func:`end_read`): call it before changing anything."""
    end_read(session)
    if not check_password(account, password):
        raise WrongPassword("the current password is wrong")
    if account.wrapped_totp_secret is not None:
        try:
            use_totp_code(session, account, code, master_key=master_key, now=now)
        except LoginFailed:
            raise WrongCode("the code from your current authenticator is wrong") from None


def enable_totp(
    session: Session,
    account: Account,
    secret: bytes,
    code: str,
    *,
    password: str,
    current_code: str = "",
    master_key: bytes,
    now: float | None = None,
) -> None:
    """Enrol ``secret`` as the account's second factor, replacing any earlier one.

    Asks what :func:`confirm_identity` asks, then that ``code`` proves the app has the new
    secret (AccountError if not). The change is left for the caller to commit.
    """
    now = time.time() if now is None else now
    confirm_identity(session, account, password, current_code, master_key=master_key, now=now)
    step = totp.matching_step(secret, code, now, None)
    if step is None:
        raise AccountError(N_("the code does not match; check the phone's clock and try again"))
    account.wrapped_totp_secret = totp.wrap_secret(master_key, secret, account.id)
    account.totp_last_step = step
    session.flush()


def disable_totp(
    session: Session,
    account: Account,
    password: str,
    code: str,
    *,
    master_key: bytes,
    now: float | None = None,
) -> None:
    """Remove the account's second factor, once :func:`confirm_identity` is satisfied."""
    confirm_identity(session, account, password, code, master_key=master_key, now=now)
    account.wrapped_totp_secret = None
    account.totp_last_step = None
    session.flush()


def set_active(session: Session, account: Account, active: bool, *, by: Account) -> None:
    """Enable or disable ``account`` (by the admin ``by``); disabling ends all its sessions
    at once. AccountError for an admin disabling themselves (there would be nobody left who
    could undo it, for a sole admin)."""
    if account.id == by.id and not active:
        raise AccountError(N_("you cannot disable yourself"))
    account.active = active
    if not active:
        logins.end_all_sessions(session, account)


def accounts(session: Session) -> Sequence[Account]:
    """Every account, by name."""
    return session.scalars(select(Account).order_by(Account.name)).all()


def visible_petitions(session: Session, account: Account) -> Sequence[Petition]:
    """The petitions ``account`` may see, newest first."""
    query = select(Petition).order_by(Petition.id.desc())
    if account.role != "admin":
        query = query.where(_may_act(account))
    return session.scalars(query).all()


def _may_act(account: Account) -> Exists:
    """The petitions an organiser may act on: their organisation's, or (with none) those
    granted to them. A grant does not widen what an organisation's organiser may do."""
    if account.organisation_id is not None:
        return exists().where(
            PetitionOrganiser.petition_id == Petition.id,
            PetitionOrganiser.organisation_id == account.organisation_id,
        )
    return exists().where(
        PetitionGrant.petition_id == Petition.id, PetitionGrant.account_id == account.id
    )


def petition_for(session: Session, account: Account, slug: str) -> Petition:
    """The petition ``slug`` if ``account`` may act on it; PetitionNotFound otherwise."""
    query = select(Petition).where(Petition.slug == slug)
    if account.role != "admin":
        query = query.where(_may_act(account))
    petition = session.scalar(query)
    if petition is None:
        raise PetitionNotFound(slug)
    return petition


def grant(session: Session, account: Account, petition: Petition) -> bool:
    """Let ``account`` see and act on ``petition``. False if it already could."""
    if session.get(PetitionGrant, (account.id, petition.id)) is not None:
        return False
    session.add(PetitionGrant(account_id=account.id, petition_id=petition.id))
    session.flush()
    return True


def revoke(session: Session, account: Account, petition: Petition) -> bool:
    """Take ``petition`` away from ``account``. False if it had no grant."""
    row = session.get(PetitionGrant, (account.id, petition.id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def grantees(session: Session, petition: Petition) -> Sequence[Account]:
    """The accounts granted ``petition``, by name."""
    return session.scalars(
        select(Account)
        .join(PetitionGrant, PetitionGrant.account_id == Account.id)
        .where(PetitionGrant.petition_id == petition.id)
        .order_by(Account.name)
    ).all()
