"""The worked examples of docs/formats.md, checked against the code.

Every fenced code block with the info string ``example <kind>`` in docs/formats.md is parsed
(the convention is its §1.2) and checked by the function registered below for its kind: outputs
are recomputed from the inputs with the project's code and, where that is cheap, again from the
text of the spec; signatures and proofs are verified. Three meta-tests keep the examples honest:
every kind has an example and a check, every field of an example is read by its check, and
changing any one character of a field makes the check fail.
"""

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import io
import json
import re
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from samleng.crypto import audit
from samleng.crypto.bundle import (
    petition_witness_policy,
    sha256sums,
    verify_bundle,
    vkey_file,
)
from samleng.crypto.canonical import canonical_json, encode_origin
from samleng.crypto.checkpoint import Checkpoint, LogSigner, sign_checkpoint, verify_checkpoint
from samleng.crypto.cosignature import (
    CosignatureSigner,
    add_cosignatures,
    cosignature_message,
    parse_witness_vkey,
    verify_cosignatures,
)
from samleng.crypto.custody import (
    PHOTO_KEY_LABEL,
    Consent,
    Custody,
    Share,
    combine_data_key,
    combine_photo_shares,
    combine_shares,
    custody_from_petition,
    open_share,
    payload_key,
    photo_record_size,
    share_info,
)
from samleng.crypto.details import (
    details_digest,
    details_info,
    open_details,
    pad_details,
    seal_details,
    unpad_details,
)
from samleng.crypto.detailsfile import (
    DetailsFileHeader,
    encode_details_file,
    encode_details_record,
    open_details_file,
    read_details_entries,
    read_details_header,
)
from samleng.crypto.endorsement import (
    Endorsement,
    Withdrawal,
    check_endorsements,
    endorsement_record,
    endorsements_file,
    record_hash,
    withdrawal_record,
)
from samleng.crypto.endorsement import parse_record as parse_endorsement_record
from samleng.crypto.errors import (
    EndorsementError,
    InvalidIdentifier,
    LeafFormatError,
    ReceiptFormatError,
    SeedError,
    VerificationError,
)
from samleng.crypto.keyfile import open_private_key, public_key_file, seal_private_key
from samleng.crypto.keywrap import unwrap_key
from samleng.crypto.leaf import (
    LeafKind,
    decode_leaf,
    encode_leaf,
    header_leaf,
    is_signature,
    withdrawal_commitment,
    withdrawal_leaf,
)
from samleng.crypto.merkle import (
    MemoryTree,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from samleng.crypto.note import NoteSigner, is_valid_key_name, parse_vkey
from samleng.crypto.pending import (
    PendingRecord,
    encode_pending,
    open_pending_record,
    pending_info,
    seal_pending_record,
)
from samleng.crypto.policy import format_policy, parse_policy, require_quorum
from samleng.crypto.receipts import format_receipt, parse_receipt, receipt_commitment
from samleng.crypto.sample import check_seed, checkpoint_hash, sample_indices, sample_key
from samleng.crypto.sharesfile import combine_files, open_shares, parse_shares_file
from samleng.crypto.tiles import (
    encode_tile_index,
    entry_bundle,
    tiles_for_size,
    write_log_tiles,
)
from samleng.crypto.tlogproof import encode_receipt_extra, format_proof, verify_receipt
from samleng.crypto.tokens import Argon2Params, dedup_token
from samleng.service.platform.keys import derive_key
from samleng.service.platform.models import Organisation
from samleng.service.signing.identifiers import normalize_identifier
from samleng.service.tlog.store import PETITION_FORMAT, organisers_member, petition_document
from samleng.service.tlog.witnesses import GROUP
from samleng.service.tlog.witnessing import (
    Outcome,
    add_checkpoint_body,
    check_witness_url,
    interpret_answer,
)

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "formats.md"

LEAF_LABEL = b"samleng-leaf/v1\n"
ALG_ED25519 = b"\x01"
ALG_COSIGNATURE = b"\x04"
DETAILS_BLOCK = 1024
SEALED_DETAILS_BYTES = 32 + DETAILS_BLOCK + 16


# --- Reading the examples (docs/formats.md §1.2) ------------------------------------------------

_OPEN = re.compile(r"```example ([a-z0-9-]+)")
_NAME = r"[A-Za-z0-9][A-Za-z0-9._/-]*"
_FIELD = re.compile(rf"({_NAME}): (.+)")
_REFERENCE = re.compile(rf"@([a-z0-9-]+)\.({_NAME})")
_MAX_REFERENCE_DEPTH = 8


class ExampleError(Exception):
    """docs/formats.md holds an example that does not follow the convention of its §1.2."""


def _parse_fields(kind: str, body: list[str]) -> dict[str, str]:
    """Return the fields of one example's body, values as the text they stand for."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(body):
        match = _FIELD.fullmatch(body[i])
        if not match:
            raise ExampleError(f"example {kind}: {body[i]!r} does not start a field")
        name, value = match.groups()
        if name in fields:
            raise ExampleError(f"example {kind}: field {name} occurs twice")
        i += 1
        if value in ("|", ">"):
            lines: list[str] = []
            while i < len(body) and (body[i].startswith("  ") or not body[i].strip()):
                lines.append(body[i][2:] if body[i].strip() else "")
                i += 1
            while lines and not lines[-1]:
                lines.pop()
            if not lines:
                raise ExampleError(f"example {kind}: field {name} has no lines")
            if value == ">":
                if "" in lines:
                    raise ExampleError(f"example {kind}: field {name} (>) has an empty line")
                value = "".join(lines)
            else:
                value = "".join(line + "\n" for line in lines)
        fields[name] = value
    return fields


def parse_examples(text: str) -> dict[str, dict[str, str]]:
    """Return every example of a Markdown text: kind -> field name -> value."""
    examples: dict[str, dict[str, str]] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith("```example"):
            continue
        match = _OPEN.fullmatch(line)
        if not match:
            raise ExampleError(f"malformed example header {line!r}")
        kind = match.group(1)
        if kind in examples:
            raise ExampleError(f"example {kind} occurs twice")
        start = i
        while i < len(lines) and lines[i] != "```":
            i += 1
        if i == len(lines):
            raise ExampleError(f"example {kind} is not closed")
        examples[kind] = _parse_fields(kind, lines[start:i])
        i += 1
    return examples


class Book:
    """All examples, resolving ``@kind.name`` references; hands out one Example per kind."""

    def __init__(self, raw: dict[str, dict[str, str]]) -> None:
        self.raw = raw
        self._examples: dict[str, Example] = {}

    def resolve(self, kind: str, name: str, depth: int = 0) -> str:
        """Return the value of field ``name`` of example ``kind``, following references."""
        if depth > _MAX_REFERENCE_DEPTH:
            raise ExampleError(f"references from {kind}.{name} go round in circles")
        try:
            value = self.raw[kind][name]
        except KeyError:
            raise ExampleError(f"there is no field {kind}.{name}") from None
        reference = _REFERENCE.fullmatch(value)
        if reference:
            return self.resolve(reference.group(1), reference.group(2), depth + 1)
        return value

    def __getitem__(self, kind: str) -> "Example":
        if kind not in self.raw:
            raise ExampleError(f"there is no example {kind}")
        return self._examples.setdefault(kind, Example(self, kind))


class Example:
    """One example's fields, typed on reading; records which fields were read."""

    def __init__(self, book: Book, kind: str) -> None:
        self.book = book
        self.kind = kind
        self.used: set[str] = set()

    def names(self) -> list[str]:
        """Return the names of this example's fields, in order."""
        return list(self.book.raw[self.kind])

    def text(self, name: str) -> str:
        """Return a field's value as text."""
        self.used.add(name)
        return self.book.resolve(self.kind, name)

    def bytes(self, name: str) -> bytes:
        """Return a text field's UTF-8 bytes."""
        return self.text(name).encode("utf-8")

    def hex(self, name: str) -> bytes:
        """Return a hex field's bytes."""
        return bytes.fromhex(self.text(name))

    def int(self, name: str) -> int:
        """Return a decimal field's value."""
        value = self.text(name)
        assert re.fullmatch(r"0|[1-9][0-9]*", value), f"{self.kind}.{name} is not decimal"
        return int(value)

    def lines(self, name: str) -> list[str]:
        """Return the lines of a ``|`` field."""
        value = self.text(name)
        assert value.endswith("\n"), f"{self.kind}.{name} is not a list of lines"
        return value[:-1].split("\n")

    def hex_list(self, name: str) -> list[bytes]:
        """Return a ``|`` field holding one hex byte string per line."""
        return [bytes.fromhex(line) for line in self.lines(name)]


def _raises(
    error: type[Exception], function: Callable[..., object], *args: object, **kwargs: object
) -> bool:
    """Return whether ``function(*args, **kwargs)`` raises ``error``."""
    try:
        function(*args, **kwargs)
    except error:
        return True
    return False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right)


