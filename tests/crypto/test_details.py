"""Tests for crypto.details: padding, HPKE sealing and opening of optional signer details."""

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pyhpke import AEADId, CipherSuite, KDFId, KEMId

from samleng.crypto.details import (
    DETAILS_BLOCK,
    DETAILS_FIELDS,
    DETAILS_INFO_PREFIX,
    DETAILS_SUITE_IDS,
    DETAILS_SUITE_NAME,
    details_digest,
    details_info,
    generate_details_keypair,
    open_details,
    pad_details,
    seal_details,
    unpad_details,
)
from samleng.crypto.errors import DetailsDecryptionError, DetailsTooLarge
from samleng.crypto.receipts import receipt_commitment

ORIGIN = "petitions.example.org/p/end-impunity"
COMMITMENT = receipt_commitment(ORIGIN, bytes(range(16)))
FIELDS = {
    "name": "សុខ ចាន់",
    "locality": "Phnom Penh",
    "comment": "Justice now.",
    "contact": "sok@example.org",
}
PRIVATE_KEY = bytes(range(64, 96))
PUBLIC_KEY = bytes.fromhex("79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a")
# Made once by seal_details(PUBLIC_KEY, ORIGIN, COMMITMENT, FIELDS) and pasted here.
PINNED_CIPHERTEXT = bytes.fromhex(
    "c5b4103e2e84a503d0fb744d564a9e3eb025a25dc65b5824d53b9033f487b64f3ab954d8ff2b4747ac70edc3"
    "3816f4ca3cd593692d2258006d4bd931fdb154a80802ed0480de6b91c8269082067781513a32b5b1b00d179d"
    "063d6042393da3ed4af9c32fb5af011f583846f662c8632f40d1841044a5c5b4f3c79d604a6ffc2075fca48d"
    "c80f7206d9c659351cf9f68525db0afc6e2b005d9f57548bace9c9394d01a37c5c5763fbb66303a4fa7708cd"
    "42f01587545aac52dd5a446ec84f73ae9b85be544ab67799b6867ea3a5d7097bab7e97abbbb40bc81635c4e8"
    "d911a43bb72255fd73629a2659ff1734032f71a2125febe79ff637331ad455edb0066832ffdcd791bddebefb"
    "ddd757ea07ae77ed1d8d02bd82ccc23240b1176e715458549d75bc95a400853783b77809deebe5d32c5cb32c"
    "c6b3739b39e0405bc8904fda79e4bfb21a6c56fbfc2030a98fab4231b734267cbbdee5d785ba3f749d66c6ba"
    "c79daa4e8a54d5b17caeb3e232251f1b80446fb2f88f8b151554950e46ce2ce8585ddbb77481c463f27c268d"
    "09c4cbc796d3c39e8170db6aa2dcde7578fb21e359c4c99c668cc424b4a0e9ae7e2eda3aeea6415c87a05a7f"
    "4ea5a8411fa84d6285c6e1055a1b88b808828495bcb5fa3f700f6aa05dc1bdd2589ba8aa9519950334f9ed71"
    "6054941ca543312d7576cecec918dceccc082352e6ff9c6fe88e071b9073e65409a43ff563cb0397870b7712"
    "e45a536d6c4bc81cc62692f2c3d8cea959d43a702838629a7fb5f66b0c1bf471c0fac3c8151f38cef0842b19"
    "cdc1487ee0f0b31c9e38dbc2d84b566fbe1d78b4e6fc633d70ffcb2d2e1f6a064d0ce8dd19d44e74703a28ed"
    "0d75568e67e47568ab560b263710b2686331cc4cb5f48eb86371050bb0926221771975fe5966396fe01f5003"
    "907def9155491aed5a3ebaa8c292db8010e260b60e6320eda351fc67feaae694112ee77e3935c1aea9d1bb08"
    "065b475711aedba84a4556f6de6ff935ec3c51a1de64129fee804468f78bd56ed8ce77cd015b56c4ed75180a"
    "afffa0a167d80c7cb48887eb1eda636ec9798d539da41586e43cc5d974b09abfe71ebbad264e47a52cd9cf36"
    "931672c2421813a05aa3b39ec27d38eb0d4bd5a874bdf210cfee28703ac71335254bbc8ef6f6b93d3ff47b18"
    "ca90b3ba3bb9479dceb3aea71a14654a39bc6a771ed0664396eed6f5b02aa71821e2c837d22558f70801c90c"
    "311318a832f760226e1dbc1c11db0f95d925af74140ed196a65a7dffcf8655f03f2052ec118a9f11810d3f50"
    "9b950a1c15013e942652ae405efcbc3958d46b1d28798a1cc931f80f996bdd90b9d1d73ceefa203148f2f4f5"
    "c7635a6acd0c7df89eb68c3f28235c20312e24596a09f919b8cd0f7df6452040fdd76f51bad877b324287076"
    "b8a51de8fe4221442acf3dc3c34145141f07f00e79d770faddf6855a569784b8329ebaebd9979b7bbbf46b9d"
    "7402b23be51c425036274c1c3666ff9b"
)
CIPHERTEXT_BYTES = 32 + 1024 + 16


