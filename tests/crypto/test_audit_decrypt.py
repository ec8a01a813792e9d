"""``samleng-audit decrypt``: details come back, and every bad record is named by its leaf."""

import base64
import csv
import io
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from samleng.crypto.audit import main
from samleng.crypto.canonical import canonical_json
from samleng.crypto.checkpoint import LogSigner
from samleng.crypto.details import details_digest, generate_details_keypair, seal_details
from samleng.crypto.detailsfile import encode_details_record, read_details_record
from samleng.crypto.errors import DetailsFileError
from samleng.crypto.keyfile import generate_key_files, parse_key_file
from samleng.crypto.leaf import LeafKind, encode_leaf, header_leaf
from samleng.crypto.receipts import receipt_commitment
from samleng.crypto.tokens import Argon2Params
from tests.crypto.logfactory import PetitionLog, reseal

ORIGIN = "petitions.example.org/p/end-impunity"
CHEAP = Argon2Params(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "seven random words make a fine passphrase"
DETAILS = [
    {"name": "សុខ ដារ៉ា", "locality": "ភ្នំពេញ", "comment": "យុត្តិធម៌", "contact": "a@example.org"},
    {},
    {"name": "Chan Thy", "comment": '=HYPERLINK("http://x.invalid")'},
    {"locality": "Siem Reap"},
    {"comment": "Free them,\nall of them."},
]


@dataclass(frozen=True)
class Setup:
    """A bundle, its details file, the organisers' key file and passphrase file."""

    bundle: Path
    details: Path
    key: Path
    passphrase: Path
    ciphertexts: list[bytes]


def write_setup(tmp_path: Path, *, foreign_at: int | None = None) -> Setup:
    """A bundle of len(DETAILS) signatures with real sealed details.

    ``foreign_at`` seals that record to another key: its leaf's d matches it, but it does not
    open with the organisers' key.
    """
    private_file, _ = generate_key_files(PASSPHRASE, CHEAP)
    public = parse_key_file(private_file).public_key
    rng = random.Random(3)
    signer = LogSigner(origin=ORIGIN, seed=rng.randbytes(32))
    petition = canonical_json(
        {
            "origin": ORIGIN,
            "log": {"vkey": signer.vkey},
            "verification_mode": "none",
            "details": {"public_key": base64.b64encode(public).decode()},
        }
    )
    log = PetitionLog(origin=ORIGIN, signer=signer, petition_json=petition, rng=rng)
    log.append_leaf(header_leaf(petition))
    ciphertexts = []
    for position, fields in enumerate(DETAILS):
        c = receipt_commitment(ORIGIN, rng.randbytes(16))
        key = generate_details_keypair()[1] if position == foreign_at else public
        ct = seal_details(key, ORIGIN, c, fields)
        log.append_leaf(encode_leaf(LeafKind.SIGNATURE, c, details_digest(ct)))
        ciphertexts.append(ct)
    bundle = log.write_bundle(tmp_path / "bundle", history=[2])
    details = tmp_path / "details.bin"
    details.write_bytes(b"".join(encode_details_record(ct) for ct in ciphertexts))
    key_path = tmp_path / "organisers.key"
    key_path.write_bytes(private_file)
    passphrase = tmp_path / "passphrase.txt"
    passphrase.write_text(PASSPHRASE + "\n", encoding="utf-8")
    return Setup(bundle, details, key_path, passphrase, ciphertexts)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return write_setup(tmp_path)


def decrypt(setup: Setup, *extra: str) -> int:
    return main(
        [
            "decrypt", "--key", str(setup.key), "--bundle", str(setup.bundle),
            "--passphrase-file", str(setup.passphrase), str(setup.details), *extra,
        ]
    )  # fmt: skip


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def assert_no_details_in(err: str) -> None:
    for fields in DETAILS:
        for value in fields.values():
            assert value not in err


def test_details_come_back(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert decrypt(setup) == 0
    out, err = capsys.readouterr()
    table = rows(out)
    assert table[0] == ["index", "name", "locality", "comment", "contact"]
    assert table[1] == ["1", "សុខ ដារ៉ា", "ភ្នំពេញ", "យុត្តិធម៌", "a@example.org"]
    assert table[2] == ["2", "", "", "", ""]
    assert table[4] == ["4", "", "Siem Reap", "", ""]
    assert table[5] == ["5", "", "", "Free them,\nall of them.", ""]
    assert len(table) == 6
    assert "opened 5 of 5 records" in err
    assert_no_details_in(err)


def test_spreadsheet_formulas_are_neutralised(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert decrypt(setup) == 0
    assert rows(capsys.readouterr().out)[3][3] == '\'=HYPERLINK("http://x.invalid")'


def test_out_file_is_private_and_never_overwritten(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "details.csv"
    assert decrypt(setup, "--out", str(out)) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert rows(out.read_text(encoding="utf-8"))[1][1] == "សុខ ដារ៉ា"
    assert capsys.readouterr().out == ""
    assert decrypt(setup, "--out", str(out)) == 1
    assert "exists; refusing to overwrite" in capsys.readouterr().err


def test_swapped_records_are_reported_by_index(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    cts = list(setup.ciphertexts)
    cts[1], cts[3] = cts[3], cts[1]
    setup.details.write_bytes(b"".join(encode_details_record(ct) for ct in cts))
    assert decrypt(setup) == 1
    out, err = capsys.readouterr()
    assert [row[0] for row in rows(out)[1:]] == ["1", "3", "5"]
    assert "leaf 2: mismatch" in err and "leaf 4: mismatch" in err
    assert "error: 2 records could not be opened" in err
    assert_no_details_in(err)


@pytest.mark.parametrize(
    ("cut", "reported"),
    [
        (10, ["leaf 5: missing: the file ends inside a record of 1072 bytes"]),
        (1073, ["leaf 5: missing: the file ends inside a record's length"]),
        (1074, ["leaf 5: missing: the details file ended before this leaf"]),
        (2 * 1074, ["leaf 4: missing", "leaf 5: missing"]),
    ],
)
def test_truncated_details_file(
    setup: Setup, capsys: pytest.CaptureFixture[str], cut: int, reported: list[str]
) -> None:
    data = setup.details.read_bytes()
    setup.details.write_bytes(data[:-cut])
    assert decrypt(setup) == 1
    out, err = capsys.readouterr()
    for line in reported:
        assert line in err
    assert len(rows(out)) == 1 + 5 - len(reported)


def test_extra_record(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    with setup.details.open("ab") as f:
        f.write(encode_details_record(setup.ciphertexts[0]))
    assert decrypt(setup) == 1
    assert "leaf 6: extra: the details file has records beyond the last leaf" in (
        capsys.readouterr().err
    )


def test_undecryptable_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup = write_setup(tmp_path, foreign_at=2)
    assert decrypt(setup) == 1
    out, err = capsys.readouterr()
    assert "leaf 3: undecryptable: details do not open with this key and context" in err
    assert len(rows(out)) == 5


def test_wrong_passphrase(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.passphrase.write_text("not the passphrase at all\n", encoding="utf-8")
    assert decrypt(setup) == 1
    out, err = capsys.readouterr()
    assert err.splitlines()[-1] == "error: wrong passphrase, or the key file was changed"
    assert out == ""


def test_key_of_another_petition(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.key.write_bytes(generate_key_files(PASSPHRASE, CHEAP)[0])
    assert decrypt(setup) == 1
    assert "is not the key of this petition" in capsys.readouterr().err


def test_bundle_must_verify_first(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    leaves = setup.bundle / "leaves.bin"
    leaves.write_bytes(leaves.read_bytes()[:-81])
    reseal(setup.bundle)
    assert decrypt(setup) == 1
    out, err = capsys.readouterr()
    assert err.splitlines()[-1].startswith("error: tree size: ")
    assert out == ""


def test_details_file_reader() -> None:
    stream = io.BytesIO(encode_details_record(b"abc") + encode_details_record(b""))
    assert read_details_record(stream) == b"abc"
    assert read_details_record(stream) == b""
    assert read_details_record(stream) is None
    with pytest.raises(DetailsFileError, match="ends inside a record of 3 bytes"):
        read_details_record(io.BytesIO(b"\x00\x03ab"))
    with pytest.raises(ValueError):
        encode_details_record(bytes(1 << 16))


def test_only_the_sampled_leaves(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    only = tmp_path / "sample.txt"
    only.write_text("4\n1\n\n")
    assert decrypt(setup, "--only", str(only)) == 0
    out, err = capsys.readouterr()
    assert [row[0] for row in rows(out)[1:]] == ["1", "4"]
    assert "opened 2 of 2 records" in err


def test_only_still_checks_every_record(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cts = list(setup.ciphertexts)
    cts[1], cts[2] = cts[2], cts[1]
    setup.details.write_bytes(b"".join(encode_details_record(ct) for ct in cts))
    only = tmp_path / "sample.txt"
    only.write_text("1\n")
    assert decrypt(setup, "--only", str(only)) == 1
    assert "leaf 2: mismatch" in capsys.readouterr().err


def test_only_refuses_a_bad_index_file(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    only = tmp_path / "sample.txt"
    only.write_text("1\nthree\n")
    assert decrypt(setup, "--only", str(only)) == 1
    assert "sample.txt, line 2: not a leaf index" in capsys.readouterr().err


@pytest.mark.parametrize("stray", ["0", "6"])
def test_only_refuses_leaves_not_in_the_bundle(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str], stray: str
) -> None:
    only = tmp_path / "sample.txt"
    only.write_text(f"1\n{stray}\n")
    assert decrypt(setup, "--only", str(only)) == 1
    assert f"lists leaf {stray}, which is not a signature leaf of this bundle (1 to 5)" in (
        capsys.readouterr().err
    )