def _argon2(text: str) -> Argon2Params:
    """Read ``t=<n> m=<KiB> p=<n>``."""
    match = re.fullmatch(r"t=([0-9]+) m=([0-9]+) p=([0-9]+)", text)
    assert match, f"not Argon2 parameters: {text!r}"
    t, m, p = (int(v) for v in match.groups())
    return Argon2Params(time_cost=t, memory_kib=m, parallelism=p)


def _run_audit(argv: list[str]) -> tuple[int, str]:
    """Run samleng-audit in-process; return its status and standard output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = audit.main(argv)
    return status, out.getvalue()


# --- The checks, one per kind -------------------------------------------------------------------

Check = Callable[[Example], None]
CHECKS: dict[str, Check] = {}


def check(kind: str) -> Callable[[Check], Check]:
    """Register the check of the examples of ``kind``."""

    def register(function: Check) -> Check:
        CHECKS[kind] = function
        return function

    return register


@check("origin")
def check_origin(ex: Example) -> None:
    for origin in ex.lines("accepts"):
        assert encode_origin(origin) == origin.encode("utf-8")
        assert is_valid_key_name(origin)
    for origin in ex.lines("rejects"):
        assert _raises(ValueError, encode_origin, origin), origin


@check("canonical-json")
def check_canonical_json(ex: Example) -> None:
    canonical = ex.bytes("canonical")
    assert canonical_json(json.loads(ex.text("value"))) == canonical
    assert canonical_json(json.loads(canonical)) == canonical


@check("receipt-code")
def check_receipt_code(ex: Example) -> None:
    r, code = ex.hex("r"), ex.text("code")
    plain = base64.b32encode(r).decode("ascii").rstrip("=")
    assert len(plain) == 26
    assert code == "-".join(plain[i : i + 4] for i in range(0, 26, 4))
    assert format_receipt(r) == code
    for text in ex.lines("accepts"):
        assert parse_receipt(text) == r, text
    for text in ex.lines("rejects"):
        assert _raises(ReceiptFormatError, parse_receipt, text), text


@check("receipt-commitment")
def check_receipt_commitment(ex: Example) -> None:
    origin, r = ex.text("origin"), ex.hex("r")
    data = ex.hex("input")
    assert data == b"samleng-receipt/v1\n" + origin.encode() + b"\n" + r
    assert ex.hex("c") == _sha256(data) == receipt_commitment(origin, r)


def _petition_of(value: dict[str, Any]) -> SimpleNamespace:
    """The fields of a petition that ``petition_document`` reads, from a petition.json."""
    argon2 = value["argon2"]
    return SimpleNamespace(
        origin=value["origin"],
        slug=value["slug"],
        texts=value["texts"],
        goal=value["goal"],
        opens_on=dt.date.fromisoformat(value["opens_on"]),
        closes_on=dt.date.fromisoformat(value["closes_on"]),
        identifier_mode=value["identifier_mode"],
        region=value["region"],
        verification_mode=value["verification_mode"],
        photos=value.get("photos", "off"),
        details_public_key=base64.b64decode(value["details"]["public_key"]),
        custody=lambda: custody_from_petition(value["details"]),
        salt=base64.b64decode(value["salt"]),
        argon2_time_cost=argon2["time_cost"],
        argon2_memory_kib=argon2["memory_kib"],
        argon2_parallelism=argon2["parallelism"],
    )


@check("petition-json")
def check_petition_json(ex: Example) -> None:
    document = ex.bytes("document")
    assert ex.hex("sha256") == _sha256(document)
    assert canonical_json(json.loads(document)) == document
    value = json.loads(document)
    assert value["format"] == PETITION_FORMAT
    # The service's own function, fed the document's values, must write the same bytes: so the
    # example has exactly the members, names and constants the code writes.
    petition = _petition_of(value)
    assert petition_document(petition, value["log"]["vkey"]) == document  # type: ignore[arg-type]
    # The story of the examples: this petition's keys are those of the other examples.
    book = ex.book
    assert value["log"]["vkey"] == book.resolve("note-key", "vkey")
    assert base64.b64decode(value["details"]["public_key"]).hex() == book.resolve(
        "details-open", "public-key"
    )
    assert value["origin"] == book.resolve("leaf-signature", "origin")


@check("petition-witnesses")
def check_petition_witnesses(ex: Example) -> None:
    book = ex.book
    policy_file, member = ex.bytes("policy"), ex.bytes("member")
    vkey = book.resolve("note-key", "vkey")
    # The policy is what the service freezes (service/tlog/witnesses.py: frozen_policy): the
    # log, the witnesses of the policy example with their URLs, one group, its quorum.
    policy = parse_policy(policy_file)
    assert format_policy(policy) == policy_file
    example = parse_policy(book.resolve("policy", "file").encode())
    assert [log.verifier.vkey for log in policy.logs] == [vkey]
    assert all(log.url is None for log in policy.logs)
    assert [(w.name, w.verifier) for w in policy.witnesses] == [
        (w.name, w.verifier) for w in example.witnesses
    ]
    for witness in policy.witnesses:
        assert witness.url is not None
        check_witness_url(witness.url)
    names = tuple(w.name for w in policy.witnesses)
    assert [(g.name, g.threshold, g.members) for g in policy.groups] == [(GROUP, 2, names)]
    assert policy.quorum == GROUP
    assert policy.describe() == example.describe()
    # petition.json gains the member, last in sorted order, and nothing else changes.
    plain = book.resolve("petition-json", "document").encode()
    value = json.loads(plain)
    document = petition_document(_petition_of(value), vkey, policy_file)  # type: ignore[arg-type]
    assert document == plain[:-1] + b"," + member + b"}"
    assert json.loads(b"{" + member + b"}") == {"witness_policy": policy_file.decode()}
    assert ex.hex("sha256") == _sha256(document)
    assert petition_witness_policy(json.loads(document)) == policy_file


@check("petition-organisers")
def check_petition_organisers(ex: Example) -> None:
    book = ex.book
    member = ex.bytes("member")
    named = json.loads(b"{" + member + b"}")["organisers"]
    organisers = [
        Organisation(
            handle=f"o{i}",
            name_en=o["name"]["en"],
            name_km=o["name"]["km"],
            website=o.get("website"),
        )
        for i, o in enumerate(named)
    ]
    plain = book.resolve("petition-json", "document").encode()
    value = json.loads(plain)
    vkey = value["log"]["vkey"]
    document = petition_document(_petition_of(value), vkey, None, organisers)  # type: ignore[arg-type]
    # The member goes where sorting puts it, after opens_on; nothing else changes.
    at = plain.index(b',"origin":')
    assert document == plain[:at] + b"," + member + plain[at:]
    assert organisers_member(organisers) == named
    assert ex.hex("sha256") == _sha256(document)


@check("leaf-header")
def check_leaf_header(ex: Example) -> None:
    petition_json = ex.bytes("petition.json")
    c, d, leaf = ex.hex("c"), ex.hex("d"), ex.hex("leaf")
    assert c == _sha256(petition_json)
    assert d == bytes(32)
    assert leaf == LEAF_LABEL + b"\x00" + c + d == header_leaf(petition_json)
    assert decode_leaf(leaf).kind == LeafKind.HEADER


def _check_signature_leaf(ex: Example, kind: LeafKind) -> None:
    assert int(ex.text("kind"), 16) == kind
    origin, r, c, d, leaf = (
        ex.text("origin"),
        ex.hex("r"),
        ex.hex("c"),
        ex.hex("d"),
        ex.hex("leaf"),
    )
    assert c == receipt_commitment(origin, r)
    assert leaf == LEAF_LABEL + bytes([kind]) + c + d == encode_leaf(kind, c, d)
    decoded = decode_leaf(leaf)
    assert (decoded.kind, decoded.c, decoded.d) == (kind, c, d)


@check("leaf-signature")
def check_leaf_signature(ex: Example) -> None:
    _check_signature_leaf(ex, LeafKind.SIGNATURE)


@check("leaf-verified")
def check_leaf_verified(ex: Example) -> None:
    _check_signature_leaf(ex, LeafKind.VERIFIED_SIGNATURE)


@check("leaf-withdrawal")
def check_leaf_withdrawal(ex: Example) -> None:
    d, c, leaf = ex.hex("d"), ex.hex("c"), ex.hex("leaf")
    assert c == withdrawal_commitment(d) == _sha256(b"samleng-withdrawal/v1\n" + d)
    assert leaf == LEAF_LABEL + b"\x03" + c + d == withdrawal_leaf(d)
    assert decode_leaf(leaf).kind == LeafKind.WITHDRAWAL
    assert not is_signature(LeafKind.WITHDRAWAL)


@check("leaf-rejected")
def check_leaf_rejected(ex: Example) -> None:
    names = ex.names()
    assert {"kind-07", "kind-08"} <= set(names)
    for name in names:
        assert _raises(LeafFormatError, decode_leaf, ex.hex(name)), name


@check("endorsement-record")
def check_endorsement_record(ex: Example) -> None:
    origin, record = ex.text("origin"), ex.bytes("record")
    value = json.loads(record)
    parsed = parse_endorsement_record(value, origin)
    assert isinstance(parsed, Endorsement)
    # The service's own function, fed the record's values, writes the same bytes.
    assert (
        endorsement_record(
            origin,
            id=parsed.id,
            name_en=parsed.name_en,
            name_km=parsed.name_km,
            website=parsed.website,
            day=parsed.day,
        )
        == record
        == canonical_json(value)
    )
    assert ex.hex("c") == record_hash(record) == _sha256(record)
    leaf = ex.hex("leaf")
    assert leaf == encode_leaf(LeafKind.ENDORSEMENT, record_hash(record), bytes(32))
    assert decode_leaf(leaf).kind == LeafKind.ENDORSEMENT
    assert not is_signature(LeafKind.ENDORSEMENT)
    with pytest.raises(EndorsementError, match="another petition"):
        parse_endorsement_record(value, "petitions.example.org/p/other")


@check("endorsement-withdrawal")
def check_endorsement_withdrawal(ex: Example) -> None:
    origin = ex.book.resolve("endorsement-record", "origin")
    endorsement, withdrawal = ex.bytes("endorsement"), ex.bytes("withdrawal")
    assert ex.hex("endorsement-c") == record_hash(endorsement)
    parsed = parse_endorsement_record(json.loads(withdrawal), origin)
    assert isinstance(parsed, Withdrawal)
    assert parsed.withdraws == record_hash(endorsement)
    assert withdrawal_record(origin, withdraws=parsed.withdraws, day=parsed.day) == withdrawal
    assert ex.hex("withdrawal-c") == record_hash(withdrawal)
    assert "website" not in json.loads(endorsement)


@check("endorsements-file")
def check_endorsements_file(ex: Example) -> None:
    book = ex.book
    records = [book.resolve(*name.split(".")).encode() for name in ex.text("records").split()]
    data = endorsements_file(records)
    assert len(data) == ex.int("length")
    assert ex.hex("sha256") == _sha256(data)
    origin = book.resolve("endorsement-record", "origin")
    leaves = [(i + 1, record_hash(r), bytes(32)) for i, r in enumerate(records)]
    standing = check_endorsements(data, leaves, origin)
    assert [e.name_en for e in standing.current] == ["Mekong Rights Centre"]
    assert [e.name_en for e in standing.withdrawn] == ["Tonle Sap Fishers Association"]


@check("merkle")
def check_merkle(ex: Example) -> None:
    leaves = [ex.hex(f"leaf-{i}") for i in range(3)]
    h = [_sha256(b"\x00" + leaf) for leaf in leaves]
    for i, leaf in enumerate(leaves):
        assert ex.hex(f"leaf-hash-{i}") == h[i] == leaf_hash(leaf)
    roots = {0: _sha256(b""), 1: h[0], 2: _node(h[0], h[1]), 3: _node(_node(h[0], h[1]), h[2])}
    tree = MemoryTree(h)
    for size, root in roots.items():
        assert ex.hex(f"root-{size}") == root == tree.root(size) == root_hash(h[:size])
    # The proofs of RFC 9162 §2.1.3 and §2.1.4 for these sizes, worked out by hand.
    inclusion = {1: [h[0], h[2]], 2: [roots[2]]}
    for index, expected in inclusion.items():
        proof = ex.hex_list(f"inclusion-{index}-3")
        assert proof == expected == tree.inclusion_proof(index, 3)
        verify_inclusion(h[index], index, 3, proof, roots[3])
    consistency = {1: [h[1], h[2]], 2: [h[2]]}
    for old, expected in consistency.items():
        proof = ex.hex_list(f"consistency-{old}-3")
        assert proof == expected == tree.consistency_proof(old, 3)
        verify_consistency(old, 3, roots[old], roots[3], proof)


@check("note-key")
def check_note_key(ex: Example) -> None:
    name, seed, public_key = ex.text("name"), ex.hex("seed"), ex.hex("public-key")
    signer = NoteSigner(name=name, seed=seed)
    assert signer.verifier.public_key == public_key
    key_id = _sha256(name.encode() + b"\n" + ALG_ED25519 + public_key)[:4]
    assert ex.hex("key-id") == key_id == signer.key_id
    vkey = f"{name}+{key_id.hex()}+{_b64(ALG_ED25519 + public_key)}"
    assert ex.text("vkey") == vkey == signer.vkey
    assert parse_vkey(vkey) == signer.verifier
    skey = f"PRIVATE+KEY+{name}+{key_id.hex()}+{_b64(ALG_ED25519 + seed)}"
    assert ex.text("skey") == skey == signer.skey
    assert NoteSigner.from_skey(skey).vkey == vkey


@check("checkpoint")
def check_checkpoint(ex: Example) -> None:
    origin, size, root = ex.text("origin"), ex.int("size"), ex.hex("root")
    body = ex.bytes("body")
    assert body == f"{origin}\n{size}\n{_b64(root)}\n".encode()
    checkpoint = Checkpoint(origin=origin, size=size, root=root)
    assert checkpoint.body() == body
    signer = LogSigner(origin=origin, seed=ex.hex("seed"))
    verifier = parse_vkey(ex.text("vkey"))
    signature = ex.hex("signature")
    Ed25519PublicKey.from_public_bytes(verifier.public_key).verify(signature, body)
    note = ex.bytes("note")
    line = "— ".encode() + origin.encode() + b" " + _b64(verifier.key_id + signature).encode()
    assert note == body + b"\n" + line + b"\n" == sign_checkpoint(checkpoint, signer)
    assert verify_checkpoint(note, ex.text("vkey")) == checkpoint


@check("receipt-extra")
def check_receipt_extra(ex: Example) -> None:
    kind, r, d = int(ex.text("kind"), 16), ex.hex("r"), ex.hex("d")
    extra = ex.hex("extra")
    assert len(extra) == 49
    assert extra == bytes([kind]) + r + d == encode_receipt_extra(LeafKind(kind), r, d)
    assert ex.text("line") == f"extra {_b64(extra)}"


@check("tlog-proof")
def check_tlog_proof(ex: Example) -> None:
    extra, index, path = ex.hex("extra"), ex.int("index"), ex.hex_list("path")
    checkpoint, vkey = ex.bytes("checkpoint"), ex.text("vkey")
    proof = ex.bytes("file")
    written = (
        f"c2sp.org/tlog-proof@v1\nextra {_b64(extra)}\nindex {index}\n"
        + "".join(f"{_b64(h)}\n" for h in path)
        + "\n"
    ).encode() + checkpoint
    assert proof == written
    assert proof == format_proof(extra=extra, index=index, path=path, checkpoint=checkpoint)
    signed = verify_checkpoint(checkpoint, vkey)
    result = verify_receipt(proof, vkey)
    assert (result.origin, result.index, result.size, result.kind) == (
        signed.origin,
        index,
        signed.size,
        extra[0],
    )
    moved = proof.replace(f"\nindex {index}\n".encode(), f"\nindex {index + 1}\n".encode())
    assert _raises(VerificationError, verify_receipt, moved, vkey)
    with tempfile.TemporaryDirectory() as work:
        file = Path(work) / "receipt-proof.txt"
        file.write_bytes(proof)
        assert _run_audit(["receipt", str(file), "--vkey", vkey]) == (0, ex.text("audit-output"))


@check("details-padding")
def check_details_padding(ex: Example) -> None:
    fields = json.loads(ex.text("fields"))
    given = {key: value for key, value in fields.items() if value}
    body = ex.bytes("json")
    assert body == canonical_json(given)
    assert ex.hex("length") == len(body).to_bytes(2, "big")
    start = ex.hex("block-start")
    assert start == ex.hex("length") + body
    block = pad_details(fields)
    assert block == start + bytes(DETAILS_BLOCK - len(start))
    assert ex.hex("block-sha256") == _sha256(block)
    assert unpad_details(block) == given
    empty = b"\x00\x02{}" + bytes(DETAILS_BLOCK - 4)
    assert pad_details({}) == empty
    assert ex.hex("empty-block-sha256") == _sha256(empty)


@check("details-info")
def check_details_info(ex: Example) -> None:
    origin, c = ex.text("origin"), ex.hex("c")
    info = ex.hex("info")
    assert info == b"samleng-details/v1\n" + origin.encode() + b"\n" + c == details_info(origin, c)


# RFC 9180 ids 0x0020, 0x0001, 0x0003, built here rather than taken from crypto.details.
_HPKE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)


def _check_sealed_details(ex: Example) -> tuple[bytes, str, bytes]:
    """Check a sealed record opens to its fields; return (private key, origin, c)."""
    private_key, origin, c = ex.hex("private-key"), ex.text("origin"), ex.hex("c")
    sealed, fields = ex.hex("ciphertext"), json.loads(ex.text("fields"))
    assert len(sealed) == SEALED_DETAILS_BYTES
    assert ex.hex("d") == _sha256(sealed) == details_digest(sealed)
    info = b"samleng-details/v1\n" + origin.encode() + b"\n" + c
    block = _HPKE.decrypt(sealed, X25519PrivateKey.from_private_bytes(private_key), info)
    assert unpad_details(block) == fields
    assert open_details(private_key, origin, c, sealed) == fields
    return private_key, origin, c


@check("details-open")
def check_details_open(ex: Example) -> None:
    private_key, origin, c = _check_sealed_details(ex)
    public_key = ex.hex("public-key")
    assert X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw() == (
        public_key
    )
    assert ex.hex("info") == details_info(origin, c)
    # Sealing is randomised: seal afresh with the example's key pair and open it again.
    fields = json.loads(ex.text("fields"))
    fresh = seal_details(public_key, origin, c, fields)
    assert len(fresh) == SEALED_DETAILS_BYTES
    assert open_details(private_key, origin, c, fresh) == fields


@check("details-empty")
def check_details_empty(ex: Example) -> None:
    _check_sealed_details(ex)


@check("details-file")
def check_details_file(ex: Example) -> None:
    book = ex.book
    records = [ex.hex("record-1"), ex.hex("record-2")]
    prefix = ex.hex("length-prefix")
    assert all(len(record).to_bytes(2, "big") == prefix for record in records)
    data = b"".join(prefix + record for record in records)
    assert data == b"".join(encode_details_record(record) for record in records)
    assert len(data) == ex.int("file-length")
    assert ex.hex("file-sha256") == _sha256(data)
    leaves = b"".join(
        bytes.fromhex(book.resolve(kind, "leaf"))
        for kind in ("leaf-header", "leaf-signature", "leaf-verified")
    )
    opened = open_details_file(
        io.BytesIO(leaves),
        io.BytesIO(data),
        origin=book.resolve("leaf-signature", "origin"),
        private_key=bytes.fromhex(book.resolve("details-open", "private-key")),
    )
    assert [(record.index, record.details, record.problem) for record in opened] == [
        (1, json.loads(book.resolve("details-open", "fields")), None),
        (2, json.loads(book.resolve("details-empty", "fields")), None),
    ]


# Coalition custody (§10.2, §13.2, §13.3). Shamir over GF(2^128) as the spec's text gives it,
# written here independently of pycryptodome: bit j of the integer is the coefficient of x^j.
_GF_MODULUS = (1 << 128) | 0b10000111


def _gf_mul(a: int, b: int) -> int:
    product = 0
    while b:
        if b & 1:
            product ^= a
        b >>= 1
        a <<= 1
        if a >> 128:
            a ^= _GF_MODULUS
    return product


def _gf_pow(a: int, e: int) -> int:
    result = 1
    while e:
        if e & 1:
            result = _gf_mul(result, a)
        a = _gf_mul(a, a)
        e >>= 1
    return result


def _shamir_combine(shares: dict[int, bytes], k: int) -> bytes:
    """Add i^k to each share, then interpolate at 0 (§10.2 step 3)."""
    points = {i: int.from_bytes(y, "big") ^ _gf_pow(i, k) for i, y in shares.items()}
    secret = 0
    for j, y in points.items():
        numerator = denominator = 1
        for m in points:
            if m != j:
                numerator = _gf_mul(numerator, m)
                denominator = _gf_mul(denominator, j ^ m)
        inverse = _gf_pow(denominator, (1 << 128) - 2)
        secret ^= _gf_mul(y, _gf_mul(numerator, inverse))
    return secret.to_bytes(16, "big")


def _custody_shares(ex: Example) -> dict[int, bytes]:
    """The ``shares`` field: lines ``i-<hex>``, in ssss's form."""
    shares = {}
    for line in ex.lines("shares"):
        index, value = line.split("-")
        shares[int(index)] = bytes.fromhex(value)
    return shares