def _pyhpke_suite() -> CipherSuite:
    """The independent, pure-Python HPKE implementation with the same suite."""
    return CipherSuite.new(
        KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305
    )


def _pyhpke_seal(public_key: bytes, info: bytes, plaintext: bytes) -> bytes:
    """Single-shot seal with pyhpke (RFC 9180 §6.1: a context's first seal, empty aad)."""
    suite = _pyhpke_suite()
    pkr = suite.kem.deserialize_public_key(public_key)
    enc, sender = suite.create_sender_context(pkr, info=info)
    return enc + sender.seal(plaintext, aad=b"")


def _pyhpke_open(private_key: bytes, info: bytes, ciphertext: bytes) -> bytes:
    """Single-shot open with pyhpke; the 32-byte X25519 encapsulated key comes first."""
    suite = _pyhpke_suite()
    skr = suite.kem.deserialize_private_key(private_key)
    recipient = suite.create_recipient_context(ciphertext[:32], skr, info=info)
    return recipient.open(ciphertext[32:], aad=b"")


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


# --- constants and padding ---------------------------------------------------------------


def test_suite_identifiers_match_rfc_9180() -> None:
    assert DETAILS_SUITE_IDS == {
        "kem": KEMId.DHKEM_X25519_HKDF_SHA256.value,
        "kdf": KDFId.HKDF_SHA256.value,
        "aead": AEADId.CHACHA20_POLY1305.value,
    }
    assert DETAILS_SUITE_IDS == {"kem": 0x0020, "kdf": 0x0001, "aead": 0x0003}
    assert DETAILS_SUITE_NAME == "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305"
    assert DETAILS_FIELDS == ("name", "locality", "comment", "contact")


def test_pad_known_answer() -> None:
    body = b'{"locality":"Kampot","name":"\xe1\x9e\x9f\xe1\x9e\xbb\xe1\x9e\x81"}'
    block = pad_details({"name": "សុខ", "locality": "Kampot", "comment": ""})
    assert len(block) == DETAILS_BLOCK == 1024
    assert block[:2] == len(body).to_bytes(2, "big") == b"\x00\x28"
    assert block[2 : 2 + len(body)] == body
    assert block[2 + len(body) :] == bytes(1024 - 2 - len(body))


def test_pad_empty_details() -> None:
    expected = b"\x00\x02{}" + bytes(1020)
    assert pad_details({}) == expected
    # Empty values are left out, so "given empty" looks exactly like "not given".
    assert pad_details(dict.fromkeys(DETAILS_FIELDS, "")) == expected
    assert unpad_details(expected) == {}


def test_pad_size_boundary() -> None:
    overhead = len(b'{"comment":""}')
    fits = {"comment": "x" * (1022 - overhead)}
    assert unpad_details(pad_details(fits)) == fits
    with pytest.raises(DetailsTooLarge):
        pad_details({"comment": "x" * (1023 - overhead)})
    # Khmer characters take three bytes each in UTF-8.
    with pytest.raises(DetailsTooLarge):
        pad_details({"comment": "ក" * 340})


