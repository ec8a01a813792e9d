"""Organisers' passwords: Argon2id with pinned parameters, a length cap, rehash on change.

The parameters are one constant. When it changes, a stored hash with other parameters is
replaced at the account's next successful login (``needs_rehash``).
"""

from __future__ import annotations

import functools
import unicodedata

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from samleng.crypto.tokens import Argon2Params
from samleng.service.admin.errors import PasswordPolicyError
from samleng.service.platform.errors import N_

# RFC 9106 §4's second recommended option (t=3, m=64 MiB) on one lane instead of four: the
# same work and memory against a stolen hash, but on one core, so that the admin's one
# password slot per process (views.PASSWORD_SLOTS) bounds a login flood to one core's share
# and leaves the others to signing (about 0.2 s of one core a hash, measured).
# Hashes made with other parameters are replaced at the next login (needs_rehash).
PASSWORD_ARGON2 = Argon2Params(time_cost=3, memory_kib=65536, parallelism=1)
MIN_PASSWORD_CHARS = 12
# Anything longer is refused before hashing, to avoid DoS by huge passwords.
MAX_PASSWORD_CHARS = 1024


@functools.cache
def _hasher(params: Argon2Params) -> PasswordHasher:
    return PasswordHasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


def hasher() -> PasswordHasher:
    """The password hasher with the pinned parameters (read at call time, for the tests)."""
    return _hasher(PASSWORD_ARGON2)


def _normalise(password: str) -> bytes:
    # NFC, so a password typed on another keyboard (Khmer has several input methods) matches.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def check_password_policy(password: str) -> None:
    """Raise PasswordPolicyError for a new password that is too short or too long."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordPolicyError(
            N_("a password needs at least %(least)s characters"), least=MIN_PASSWORD_CHARS
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordPolicyError(
            N_("a password has at most %(most)s characters"), most=MAX_PASSWORD_CHARS
        )


def hash_password(password: str) -> str:
    """The Argon2id PHC string of a new password that meets the policy."""
    check_password_policy(password)
    return hasher().hash(_normalise(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``.

    With no stored hash (unknown account) a dummy hash is checked, so the answer takes the
    same time and does not tell whether the account exists.
    """
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    candidate = _normalise(password)
    try:
        return hasher().verify(stored_hash or _dummy_hash(PASSWORD_ARGON2), candidate) and (
            stored_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether the stored hash was made with other parameters than the pinned ones."""
    return hasher().check_needs_rehash(stored_hash)


@functools.cache
def _dummy_hash(params: Argon2Params) -> str:
    return _hasher(params).hash(b"samleng-no-such-account")