@check("custody-record")
def check_custody_record(ex: Example) -> None:
    origin, c, k, n = ex.text("origin"), ex.hex("c"), ex.int("k"), ex.int("n")
    private = [ex.hex(f"private-key-{i}") for i in range(1, n + 1)]
    public = [ex.hex(f"public-key-{i}") for i in range(1, n + 1)]
    for secret, key in zip(private, public, strict=True):
        assert X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw() == key
    record, fields = ex.hex("record"), json.loads(ex.text("fields"))
    header = b"samleng-details/v2\n" + bytes([k, n])
    assert len(record) == 21 + 96 * n + 1040 and record[:21] == header
    assert ex.hex("d") == _sha256(record) == details_digest(record)
    assert (
        ex.hex("info-2")
        == (b"samleng-share/v2\n" + origin.encode() + b"\n" + c + bytes([k, n, 2]))
        == share_info(origin, c, k, n, 2)
    )
    shares = _custody_shares(ex)
    assert sorted(shares) == list(range(1, n + 1))
    for i in range(1, n + 1):
        entry = record[21 + 96 * (i - 1) : 21 + 96 * i]
        info = b"samleng-share/v2\n" + origin.encode() + b"\n" + c + bytes([k, n, i])
        opened = _HPKE.decrypt(
            entry[:64], X25519PrivateKey.from_private_bytes(private[i - 1]), info
        )
        assert opened == shares[i]
        label = b"samleng-share-commitment/v2\n"
        assert entry[64:] == _sha256(label + info[len(b"samleng-share/v2\n") :] + shares[i])
        assert open_share(private[i - 1], i, origin, c, record) == Share(index=i, value=shares[i])
    data_key = ex.hex("data-key")
    for pair in ((1, 2), (1, 3), (2, 3)):
        chosen = {i: shares[i] for i in pair}
        assert _shamir_combine(chosen, k) == data_key == combine_data_key(chosen, k)
    info = b"samleng-details-key/v2\n" + origin.encode() + b"\n" + c
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(data_key)
    assert ex.hex("payload-key") == key == payload_key(data_key, origin, c)
    block = ChaCha20Poly1305(key).decrypt(bytes(12), record[21 + 96 * n :], header)
    assert unpad_details(block) == fields
    given = [Share(index=i, value=shares[i]) for i in (3, 1)]
    assert combine_shares(given, origin, c, record) == fields
    # Sealing is randomised: seal afresh to the example's keys, open with two of them.
    fresh = Custody(public_keys=tuple(public), threshold=k).seal(origin, c, fields)
    again = [open_share(private[i - 1], i, origin, c, fresh) for i in (2, 3)]
    assert len(fresh) == len(record) and combine_shares(again, origin, c, fresh) == fields


