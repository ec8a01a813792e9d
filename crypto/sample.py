"""The random-sample audit: which signature leaves to check, and what a sample can detect.

The sample is drawn from the final checkpoint and a seed nobody knew before the petition
closed (docs/auditing.md gives the derivation so that any tool can reproduce it):

1. ``key = HMAC-SHA256(key = "samleng-sample/v1", msg = body || seed)``, where ``body`` is the
   checkpoint's text ``origin\\nsize\\nbase64(root)\\n`` and ``seed`` the seed's UTF-8 bytes.
2. For ``j = 0, 1, 2, ...``: ``x_j`` = the first 8 bytes of ``HMAC-SHA256(key, u64be(j))`` as a
   big-endian unsigned integer. With ``m = size - 1`` signature leaves, ``x_j`` is rejected
   if ``x_j >= 2^64 - (2^64 mod m)`` (so every index is equally likely); otherwise the
   candidate is leaf ``1 + (x_j mod m)``, and it is skipped if already drawn.
3. The first ``k`` distinct candidates, in the order drawn, are the sample. A larger ``k``
   with the same seed extends the same list.
"""

import hashlib
import hmac
import math
from fractions import Fraction

from samleng.crypto.checkpoint import Checkpoint
from samleng.crypto.errors import SampleError

SAMPLE_DOMAIN = b"samleng-sample/v1"
_SPACE = 1 << 64


def sample_key(checkpoint: Checkpoint, seed: str) -> bytes:
    """Return the HMAC key of the sample for this final checkpoint and published seed."""
    return hmac.digest(SAMPLE_DOMAIN, checkpoint.body() + seed.encode("utf-8"), hashlib.sha256)


def sample_indices(checkpoint: Checkpoint, seed: str, k: int) -> list[int]:
    """Return ``k`` distinct signature leaf indices (1 .. size-1), in the order drawn.

    SampleError when the log has no signatures, or ``k`` is not between 1 and their number.
    """
    signatures = checkpoint.size - 1
    if signatures < 1:
        raise SampleError("the log has no signatures to sample")
    if not 1 <= k <= signatures:
        raise SampleError(f"k must be between 1 and the number of signatures ({signatures})")
    key = sample_key(checkpoint, seed)
    limit = _SPACE - _SPACE % signatures
    drawn: dict[int, None] = {}  # insertion-ordered set
    counter = 0
    while len(drawn) < k:
        block = hmac.digest(key, counter.to_bytes(8, "big"), hashlib.sha256)
        counter += 1
        x = int.from_bytes(block[:8], "big")
        if x < limit:
            drawn.setdefault(1 + x % signatures, None)
    return list(drawn)


def fabricated_count(signatures: int, fake_fraction: float) -> int:
    """Return how many of ``signatures`` a fraction means, rounded down (the cautious side).

    The fraction is taken as the decimal it was written as (0.29 of 100 is 29, not 28).
    """
    if not 0.0 <= fake_fraction <= 1.0:  # also refuses NaN
        raise SampleError("the fake fraction must be between 0 and 1")
    return math.floor(Fraction(repr(fake_fraction)) * signatures)


def detection_probability(signatures: int, k: int, fabricated: int) -> float:
    """Return the chance that ``k`` leaves drawn without replacement include a fabricated one.

    Exact hypergeometric: ``1 - C(n - f, k) / C(n, k)`` for ``n`` signatures of which ``f``
    are fabricated, computed as a product of ratios so that large logs need no big integers.
    """
    if not 0 <= fabricated <= signatures or not 0 <= k <= signatures:
        raise SampleError("need 0 <= fabricated <= signatures and 0 <= k <= signatures")
    genuine = signatures - fabricated
    if k > genuine:
        return 1.0
    missed = 1.0
    for i in range(k):
        missed *= (genuine - i) / (signatures - i)
    return 1.0 - missed
