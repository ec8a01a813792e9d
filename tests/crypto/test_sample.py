"""The sample audit's derivation (docs/auditing.md) and its detection probability."""

import hashlib
import hmac
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samleng.crypto.checkpoint import Checkpoint
from samleng.crypto.errors import SampleError, SeedError
from samleng.crypto.sample import (
    check_seed,
    checkpoint_hash,
    detection_probability,
    fabricated_count,
    sample_indices,
    sample_key,
)

ORIGIN = "petitions.example.org/p/end-impunity"
FINAL = Checkpoint(origin=ORIGIN, size=101, root=bytes(range(32)))
SEED = "Cambodia lottery 2026-03-01: 482913"
KNOWN_SAMPLE = [97, 90, 78, 62, 8, 60, 57, 26, 85, 35]


def documented_sample(origin: str, size: int, root_b64: str, seed: str, k: int) -> list[int]:
    """An independent reading of docs/auditing.md, written from the text, not the module."""
    body = f"{origin}\n{size}\n{root_b64}\n".encode() + seed.encode()
    key = hmac.new(b"samleng-sample/v1", body, "sha256").digest()
    m = size - 1
    bound = 2**64 - 2**64 % m
    chosen: list[int] = []
    j = 0
    while len(chosen) < k:
        x = int.from_bytes(hmac.new(key, j.to_bytes(8, "big"), "sha256").digest()[:8], "big")
        j += 1
        if x >= bound:
            continue
        index = x % m + 1
        if index not in chosen:
            chosen.append(index)
    return chosen


def test_known_answer() -> None:
    assert sample_indices(FINAL, SEED, 10) == KNOWN_SAMPLE
    root_b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    assert documented_sample(ORIGIN, 101, root_b64, SEED, 10) == KNOWN_SAMPLE
    expected_key = hmac.new(
        b"samleng-sample/v1", f"{ORIGIN}\n101\n{root_b64}\n{SEED}".encode(), hashlib.sha256
    ).digest()
    assert sample_key(FINAL, SEED) == expected_key


def test_known_answer_of_docs_auditing() -> None:
    """The known answer docs/auditing.md gives, with a seed that starts with the note's hash."""
    seed = (
        "d468ee1b27c650eb0677ad6fce48788dd99fb9343a2dd11ba18e7b3a852dcb45 "
        "Cambodia lottery 2026-03-01: 482913"
    )
    root_b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    expected = [5, 17, 9, 57, 48, 22, 69, 61, 71, 92]
    assert documented_sample(ORIGIN, 101, root_b64, seed, 10) == expected
    assert sample_indices(FINAL, seed, 10) == expected


def test_same_seed_same_sample_other_seed_other_sample() -> None:
    assert sample_indices(FINAL, SEED, 20) == sample_indices(FINAL, SEED, 20)
    assert sample_indices(FINAL, SEED + ".", 20) != sample_indices(FINAL, SEED, 20)
    other_root = Checkpoint(origin=ORIGIN, size=101, root=bytes(32))
    assert sample_indices(other_root, SEED, 20) != sample_indices(FINAL, SEED, 20)


@settings(deadline=None)  # up to 400 HMACs per example: slow on a busy machine
@given(
    size=st.integers(min_value=2, max_value=400),
    seed=st.text(max_size=30),
    root=st.binary(min_size=32, max_size=32),
    data=st.data(),
)
def test_sample_is_distinct_in_range_and_extends(
    size: int, seed: str, root: bytes, data: st.DataObject
) -> None:
    final = Checkpoint(origin=ORIGIN, size=size, root=root)
    k = data.draw(st.integers(min_value=1, max_value=size - 1))
    drawn = sample_indices(final, seed, k)
    assert len(drawn) == len(set(drawn)) == k
    assert all(1 <= i <= size - 1 for i in drawn)
    # A larger sample with the same seed extends the smaller one.
    assert sample_indices(final, seed, size - 1)[:k] == drawn


def test_full_sample_is_a_permutation() -> None:
    assert sorted(sample_indices(FINAL, SEED, 100)) == list(range(1, 101))