def _custody_of(book: Book) -> Custody:
    """The custody of the ``custody-record`` example: its three keys and its k."""
    keys = tuple(
        bytes.fromhex(book.resolve("custody-record", f"public-key-{i}")) for i in (1, 2, 3)
    )
    return Custody(public_keys=keys, threshold=int(book.resolve("custody-record", "k")))


@check("photo-record")
def check_photo_record(ex: Example) -> None:
    origin, c, fields = ex.text("origin"), ex.hex("c"), json.loads(ex.text("fields"))
    consent, photo, data_key = ex.int("consent"), ex.hex("photo"), ex.hex("data-key")
    header, entries = ex.hex("header"), ex.hex("entries")
    assert header == b"samleng-photo/v1\n" + bytes([2, 3, 0])
    info = b"samleng-photo-key/v1\n" + origin.encode() + b"\n" + c
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(data_key)
    assert ex.hex("photo-key") == key == payload_key(data_key, origin, c, PHOTO_KEY_LABEL)
    block = pad_details(fields)
    plaintext = block + bytes([consent]) + len(photo).to_bytes(4, "big") + photo
    plaintext += bytes(262144 - len(plaintext))
    assert _sha256(plaintext) == ex.hex("plaintext-sha256")
    payload = ChaCha20Poly1305(key).encrypt(bytes(12), plaintext, header)
    assert payload[:32] == ex.hex("payload-start") and payload[-16:] == ex.hex("payload-tag")
    record = header + entries + payload
    assert len(record) == ex.int("record-length") == photo_record_size(3, 0)
    assert _sha256(record) == ex.hex("d") == details_digest(record)
    # The share entries open to the custody example's shares, with its private keys.
    private = [
        bytes.fromhex(ex.book.resolve("custody-record", f"private-key-{i}")) for i in (1, 2, 3)
    ]
    shares = [open_share(private[i - 1], i, origin, c, record) for i in (1, 3)]
    opened = combine_photo_shares(shares, origin, c, record)
    assert (opened.details, opened.consent, opened.photo) == (fields, consent, photo)
    # Sealing is randomised: seal afresh to the example's keys, open with two of them.
    custody = _custody_of(ex.book)
    fresh = custody.seal_photo(origin, c, fields, Consent(consent), photo)
    again = combine_photo_shares(
        [open_share(private[i - 1], i, origin, c, fresh) for i in (2, 3)], origin, c, fresh
    )
    assert (again.details, again.consent, again.photo) == (fields, consent, photo)