@pytest.mark.parametrize(
    "fields",
    [{"email": "a@example.org"}, {"Name": "Sok"}, {"name": "Sok", "": "x"}, {"name": 3}],
)
def test_pad_refuses_unknown_or_malformed_fields(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        pad_details(fields)  # type: ignore[arg-type]


def _block(body: bytes, length: int | None = None, tail: bytes = b"") -> bytes:
    """A hand-made plaintext block with an optional wrong length prefix or non-zero padding."""
    prefix = (len(body) if length is None else length).to_bytes(2, "big")
    block = prefix + body + tail
    return block + bytes(1024 - len(block))


@pytest.mark.parametrize(
    "block",
    [
        b"",
        _block(b"{}")[:-1],
        _block(b"{}") + b"\x00",
        _block(b"{}", length=1023),
        _block(b"{}", length=0xFFFF),
        _block(b"{}", length=0),
        _block(b"{}", length=3),  # the length takes a zero byte into the JSON
        _block(b"{}", tail=b"\x01"),
        _block(b"{}")[:-1] + b"\x01",
        _block(b'{"name":"\xff"}'),  # not UTF-8
        _block(b'{ "name":"Sok"}'),  # not canonical: space
        _block(b'{"name":"Sok","comment":"x"}'),  # not canonical: key order
        _block(b'{"name":"\\u1780"}'),  # not canonical: escaped Khmer
        _block(b'{"name":"Sok","name":"Chan"}'),  # duplicate key
        _block(b'{"name":""}'),  # empty values are never padded
        _block(b'{"email":"a@example.org"}'),  # unknown key
        _block(b'{"name":1}'),
        _block(b'{"name":NaN}'),
        _block(b'{"name":["Sok"]}'),
        _block(b'["name"]'),
        _block(b'"name"'),
        _block(b"null"),
        _block(b'{"name":"\\ud800"}'),  # lone surrogate
    ],
)
def test_unpad_is_strict(block: bytes) -> None:
    with pytest.raises(DetailsDecryptionError):
        unpad_details(block)


_field_values = st.text(min_size=1, max_size=120)
_fitting_details = st.dictionaries(st.sampled_from(DETAILS_FIELDS), _field_values)


@given(_fitting_details)
def test_pad_unpad_round_trip(fields: dict[str, str]) -> None:
    try:
        block = pad_details(fields)
    except DetailsTooLarge:
        return
    except UnicodeEncodeError:  # lone surrogates cannot come from a form, nor be encoded
        return
    assert len(block) == 1024
    assert unpad_details(block) == fields


# --- sealing -----------------------------------------------------------------------------


def test_info_known_answer() -> None:
    info = details_info(ORIGIN, COMMITMENT)
    assert info == b"samleng-details/v1\n" + ORIGIN.encode() + b"\n" + COMMITMENT
    assert info.startswith(DETAILS_INFO_PREFIX)
    with pytest.raises(ValueError):
        details_info(ORIGIN, COMMITMENT[:31])


def test_keypair() -> None:
    private, public = generate_details_keypair()
    assert len(private) == len(public) == 32
    assert X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw() == public
    assert generate_details_keypair()[0] != private
    assert (
        X25519PrivateKey.from_private_bytes(PRIVATE_KEY).public_key().public_bytes_raw()
        == PUBLIC_KEY
    )


def test_pinned_ciphertext_opens() -> None:
    assert len(PINNED_CIPHERTEXT) == CIPHERTEXT_BYTES
    assert open_details(PRIVATE_KEY, ORIGIN, COMMITMENT, PINNED_CIPHERTEXT) == FIELDS
    assert details_digest(PINNED_CIPHERTEXT) == hashlib.sha256(PINNED_CIPHERTEXT).digest()
    assert details_digest(PINNED_CIPHERTEXT).hex() == (
        "1f325ad1ee6de2d1e011f71eb6ecc863e186fc7e2d69e32dbb7fa028ad1a43f9"
    )


@pytest.mark.parametrize("fields", [{}, {"name": "x"}, FIELDS, {"comment": "x" * 1008}])
def test_seal_length_is_constant(fields: dict[str, str]) -> None:
    ct = seal_details(PUBLIC_KEY, ORIGIN, COMMITMENT, fields)
    assert len(ct) == CIPHERTEXT_BYTES == 1072
    assert open_details(PRIVATE_KEY, ORIGIN, COMMITMENT, ct) == fields


def test_seal_is_randomised() -> None:
    first = seal_details(PUBLIC_KEY, ORIGIN, COMMITMENT, FIELDS)
    assert seal_details(PUBLIC_KEY, ORIGIN, COMMITMENT, FIELDS) != first


def test_ours_opens_with_pyhpke() -> None:
    info = b"samleng-details/v1\n" + ORIGIN.encode() + b"\n" + COMMITMENT
    ct = seal_details(PUBLIC_KEY, ORIGIN, COMMITMENT, FIELDS)
    assert _pyhpke_open(PRIVATE_KEY, info, ct) == pad_details(FIELDS)
    # The pinned ciphertext too, so the KAT does not rest on our own implementation.
    assert unpad_details(_pyhpke_open(PRIVATE_KEY, info, PINNED_CIPHERTEXT)) == FIELDS


def test_pyhpke_opens_with_ours() -> None:
    info = b"samleng-details/v1\n" + ORIGIN.encode() + b"\n" + COMMITMENT
    ct = _pyhpke_seal(PUBLIC_KEY, info, pad_details(FIELDS))
    assert len(ct) == CIPHERTEXT_BYTES
    assert open_details(PRIVATE_KEY, ORIGIN, COMMITMENT, ct) == FIELDS
    with pytest.raises(DetailsDecryptionError):
        open_details(PRIVATE_KEY, ORIGIN, bytes(32), ct)


@pytest.mark.parametrize(
    ("private_key", "origin", "commitment", "ciphertext"),
    [
        (bytes(range(1, 33)), ORIGIN, COMMITMENT, PINNED_CIPHERTEXT),
        (PRIVATE_KEY, "petitions.example.org/p/other", COMMITMENT, PINNED_CIPHERTEXT),
        (PRIVATE_KEY, ORIGIN, bytes(32), PINNED_CIPHERTEXT),
        (PRIVATE_KEY, ORIGIN, COMMITMENT, PINNED_CIPHERTEXT[:-1]),
        (PRIVATE_KEY, ORIGIN, COMMITMENT, PINNED_CIPHERTEXT + b"\x00"),
        (PRIVATE_KEY, ORIGIN, COMMITMENT, b""),
        (PRIVATE_KEY, ORIGIN, COMMITMENT, _flip(PINNED_CIPHERTEXT, 0)),
        (PRIVATE_KEY, ORIGIN, COMMITMENT, _flip(PINNED_CIPHERTEXT, 500)),
        (PRIVATE_KEY, ORIGIN, COMMITMENT, _flip(PINNED_CIPHERTEXT, 1071)),
        (PRIVATE_KEY, ORIGIN, COMMITMENT, bytes(32) + PINNED_CIPHERTEXT[32:]),  # low-order enc
    ],
)
def test_open_fails_closed(
    private_key: bytes, origin: str, commitment: bytes, ciphertext: bytes
) -> None:
    with pytest.raises(DetailsDecryptionError):
        open_details(private_key, origin, commitment, ciphertext)


def test_open_refuses_a_validly_sealed_but_malformed_block() -> None:
    # Someone holding only the public key can seal anything; unpadding still checks it.
    ct = _pyhpke_seal(PUBLIC_KEY, details_info(ORIGIN, COMMITMENT), _block(b'{"email":"x"}'))
    with pytest.raises(DetailsDecryptionError):
        open_details(PRIVATE_KEY, ORIGIN, COMMITMENT, ct)


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33)])
def test_key_lengths_are_checked(key: bytes) -> None:
    with pytest.raises(ValueError):
        seal_details(key, ORIGIN, COMMITMENT, {})
    with pytest.raises(ValueError):
        open_details(key, ORIGIN, COMMITMENT, PINNED_CIPHERTEXT)


