"""Dedup tokens: a per-petition, slow, keyed hash of a normalised identifier.

``token = Argon2id(HMAC-SHA256(dedup_key, identifier), salt, t, m, p, 32)``. The HMAC makes
tokens useless without the petition's dedup key (deleted on "forget"); Argon2id makes a
leaked key plus token table expensive to brute-force over the small space of phone numbers.
"""

import hashlib
import hmac
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw

from samleng.crypto.keywrap import DEDUP_KEY_BYTES, SALT_BYTES

TOKEN_BYTES = 32


@dataclass(frozen=True, kw_only=True)
class Argon2Params:
    """Argon2id cost parameters, fixed per petition at creation and published in petition.json."""

    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1

    def __post_init__(self) -> None:
        """Refuse parameters Argon2 would reject, so a bad petition fails at creation time."""
        for name in ("time_cost", "memory_kib", "parallelism"):
            value = getattr(self, name)
            # bool is an int subclass; True as a cost parameter is surely a mistake.
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Argon2 {name} must be a positive integer")
        if self.memory_kib < 8 * self.parallelism:
            raise ValueError("Argon2 memory_kib must be at least 8 * parallelism")


# The one place for the production defaults: t=2, m=19 MiB, p=1 (OWASP's Argon2id baseline).
DEFAULT_ARGON2 = Argon2Params()


def dedup_token(dedup_key: bytes, identifier: str, salt: bytes, params: Argon2Params) -> bytes:
    """Return the 32-byte dedup token of a normalised ``identifier`` for one petition."""
    if len(dedup_key) != DEDUP_KEY_BYTES:
        raise ValueError(f"dedup key must be {DEDUP_KEY_BYTES} bytes")
    if len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes")
    if not identifier:
        raise ValueError("identifier is empty")
    password = hmac.digest(dedup_key, identifier.encode("utf-8"), hashlib.sha256)
    return hash_secret_raw(
        secret=password,
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=TOKEN_BYTES,
        type=Type.ID,
    )
