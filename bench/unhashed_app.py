"""Samleng with its Argon2 hash replaced by BLAKE2b, for bench/sign_floor.py alone.

Serving this measures everything a signature costs besides its hash: the request, the form,
the sealing of the details, the database write, the gate's thread hand-off, the receipt page,
the sealer. Nothing else imports it; a server started from it must never take signatures that
count (its dedup tokens are not Argon2id, DESIGN §4).
"""

from __future__ import annotations

import hashlib

import samleng.crypto.tokens as tokens


def _not_argon2(secret: bytes, salt: bytes, **_: object) -> bytes:
    return hashlib.blake2b(secret + salt, digest_size=32).digest()


tokens.hash_secret_raw = _not_argon2  # type: ignore[assignment]

from samleng.service.wsgi import app  # noqa: E402

__all__ = ["app"]
