"""Canonical encodings shared by every format: canonical JSON and the petition origin string."""

import functools
import json
import unicodedata


def canonical_json(value: object) -> bytes:
    """Encode ``value`` as canonical JSON: sorted keys, no spaces, UTF-8 without escaping.

    NaN and infinities are refused (ValueError) because they are not JSON and would not
    re-parse identically elsewhere; so are strings with lone surrogates (UnicodeEncodeError).
    """
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


@functools.lru_cache(maxsize=256)
def encode_origin(origin: str) -> bytes:
    """Return the UTF-8 bytes of a petition origin, refusing values that could blur a format.

    An origin ends up in binding contexts (AAD, HPKE info, commitments) and as the checkpoint
    key name, so it must be non-empty and free of whitespace, control characters and ``+``.
    Results are cached: every signature encodes its petition's origin twice.
    """
    if not origin:
        raise ValueError("origin is empty")
    for ch in origin:
        if ch.isspace() or ch == "+" or unicodedata.category(ch).startswith("C"):
            raise ValueError("origin contains whitespace, a control character or '+'")
    return origin.encode("utf-8")
