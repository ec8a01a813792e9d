"""The random-sample audit: which signature leaves to check, and what a sample can detect.

The sample is drawn from the final checkpoint and a seed nobody knew before that checkpoint
was fixed (docs/formats.md §14 is normative; docs/auditing.md explains the procedure).

The seed must be ``<hex SHA-256 of the final checkpoint note> <random value>``: the hash is
published first, the random value (a lottery draw, say) is drawn afterwards, so whoever holds
the log key cannot pick a final checkpoint that steers the sample. :func:`check_seed` enforces
that form; the derivation itself treats the seed as opaque text:

1. ``key = HMAC-SHA256(key = "samleng-sample/v1", msg = body || seed)``, where ``body`` is the
   checkpoint's text ``origin\\nsize\\nbase64(root)\\n`` and ``seed`` the seed's UTF-8 bytes.
2. For ``j = 0, 1, 2, ...``: ``x_j`` = the first 8 bytes of ``HMAC-SHA256(key, u64be(j))`` as a
   big-endian unsigned integer. With ``m = size - 1`` leaves after the header, ``x_j`` is
   rejected if ``x_j >= 2^64 - (2^64 mod m)`` (so every index is equally likely); otherwise
   the candidate is leaf ``1 + (x_j mod m)``, and it is skipped if already drawn or if it is
   no signature (an endorsement leaf, kind 0x06).
3. The first ``k`` distinct candidates, in the order drawn, are the sample. A larger ``k``
   with the same seed extends the same list.
"""

import hashlib
import hmac
import math
from fractions import Fraction

from samleng.crypto.checkpoint import Checkpoint
from samleng.crypto.errors import SampleError, SeedError

SAMPLE_DOMAIN = b"samleng-sample/v1"
_SPACE = 1 << 64
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def checkpoint_hash(note: bytes) -> str:
    """Return the lower-case hex SHA-256 of a signed checkpoint note: what to publish first."""
    return hashlib.sha256(note).hexdigest()


def _procedure(expected: str) -> str:
    """The steps that make a valid seed, with the hash of this final checkpoint."""
    return (
        f"This bundle's final checkpoint has SHA-256\n  {expected}\n(sha256sum prints it for the "
        "bundle's checkpoint file, and SHA256SUMS lists it). First publish this hash and where "
        "the random value will come from (e.g. the first lottery draw after a given date); once "
        f'that value is drawn, the seed is --seed "{expected} <random value>"'
    )


def check_seed(final_note: bytes, seed: str) -> None:
    """Refuse a seed that is not ``<hex SHA-256 of final_note> <random value>`` (SeedError).

    ``final_note`` is the final checkpoint's signed note, the bundle's ``checkpoint`` file.
    The message says which part is wrong and how to make a valid seed.
    """
    expected = checkpoint_hash(final_note)
    head, _space, value = seed.partition(" ")
    if head == expected and value.strip():
        return
    if head == expected:
        raise SeedError(
            "the seed has no random value after the final checkpoint's hash. "
            + _procedure(expected)
        )
    if len(head) == len(expected) and set(head) <= _HEX_DIGITS:
        if head.lower() == expected:
            raise SeedError(
                "the seed's checkpoint hash must be lower-case hex, as sha256sum prints it (each "
                "spelling would give another sample). " + _procedure(expected)
            )
        raise SeedError(
            f"the seed starts with the SHA-256 {head}, but this bundle's final checkpoint has "
            f"SHA-256 {expected}: the sample must come from the checkpoint whose hash was "
            "published before the random value was drawn, and this bundle's final checkpoint is "
            "not the checkpoint that was announced"
        )
    raise SeedError(
        "the seed must start with the SHA-256 of the bundle's final checkpoint, then a space "
        "and a public random value drawn after that hash was published; otherwise the final "
        "checkpoint could have been chosen knowing the sample. " + _procedure(expected)
    )


def sample_key(checkpoint: Checkpoint, seed: str) -> bytes:
    """Return the HMAC key of the sample for this final checkpoint and published seed."""
    return hmac.digest(SAMPLE_DOMAIN, checkpoint.body() + seed.encode("utf-8"), hashlib.sha256)


def sample_indices(
    checkpoint: Checkpoint, seed: str, k: int, others: frozenset[int] = frozenset()
) -> list[int]:
    """Return ``k`` distinct signature leaf indices (1 .. size-1), in the order drawn.

    ``others`` are the indices of leaves that are no signatures (endorsements, §23): a
    candidate among them is skipped like one already drawn, so a log without them gives the
    same sample as before. SampleError when the log has no signatures, or ``k`` is not
    between 1 and their number.
    """
    leaves = checkpoint.size - 1
    signatures = leaves - len(others)
    if signatures < 1:
        raise SampleError("the log has no signatures to sample")
    if not 1 <= k <= signatures:
        raise SampleError(f"k must be between 1 and the number of signatures ({signatures})")
    key = sample_key(checkpoint, seed)
    limit = _SPACE - _SPACE % leaves
    drawn: dict[int, None] = {}  # insertion-ordered set
    counter = 0
    while len(drawn) < k:
        block = hmac.digest(key, counter.to_bytes(8, "big"), hashlib.sha256)
        counter += 1
        x = int.from_bytes(block[:8], "big")
        if x < limit and 1 + x % leaves not in others:
            drawn.setdefault(1 + x % leaves, None)
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
