"""crypto/symmetric.py: sealed boxes and derived keys, against the RFCs' vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samleng.crypto.errors import SealedBoxError
from samleng.crypto.symmetric import NONCE_BYTES, TAG_BYTES, derive_key, seal, unseal

# RFC 8439 §2.8.2: ChaCha20-Poly1305 with its key, nonce, AAD and plaintext.
RFC8439_KEY = bytes(range(0x80, 0xA0))
RFC8439_NONCE = bytes.fromhex("070000004041424344454647")
RFC8439_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
RFC8439_PLAINTEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
    b"future, sunscreen would be it."
)
RFC8439_SEALED = bytes.fromhex(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116"
    "1ae10b594f09e26a7e902ecbd0600691"
)


def test_a_box_is_rfc_8439_chacha20_poly1305_after_its_nonce() -> None:
    box = RFC8439_NONCE + RFC8439_SEALED
    assert unseal(RFC8439_KEY, box, RFC8439_AAD) == RFC8439_PLAINTEXT


def test_a_derived_key_is_rfc_5869_hkdf_sha256_without_salt() -> None:
    # RFC 5869 A.3: no salt, no info, 42 bytes.
    okm = derive_key(bytes([0x0B] * 22), b"", length=42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_the_label_and_the_purpose_are_the_info_in_that_order() -> None:
    secret = bytes(32)
    assert derive_key(secret, b"samleng-x/v1\n", b"form") == derive_key(
        secret, b"samleng-x/v1\nform"
    )
    assert derive_key(secret, b"a", b"b") != derive_key(secret, b"b", b"a")


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300), st.binary(max_size=64))
def test_a_box_opens_with_its_key_and_aad_only(key: bytes, plaintext: bytes, aad: bytes) -> None:
    box = seal(key, plaintext, aad)
    assert len(box) == NONCE_BYTES + len(plaintext) + TAG_BYTES
    assert unseal(key, box, aad) == plaintext
    with pytest.raises(SealedBoxError):
        unseal(key, box, aad + b"\n")
    with pytest.raises(SealedBoxError):
        unseal(bytes(b ^ 1 for b in key), box, aad)
    assert seal(key, plaintext, aad) != box  # a fresh nonce each time


@given(st.binary(min_size=1, max_size=100), st.data())
def test_a_changed_or_cut_box_is_refused(plaintext: bytes, data: st.DataObject) -> None:
    key = bytes(range(32))
    box = seal(key, plaintext, b"aad")
    at = data.draw(st.integers(0, len(box) - 1))
    changed = box[:at] + bytes([box[at] ^ 0x80]) + box[at + 1 :]
    with pytest.raises(SealedBoxError):
        unseal(key, changed, b"aad")
    with pytest.raises(SealedBoxError, match="cut short"):
        unseal(key, box[: data.draw(st.integers(0, NONCE_BYTES + TAG_BYTES - 1))], b"aad")