@check("custody-petition")
def check_custody_petition(ex: Example) -> None:
    custody = _custody_of(ex.book)
    member = ex.bytes("member")
    assert member == canonical_json(custody.petition_member())
    assert custody_from_petition(json.loads(member)) == custody


@check("details-file-v2")
def check_details_file_v2(ex: Example) -> None:
    book = ex.book
    origin = book.resolve("custody-record", "origin")
    c = bytes.fromhex(book.resolve("leaf-signature", "c"))
    custody = _custody_of(book)
    header, start, record = ex.hex("header"), ex.hex("entry-start"), ex.hex("record")
    assert (
        header
        == (
            b"samleng-details-file/v2\n"
            + len(origin).to_bytes(2, "big")
            + origin.encode()
            + bytes([custody.threshold, custody.keys])
            + b"".join(custody.public_keys)
            + (1).to_bytes(8, "big")
        )
        == DetailsFileHeader(origin=origin, custody=custody, count=1).encode()
    )
    assert start == (1).to_bytes(8, "big") + c + len(record).to_bytes(4, "big")
    data = header + start + record
    assert data == encode_details_file(origin, custody, [(1, c, record)])
    assert len(data) == ex.int("file-length")
    assert ex.hex("file-sha256") == _sha256(data)
    stream = io.BytesIO(data)
    read = read_details_header(stream)
    assert read == DetailsFileHeader(origin=origin, custody=custody, count=1)
    entries = list(read_details_entries(stream, read))
    assert [(e.index, e.commitment, e.record) for e in entries] == [(1, c, record)]


