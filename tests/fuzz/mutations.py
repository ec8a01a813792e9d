"""Hypothesis strategies that damage valid inputs the way a hostile or broken file would.

Random bytes alone rarely get past the first check of a parser; mutating a valid input
(flipping, inserting, deleting, duplicating, truncating) reaches the checks behind it.
"""

from __future__ import annotations

import os

from hypothesis import strategies as st


def examples(default: int) -> int:
    """``default`` examples per test, times SAMLENG_FUZZ_SCALE (e.g. 50 for a long hunt)."""
    return default * int(os.environ.get("SAMLENG_FUZZ_SCALE", "1"))


# Bytes that parsers of these text formats treat specially.
SPECIAL = [b"\n", b"\n\n", b" ", b"+", b"=", b"-", b"\x00", b"\r", b"\xe2\x80\x94 ", b"\xff", b"0"]


@st.composite
def mutated(draw: st.DrawFn, valid: bytes, max_mutations: int = 4) -> bytes:
    """``valid`` with one to ``max_mutations`` random edits (or, now and then, unchanged)."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, max_mutations))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["flip", "insert", "special", "delete", "copy", "truncate"]))
        if edit == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "special":
            data[at:at] = draw(st.sampled_from(SPECIAL))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif edit == "copy":
            data[at:at] = data[draw(st.integers(0, len(data))) :][: draw(st.integers(1, 64))]
        elif edit == "truncate":
            del data[at:]
    return bytes(data)


def bytes_like(valid: bytes) -> st.SearchStrategy[bytes]:
    """Mutations of ``valid``, or arbitrary bytes."""
    return st.one_of(mutated(valid), st.binary(max_size=300))


def text_like(valid: str) -> st.SearchStrategy[str]:
    """Mutations of ``valid`` decoded leniently, or arbitrary text."""
    return st.one_of(
        mutated(valid.encode()).map(lambda b: b.decode("utf-8", "replace")),
        st.text(max_size=200),
    )
