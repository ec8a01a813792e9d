"""Tests for crypto.canonical: canonical JSON and origin encoding."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samleng.crypto.canonical import canonical_json, encode_origin

KHMER_NAME = "សុខ ចាន់"


def test_canonical_json_known_answer() -> None:
    value = {"name": KHMER_NAME, "n": [1, 2.5, None, True], "a": {"z": 1, "b": '"\\\n'}}
    expected = bytes.fromhex(
        "7b2261223a7b2262223a225c225c5c5c6e222c227a223a317d2c226e223a5b312c322e352c6e756c6c2c"
        "747275655d2c226e616d65223a22e19e9fe19ebbe19e8120e19e85e19eb6e19e93e19f8b227d"
    )
    out = canonical_json(value)
    assert out == expected
    # Khmer text is raw UTF-8, not \\u escapes; keys sorted at every depth; no spaces but the
    # one inside the name.
    assert KHMER_NAME.encode("utf-8") in out
    assert b"\\u" not in out
    assert out.startswith(b'{"a":{"b":')


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {"x": [math.nan]}])
def test_canonical_json_refuses_non_finite(bad: object) -> None:
    with pytest.raises(ValueError):
        canonical_json(bad)


def test_canonical_json_refuses_lone_surrogate() -> None:
    with pytest.raises(ValueError):
        canonical_json({"name": "\ud800"})


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(_json_values)
def test_canonical_json_is_a_fixed_point(value: object) -> None:
    out = canonical_json(value)
    assert json.loads(out.decode("utf-8")) == value
    assert canonical_json(json.loads(out)) == out


@pytest.mark.parametrize(
    "origin", ["petitions.example.org/p/end-impunity", "localhost:5000/p/x", "ឧទាហរណ៍.kh/p/a"]
)
def test_encode_origin_accepts(origin: str) -> None:
    assert encode_origin(origin) == origin.encode("utf-8")


@pytest.mark.parametrize(
    "origin",
    ["", "a b", "a\n", "a\tb", "a+b", "a\x00", "a\u200bb", "a\u00a0b", "a\ud800"],
)
def test_encode_origin_refuses(origin: str) -> None:
    with pytest.raises(ValueError):
        encode_origin(origin)