@check("shares-file")
def check_shares_file(ex: Example) -> None:
    book = ex.book
    data = ex.bytes("file")
    parsed = parse_shares_file(data)
    assert parsed.encode() == data
    shares = {
        int(line.split("-")[0]): bytes.fromhex(line.split("-")[1])
        for line in book.resolve("custody-record", "shares").splitlines()
    }
    c = bytes.fromhex(book.resolve("leaf-signature", "c"))
    assert (parsed.origin, parsed.threshold, parsed.keys, parsed.index) == (
        book.resolve("custody-record", "origin"),
        2,
        3,
        2,
    )
    assert parsed.public_key.hex() == book.resolve("custody-record", "public-key-2")
    assert [(s.leaf, s.commitment, s.value) for s in parsed.shares] == [(1, c, shares[2])]
    # It is what shares open writes for organisation 2 from the details file of §13.2 ...
    details = (
        bytes.fromhex(book.resolve("details-file-v2", "header"))
        + bytes.fromhex(book.resolve("details-file-v2", "entry-start"))
        + bytes.fromhex(book.resolve("custody-record", "record"))
    )
    stream = io.BytesIO(details)
    header = read_details_header(stream)
    assert header is not None
    entries = [(entry, None) for entry in read_details_entries(stream, header)]
    private = [bytes.fromhex(book.resolve("custody-record", f"private-key-{i}")) for i in (1, 2)]
    assert open_shares(header, entries, private_key=private[1])[0].encode() == data
    # ... and with organisation 1's, it opens the details.
    first = open_shares(header, entries, private_key=private[0])[0]
    opened = list(combine_files(header, [("1", first), ("2", parsed)], entries))
    assert opened == [(1, json.loads(book.resolve("custody-record", "fields")))]


@check("bundle")
def check_bundle(ex: Example) -> None:
    book = ex.book
    origin = book.resolve("checkpoint", "origin")
    vkey = book.resolve("note-key", "vkey")
    latest = book.resolve("checkpoint", "note").encode()
    first = ex.bytes("checkpoints/1")
    signer = LogSigner(origin=origin, seed=bytes.fromhex(book.resolve("note-key", "seed")))
    header_root = bytes.fromhex(book.resolve("merkle", "root-1"))
    assert first == sign_checkpoint(Checkpoint(origin=origin, size=1, root=header_root), signer)
    files = {
        "petition.json": book.resolve("petition-json", "document").encode(),
        "vkey": vkey_file(vkey),
        "checkpoint": latest,
        "checkpoints/1": first,
        "checkpoints/3": latest,
        "leaves.bin": b"".join(
            bytes.fromhex(book.resolve(kind, "leaf"))
            for kind in ("leaf-header", "leaf-signature", "leaf-verified")
        ),
        "VERIFY.txt": ex.bytes("VERIFY.txt"),
    }
    sums = ex.bytes("SHA256SUMS")
    assert sums == "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    ).encode("utf-8")
    with tempfile.TemporaryDirectory() as work:
        directory = Path(work) / "bundle"
        (directory / "checkpoints").mkdir(parents=True)
        for name, data in files.items():
            (directory / name).write_bytes(data)
        assert sha256sums(directory) == sums
        (directory / "SHA256SUMS").write_bytes(sums)
        report = verify_bundle(directory)
        assert (report.origin, report.size, report.count) == (origin, 3, 2)
        expected = ex.text("audit-output").replace("DIR", str(directory))
        assert _run_audit(["verify", str(directory)]) == (0, expected)
        assert expected.endswith(f"\ncount {report.count}\n")


@check("sample")
def check_sample(ex: Example) -> None:
    origin, size, root = ex.text("origin"), ex.int("size"), ex.hex("root")
    checkpoint = Checkpoint(origin=origin, size=size, root=root)
    # The final checkpoint's note, its hash, and the seed built from them (§14).
    note = ex.bytes("note")
    signer = LogSigner(origin=origin, seed=ex.hex("log-key-seed"))
    assert note == sign_checkpoint(checkpoint, signer)
    assert verify_checkpoint(note, ex.text("vkey")) == checkpoint
    note_hash = ex.text("note-sha256")
    assert note_hash == hashlib.sha256(note).hexdigest() == checkpoint_hash(note)
    seed = ex.text("seed")
    assert seed == f"{note_hash} {ex.text('value')}"
    check_seed(note, seed)
    for rejected in ex.lines("rejects"):
        assert _raises(SeedError, check_seed, note, rejected), rejected
    k = ex.int("k")
    body = f"{origin}\n{size}\n{_b64(root)}\n".encode()
    key = hmac.digest(b"samleng-sample/v1", body + seed.encode(), "sha256")
    assert ex.hex("key") == key == sample_key(checkpoint, seed)
    # The derivation of docs/formats.md §14, step by step.
    m = size - 1
    limit = 2**64 - 2**64 % m
    drawn: list[int] = []
    j = 0
    while len(drawn) < k:
        x = int.from_bytes(hmac.digest(key, j.to_bytes(8, "big"), "sha256")[:8], "big")
        j += 1
        if x < limit and 1 + x % m not in drawn:
            drawn.append(1 + x % m)
    indices = [int(v) for v in ex.text("indices").split(" ")]
    assert indices == drawn == sample_indices(checkpoint, seed, k)


@check("key-file")
def check_key_file(ex: Example) -> None:
    private_key, passphrase = ex.hex("private-key"), ex.text("passphrase")
    params = _argon2(ex.text("argon2"))
    salt, nonce = ex.hex("salt"), ex.hex("nonce")
    file_key = hash_secret_raw(
        secret=unicodedata.normalize("NFC", passphrase).encode("utf-8"),
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=32,
        type=Type.ID,
    )
    assert ex.hex("file-key") == file_key
    public_key = X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()
    data = ex.bytes("file")
    lines = data.decode("ascii").split("\n")
    assert lines[:5] == [
        "samleng-organiser-key/v1",
        f"argon2id: {ex.text('argon2')}",
        f"salt: {_b64(salt)}",
        f"nonce: {_b64(nonce)}",
        f"public-key: {_b64(public_key)}",
    ]
    assert len(lines) == 7 and lines[6] == "" and lines[5].startswith("private-key: ")
    header = "".join(line + "\n" for line in lines[:5]).encode("ascii")
    sealed = base64.b64decode(lines[5].removeprefix("private-key: "), validate=True)
    assert ChaCha20Poly1305(file_key).decrypt(nonce, sealed, header) == private_key
    assert seal_private_key(private_key, passphrase, params, salt=salt, nonce=nonce) == data
    assert open_private_key(data, passphrase) == private_key
    assert (
        ex.bytes("public-key-file")
        == f"{_b64(public_key)}\n".encode()
        == public_key_file(public_key)
    )