def test_roughly_uniform() -> None:
    counts = [0, 0, 0]
    for n in range(3000):
        final = Checkpoint(origin=ORIGIN, size=4, root=n.to_bytes(32, "big"))
        counts[sample_indices(final, SEED, 1)[0] - 1] += 1
    assert all(900 < c < 1100 for c in counts), counts


@pytest.mark.parametrize(("size", "k"), [(1, 1), (0, 1), (101, 0), (101, 101), (101, -1)])
def test_bad_sizes_refused(size: int, k: int) -> None:
    final = Checkpoint(origin=ORIGIN, size=size, root=bytes(32))
    with pytest.raises(SampleError):
        sample_indices(final, SEED, k)


def exact(n: int, k: int, f: int) -> Fraction:
    return 1 - Fraction(math.comb(n - f, k), math.comb(n, k))


@settings(deadline=None)
@given(
    n=st.integers(min_value=1, max_value=300),
    data=st.data(),
)
def test_detection_probability_is_hypergeometric(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=0, max_value=n))
    f = data.draw(st.integers(min_value=0, max_value=n))
    assert detection_probability(n, k, f) == pytest.approx(float(exact(n, k, f)), abs=1e-12)


def test_detection_probability_known_values() -> None:
    # 1% fabricated among 10 000, sample of 300: a little above the with-replacement
    # approximation 1 - 0.99^300 = 0.9510, because a sample never draws a leaf twice.
    p = detection_probability(10_000, 300, 100)
    assert p == pytest.approx(float(exact(10_000, 300, 100)), rel=1e-12)
    assert 1 - 0.99**300 < p < 0.954
    assert detection_probability(1000, 10, 0) == 0.0
    assert detection_probability(10, 5, 6) == 1.0  # more fakes than the genuine can hide


@pytest.mark.parametrize(
    ("signatures", "fraction", "count"),
    [(100, 0.29, 29), (1000, 0.01, 10), (50, 0.01, 0), (7, 1.0, 7), (7, 0.0, 0), (3, 0.5, 1)],
)
def test_fabricated_count(signatures: int, fraction: float, count: int) -> None:
    assert fabricated_count(signatures, fraction) == count


@pytest.mark.parametrize("fraction", [-0.1, 1.5, math.nan])
def test_bad_fraction_refused(fraction: float) -> None:
    with pytest.raises(SampleError):
        fabricated_count(100, fraction)


# --- the seed: the final checkpoint's hash first, then the random value -------------------------

# check_seed hashes the note's bytes whatever they are; FINAL's text stands in for a signed note.
NOTE = FINAL.body()
NOTE_HASH = hashlib.sha256(NOTE).hexdigest()


@given(value=st.text(min_size=1).filter(lambda text: text.strip() != ""))
def test_a_seed_of_the_hash_and_a_value_is_accepted(value: str) -> None:
    check_seed(NOTE, f"{NOTE_HASH} {value}")
    assert checkpoint_hash(NOTE) == NOTE_HASH


@given(seed=st.text())
def test_any_other_seed_is_refused(seed: str) -> None:
    valid = seed.startswith(NOTE_HASH + " ") and seed[len(NOTE_HASH) + 1 :].strip() != ""
    if valid:
        check_seed(NOTE, seed)
    else:
        with pytest.raises(SeedError):
            check_seed(NOTE, seed)


@given(prefix=st.text(alphabet="0123456789abcdef", max_size=64), value=st.text(min_size=1))
def test_a_seed_with_part_of_the_hash_is_refused(prefix: str, value: str) -> None:
    if prefix == NOTE_HASH:
        return
    with pytest.raises(SeedError):
        check_seed(NOTE, f"{prefix} {value}")


def test_the_seed_rule_leaves_the_derivation_alone() -> None:
    """Only which seeds are accepted changed: the sample of a seed is what it always was."""
    seed = f"{NOTE_HASH} {SEED}"
    check_seed(NOTE, seed)
    body = FINAL.body() + seed.encode()
    assert sample_key(FINAL, seed) == hmac.new(b"samleng-sample/v1", body, "sha256").digest()