@settings(max_examples=50)
@given(
    fields=_fitting_details.filter(lambda f: len(str(f).encode("utf-8", "replace")) < 900),
    origin=st.from_regex(r"[a-z0-9.-]{1,30}/p/[a-z0-9-]{1,30}", fullmatch=True),
    commitment=st.binary(min_size=32, max_size=32),
    other=st.binary(min_size=32, max_size=32),
    index=st.integers(min_value=0, max_value=CIPHERTEXT_BYTES - 1),
)
def test_seal_open_round_trip_and_binding(
    fields: dict[str, str], origin: str, commitment: bytes, other: bytes, index: int
) -> None:
    try:
        ct = seal_details(PUBLIC_KEY, origin, commitment, fields)
    except (DetailsTooLarge, UnicodeEncodeError):
        return
    assert len(ct) == CIPHERTEXT_BYTES
    assert open_details(PRIVATE_KEY, origin, commitment, ct) == fields
    if other != commitment:
        with pytest.raises(DetailsDecryptionError):
            open_details(PRIVATE_KEY, origin, other, ct)
    with pytest.raises(DetailsDecryptionError):
        open_details(PRIVATE_KEY, origin + "x", commitment, ct)
    with pytest.raises(DetailsDecryptionError):
        open_details(PRIVATE_KEY, origin, commitment, _flip(ct, index))