@check("identifiers")
def check_identifiers(ex: Example) -> None:
    for case in ex.lines("cases"):
        given, expected = case.split(" => ")
        mode, region, raw = given.split(" ", 2)
        if expected == "reject":
            refused = _raises(InvalidIdentifier, normalize_identifier, mode, raw, region=region)
            assert refused, case
        else:
            assert normalize_identifier(mode, raw, region=region) == expected, case


@check("dedup-token")
def check_dedup_token(ex: Example) -> None:
    dedup_key, identifier, salt = ex.hex("dedup-key"), ex.text("identifier"), ex.hex("salt")
    params = _argon2(ex.text("argon2"))
    password = hmac.digest(dedup_key, identifier.encode("utf-8"), "sha256")
    assert ex.hex("password") == password
    token = hash_secret_raw(
        secret=password,
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=32,
        type=Type.ID,
    )
    assert ex.hex("token") == token == dedup_token(dedup_key, identifier, salt, params)


@check("key-wrap")
def check_key_wrap(ex: Example) -> None:
    master_key, origin, key = ex.hex("master-key"), ex.text("origin"), ex.hex("key")
    aad, nonce, wrapped = ex.hex("aad"), ex.hex("nonce"), ex.hex("wrapped")
    assert aad == b"samleng-wrap/v1\n" + origin.encode()
    assert wrapped == nonce + ChaCha20Poly1305(master_key).encrypt(nonce, key, aad)
    assert unwrap_key(master_key, wrapped, origin) == key


@check("service-key")
def check_service_key(ex: Example) -> None:
    master_key, purpose = ex.hex("master-key"), ex.text("purpose")
    info = ex.hex("info")
    assert info == b"samleng-service/v1\n" + purpose.encode()
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master_key)
    assert ex.hex("key") == derived == derive_key(master_key, purpose)


@check("pending-record")
def check_pending_record(ex: Example) -> None:
    private_key, public_key = ex.hex("epoch-private-key"), ex.hex("epoch-public-key")
    assert X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw() == (
        public_key
    )
    origin = ex.text("origin")
    record = PendingRecord(
        kind=LeafKind(int(ex.text("kind"))),
        token=ex.hex("token"),
        commitment=ex.hex("c"),
        details_ciphertext=ex.hex("details"),
    )
    plaintext = ex.hex("plaintext")
    assert plaintext == bytes([int(record.kind), 1]) + ex.hex("token") + ex.hex("c") + ex.hex(
        "details"
    )
    assert plaintext == encode_pending(record)
    assert ex.hex("info") == b"samleng-pending/v1\n" + origin.encode() == pending_info(origin)
    assert open_pending_record(private_key, origin, ex.hex("sealed")) == record
    # Sealing is randomised: seal afresh and open again.
    fresh = seal_pending_record(public_key, origin, record)
    assert open_pending_record(private_key, origin, fresh) == record


def _note_text(note: bytes) -> bytes:
    """The signed text of a note: everything up to the blank line before its signatures."""
    return note[: note.rfind(b"\n\n") + 1]


@check("witness-key")
def check_witness_key(ex: Example) -> None:
    name, seed, public_key = ex.text("name"), ex.hex("seed"), ex.hex("public-key")
    assert Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw() == (
        public_key
    )
    key_id = _sha256(name.encode() + b"\n" + ALG_COSIGNATURE + public_key)[:4]
    assert ex.hex("key-id") == key_id
    vkey = f"{name}+{key_id.hex()}+{_b64(ALG_COSIGNATURE + public_key)}"
    assert ex.text("vkey") == vkey == CosignatureSigner(name=name, seed=seed).verifier.vkey
    verifier = parse_witness_vkey(vkey)
    assert (verifier.name, verifier.key_id, verifier.public_key) == (name, key_id, public_key)
    assert _raises(VerificationError, parse_vkey, vkey)  # not a log key


@check("cosignature")
def check_cosignature(ex: Example) -> None:
    verifier = parse_witness_vkey(ex.text("vkey"))
    note, time = ex.bytes("checkpoint"), ex.int("time")
    text = _note_text(note)
    message = ex.bytes("message")
    assert message == b"cosignature/v1\ntime %d\n" % time + text == cosignature_message(text, time)
    signature = ex.hex("signature")
    Ed25519PublicKey.from_public_bytes(verifier.public_key).verify(signature, message)
    raw = verifier.key_id + time.to_bytes(8, "big") + signature
    line = ex.bytes("line")
    assert line == "— ".encode() + verifier.name.encode() + b" " + _b64(raw).encode()
    signer = CosignatureSigner(name=verifier.name, seed=ex.hex("seed"))
    assert signer.cosign(text, time) == line + b"\n"
    [found] = verify_cosignatures(note + line + b"\n", [verifier])
    assert (found.witness, found.timestamp) == (verifier.name, time)


@check("add-checkpoint")
def check_add_checkpoint(ex: Example) -> None:
    old, proof, note = ex.int("old-size"), ex.hex_list("proof"), ex.bytes("checkpoint")
    body = ex.bytes("body")
    lines = b"".join(_b64(h).encode() + b"\n" for h in proof)
    assert body == b"old %d\n" % old + lines + b"\n" + note == add_checkpoint_body(old, proof, note)
    response = ex.bytes("response")
    witness = parse_witness_vkey(ex.text("witness"))
    answer = interpret_answer(200, "", response, checkpoint=note, witness=witness)
    assert (answer.outcome, answer.cosignatures) == (Outcome.COSIGNED, response)
    assert response == ex.book.resolve("cosignature", "line").encode() + b"\n"


@check("policy")
def check_policy(ex: Example) -> None:
    data = ex.bytes("file")
    policy = parse_policy(data)
    assert format_policy(policy) == data
    assert [log.verifier.vkey for log in policy.logs] == [ex.text("log")]
    witnesses = {w.name: w.verifier for w in policy.witnesses}
    assert witnesses["w1"].vkey == ex.text("witness-1")
    for number in (2, 3):
        verifier = witnesses[f"w{number}"]
        signer = CosignatureSigner(name=verifier.name, seed=ex.hex(f"witness-{number}-seed"))
        assert signer.verifier == verifier
    for field, expected in (("meets", True), ("fails", False)):
        for line in ex.lines(field):
            names = set(line.split(" "))
            assert names <= set(witnesses), line
            assert policy.satisfied(names) is expected, line


