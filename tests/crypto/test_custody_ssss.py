"""Our Shamir shares are those of the Debian ``ssss`` tool (B. Poettering's C implementation).

pycryptodome's Shamir in its ``ssss`` mode (docs/formats.md §10.2) must agree with
``ssss-split``/``ssss-combine -x -D`` at the 128-bit level, both ways: so a coalition can
recombine a record's data key from the hex shares of its shares files with a second,
independent tool. ssss refuses a threshold of 1, so k starts at 2 here.
"""

import random
import re
import subprocess

import pytest

from samleng.crypto.custody import combine_data_key, split_data_key
from tests.components import INSTALL_HINT, require_program

HINT = f"apt-get install ssss ({INSTALL_HINT})"


def ssss_combine(k: int, shares: dict[int, bytes]) -> bytes:
    lines = "".join(f"{index}-{share.hex()}\n" for index, share in shares.items())
    done = subprocess.run(
        [require_program("ssss-combine", HINT), "-t", str(k), "-x", "-D", "-q"],
        input=lines, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # ssss prints the secret on standard error (its prompt's stream), as hex with -x.
    return bytes.fromhex(done.stderr.strip())


def ssss_split(k: int, n: int, secret: bytes) -> dict[int, bytes]:
    done = subprocess.run(
        [require_program("ssss-split", HINT), "-t", str(k), "-n", str(n), "-x", "-D",
         "-s", "128", "-q"],
        input=secret.hex() + "\n", capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shares = {}
    for line in done.stdout.split():
        match = re.fullmatch(r"0*([0-9]+)-([0-9a-f]{32})", line)
        assert match, line
        shares[int(match.group(1))] = bytes.fromhex(match.group(2))
    assert sorted(shares) == list(range(1, n + 1))
    return shares


@pytest.mark.parametrize(("k", "n"), [(2, 2), (2, 3), (3, 5), (5, 9), (16, 16)])
def test_ssss_combines_our_shares(k: int, n: int) -> None:
    rng = random.Random(k * 100 + n)
    for _ in range(3):
        key = rng.randbytes(16)
        shares = dict(enumerate(split_data_key(key, k, n), start=1))
        chosen = sorted(rng.sample(sorted(shares), k))
        assert ssss_combine(k, {i: shares[i] for i in chosen}) == key


@pytest.mark.parametrize(("k", "n"), [(2, 3), (3, 5), (16, 16)])
def test_we_combine_the_shares_of_ssss(k: int, n: int) -> None:
    rng = random.Random(k + n)
    key = rng.randbytes(16)
    shares = ssss_split(k, n, key)
    chosen = rng.sample(sorted(shares), k)
    assert combine_data_key({i: shares[i] for i in chosen}, k) == key