@check("witnessed-checkpoint")
def check_witnessed_checkpoint(ex: Example) -> None:
    vkey, policy_file = ex.text("vkey"), ex.bytes("policy")
    policy = parse_policy(policy_file)
    checkpoint = ex.bytes("checkpoint")
    text = _note_text(checkpoint)
    witnesses = {w.name: w.verifier for w in policy.witnesses}
    lines = b""
    for number in (1, 3):
        name = witnesses[f"w{number}"].name
        signer = CosignatureSigner(name=name, seed=ex.hex(f"witness-{number}-seed"))
        lines += signer.cosign(text, ex.int(f"time-{number}"))
    note = ex.bytes("note")
    assert note == checkpoint + lines == add_cosignatures(checkpoint, lines)
    witnessed = require_quorum(note, vkey, policy)
    assert witnessed.witnesses == set(ex.text("cosigned-by").split(" "))
    receipt = ex.bytes("receipt").replace(checkpoint, note)
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "receipt").write_bytes(receipt)
        (Path(work) / "policy").write_bytes(policy_file)
        argv = ["receipt", f"{work}/receipt", "--vkey", vkey, "--policy", f"{work}/policy"]
        assert _run_audit(argv) == (0, ex.text("audit-output"))


@check("tiles")
def check_tiles(ex: Example) -> None:
    book = ex.book
    leaves = [
        bytes.fromhex(book.resolve(kind, "leaf"))
        for kind in ("leaf-header", "leaf-signature", "leaf-verified")
    ]
    assert ex.int("size") == len(leaves)
    paths = ex.lines("paths")
    assert paths == [tile.path for tile in tiles_for_size(len(leaves))]
    level0 = ex.hex("tile/0/000.p/3")
    assert level0 == b"".join(
        bytes.fromhex(book.resolve("merkle", f"leaf-hash-{i}")) for i in range(3)
    )
    bundle = ex.hex("tile/entries/000.p/3")
    assert bundle == b"".join(len(leaf).to_bytes(2, "big") + leaf for leaf in leaves)
    assert bundle == entry_bundle(leaves)
    note = book.resolve("checkpoint", "note").encode()
    with tempfile.TemporaryDirectory() as work:
        written = write_log_tiles(Path(work), leaves, note)
        assert written == [*paths, "checkpoint"]
        assert (Path(work) / "tile/0/000.p/3").read_bytes() == level0
        assert (Path(work) / "tile/entries/000.p/3").read_bytes() == bundle
        assert (Path(work) / "checkpoint").read_bytes() == note
    assert encode_tile_index(ex.int("index")) == ex.text("index-path")
    big = tiles_for_size(70000)
    assert [t.path for t in big if not t.is_full] == ex.lines("partial-tiles-70000")
    assert sum(t.is_full for t in big) == ex.int("full-tiles-70000")


# --- The tests ----------------------------------------------------------------------------------

EXAMPLES = parse_examples(DOC.read_text(encoding="utf-8"))
EXPECTED_KINDS = {
    "origin",
    "canonical-json",
    "receipt-code",
    "receipt-commitment",
    "leaf-header",
    "leaf-signature",
    "leaf-verified",
    "leaf-rejected",
    "merkle",
    "note-key",
    "checkpoint",
    "receipt-extra",
    "tlog-proof",
    "details-padding",
    "details-info",
    "details-open",
    "details-empty",
    "petition-json",
    "bundle",
    "details-file",
    "custody-record",
    "photo-record",
    "custody-petition",
    "petition-witnesses",
    "petition-organisers",
    "leaf-withdrawal",
    "endorsement-record",
    "endorsement-withdrawal",
    "endorsements-file",
    "details-file-v2",
    "shares-file",
    "sample",
    "key-file",
    "identifiers",
    "dedup-token",
    "key-wrap",
    "service-key",
    "pending-record",
    "witness-key",
    "cosignature",
    "add-checkpoint",
    "policy",
    "witnessed-checkpoint",
    "tiles",
}
# Fields listing inputs that must be refused or accepted as they are: most one-character
# changes leave such an input refused (or accepted), so they cannot be mutation-tested.
NOT_MUTATED = {
    ("origin", "accepts"),
    ("origin", "rejects"),
    ("receipt-code", "rejects"),
    ("sample", "rejects"),
}
NOT_MUTATED_KINDS = {"leaf-rejected"}


def test_every_example_is_there_and_has_a_check() -> None:
    assert set(EXAMPLES) == EXPECTED_KINDS
    assert set(CHECKS) == EXPECTED_KINDS


@pytest.mark.parametrize("kind", sorted(EXPECTED_KINDS))
def test_example(kind: str) -> None:
    book = Book(EXAMPLES)
    CHECKS[kind](book[kind])
    unread = set(EXAMPLES[kind]) - book[kind].used
    assert not unread, f"example {kind} has fields no check reads: {sorted(unread)}"


def _mutate(value: str) -> str:
    """Change the last ASCII letter or digit of ``value`` into another (hex stays hex)."""
    for i in reversed(range(len(value))):
        ch = value[i]
        if not (ch.isascii() and ch.isalnum()):
            continue
        if ch in "9zZfF":
            new = {"9": "8", "z": "y", "Z": "Y", "f": "e", "F": "E"}[ch]
        else:
            new = chr(ord(ch) + 1)
        return value[:i] + new + value[i + 1 :]
    return value + "x"


def _own_fields(kind: str) -> list[str]:
    """The fields of an example that hold a value rather than a reference."""
    return [
        name
        for name, value in EXAMPLES[kind].items()
        if not _REFERENCE.fullmatch(value) and (kind, name) not in NOT_MUTATED
    ]


@pytest.mark.parametrize("kind", sorted(EXPECTED_KINDS - NOT_MUTATED_KINDS))
def test_a_changed_field_fails(kind: str) -> None:
    survivors = []
    for name in _own_fields(kind):
        changed = {k: dict(fields) for k, fields in EXAMPLES.items()}
        changed[kind][name] = _mutate(changed[kind][name])
        if not _raises(Exception, CHECKS[kind], Book(changed)[kind]):
            survivors.append(name)
    assert not survivors, f"example {kind}: changing {survivors} goes unnoticed"


def test_reading_the_example_convention() -> None:
    text = "\n".join(
        [
            "prose",
            "```example one",
            "a: plain text",
            "b: |",
            "  line 1",
            "",
            "    indented",
            "c: >",
            "  00ff",
            "  ee",
            "```",
            "```example two",
            "d: @one.b",
            "```",
        ]
    )
    examples = parse_examples(text)
    assert examples == {
        "one": {"a": "plain text", "b": "line 1\n\n  indented\n", "c": "00ffee"},
        "two": {"d": "@one.b"},
    }
    book = Book(examples)
    assert book["two"].text("d") == "line 1\n\n  indented\n"
    for bad in (
        "```example x\nno field here\n```",
        "```example x\na: 1\na: 2\n```",
        "```example x\na: 1\n",
        "```example X\na: 1\n```",
        "```example x\na: 1\n```\n```example x\nb: 2\n```",
    ):
        with pytest.raises(ExampleError):
            parse_examples(bad)


def test_code_cites_existing_sections() -> None:
    text = DOC.read_text(encoding="utf-8")
    sections = [int(n) for n in re.findall(r"^## ([0-9]+)\. ", text, flags=re.MULTILINE)]
    assert sections == list(range(1, len(sections) + 1))
    cited: list[tuple[str, int]] = []
    for folder in ("crypto", "service"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            assert "DESIGN §4" not in source, f"{path} cites DESIGN §4, not docs/formats.md"
            cited += [
                (path.name, int(n)) for n in re.findall(r"docs/formats\.md §([0-9]+)", source)
            ]
    assert cited, "the code cites no section of docs/formats.md"
    assert all(n in sections for _, n in cited), cited
