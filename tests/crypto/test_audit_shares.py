"""``samleng-audit shares open`` / ``shares combine``: a coalition opens details k of n at a time.

Each organisation has its own "machine" (a folder of its own holding only its key file, its
passphrase and its copy of details.bin); the shares files are then carried to the folder where
the coalition combines them. Records are sealed the way the service seals them: with the
petition's custody, to its n public keys (crypto.custody.Custody.seal).
"""

import csv
import hashlib
import io
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from samleng.crypto import audit
from samleng.crypto.audit import main
from samleng.crypto.canonical import canonical_json
from samleng.crypto.checkpoint import Checkpoint, LogSigner
from samleng.crypto.custody import Custody
from samleng.crypto.details import details_digest
from samleng.crypto.detailsfile import encode_details_file
from samleng.crypto.keyfile import generate_key_files, parse_key_file
from samleng.crypto.leaf import LeafKind, encode_leaf, header_leaf
from samleng.crypto.receipts import receipt_commitment
from samleng.crypto.sample import sample_indices
from samleng.crypto.tokens import Argon2Params
from tests.crypto.logfactory import PetitionLog
from tests.crypto.test_audit_decrypt import write_setup

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
HEADER = ["index", "name", "locality", "comment", "contact"]


@dataclass(frozen=True)
class Coalition:
    """A closed petition in custody of n organisations, and each one's machine."""

    bundle: Path
    details: Path
    machines: list[Path]
    log: PetitionLog

    def key(self, org: int) -> Path:
        return self.machines[org] / "org.key"


def make_coalition(
    where: Path, *, k: int = 2, n: int = 3, origin: str = ORIGIN, seed: int = 3
) -> Coalition:
    """Make the n organisations' keys (each on its own machine), the petition, its signatures
    with details sealed k-of-n, the bundle and details.bin (copied to every machine)."""
    where.mkdir(parents=True)
    machines = []
    for org in range(n):
        machine = where / f"org-{org + 1}"
        machine.mkdir()
        private_file, _public = generate_key_files(PASSPHRASE, CHEAP)
        (machine / "org.key").write_bytes(private_file)
        (machine / "passphrase.txt").write_text(PASSPHRASE + "\n", encoding="utf-8")
        machines.append(machine)
    public_keys = tuple(parse_key_file((m / "org.key").read_bytes()).public_key for m in machines)
    custody = Custody(public_keys=public_keys, threshold=k)
    rng = random.Random(seed)
    signer = LogSigner(origin=origin, seed=rng.randbytes(32))
    petition = canonical_json(
        {
            "origin": origin,
            "log": {"vkey": signer.vkey},
            "verification_mode": "none",
            "details": custody.petition_member(),
        }
    )
    log = PetitionLog(origin=origin, signer=signer, petition_json=petition, rng=rng)
    log.append_leaf(header_leaf(petition))
    entries = []
    for fields in DETAILS:
        c = receipt_commitment(origin, rng.randbytes(16))
        record = custody.seal(origin, c, fields)  # what the service does when someone signs
        log.append_leaf(encode_leaf(LeafKind.SIGNATURE, c, details_digest(record)))
        entries.append((log.size - 1, c, record))
    bundle = log.write_bundle(where / "bundle", history=[2])
    details = where / "details.bin"
    details.write_bytes(encode_details_file(origin, custody, entries))
    for machine in machines:
        shutil.copy(details, machine / "details.bin")
    return Coalition(bundle=bundle, details=details, machines=machines, log=log)


@pytest.fixture
def coalition(tmp_path: Path) -> Coalition:
    return make_coalition(tmp_path / "petition")


def open_shares(coalition: Coalition, org: int, *extra: str) -> tuple[int, Path]:
    """Run ``shares open`` on organisation ``org``'s machine (0-based); return status, file."""
    machine = coalition.machines[org]
    out = machine / f"org-{org + 1}.shares"
    status = main(
        ["shares", "open", "--key", str(machine / "org.key"), str(machine / "details.bin"),
         "--out", str(out), "--passphrase-file", str(machine / "passphrase.txt"), *extra]
    )  # fmt: skip
    return status, out


def carry(shares: list[Path], table: Path) -> list[str]:
    """Copy shares files to the combining machine; return their new paths."""
    table.mkdir(exist_ok=True)
    return [str(shutil.copy(path, table / path.name)) for path in shares]


def combine(files: list[str], details: Path, out: Path, *extra: str) -> int:
    return main(["shares", "combine", *files, "--details", str(details), "--out", str(out),
                 *extra])  # fmt: skip


def expected_rows(indices: list[int] | None = None) -> list[list[str]]:
    rows = []
    for index, fields in enumerate(DETAILS, start=1):
        if indices is None or index in indices:
            cells = [fields.get(name, "") for name in HEADER[1:]]
            rows.append([str(index), *("'" + c if c.startswith("=") else c for c in cells)])
    return [HEADER, *rows]


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_two_of_three_on_separate_machines(
    coalition: Coalition, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status_a, shares_a = open_shares(coalition, 0)
    status_c, shares_c = open_shares(coalition, 2)
    assert (status_a, status_c) == (0, 0)
    assert shares_a.stat().st_mode & 0o777 == 0o600
    assert "share 1 of 3 of 5 records" in capsys.readouterr().out
    table = tmp_path / "table"
    out = table / "details.csv"
    files = carry([shares_a, shares_c], table)
    details = Path(shutil.copy(coalition.details, table / "details.bin"))
    assert combine(files, details, out) == 0
    assert read_csv(out) == expected_rows()
    assert out.stat().st_mode & 0o777 == 0o600
    assert "opened 5 records" in capsys.readouterr().out
    # The same with the bundle: each record is also checked against its leaf.
    checked = table / "checked.csv"
    assert combine(files, details, checked, "--bundle", str(coalition.bundle)) == 0
    assert read_csv(checked) == expected_rows()


def test_all_three_shares_also_combine(coalition: Coalition, tmp_path: Path) -> None:
    files = [open_shares(coalition, org)[1] for org in range(3)]
    out = tmp_path / "details.csv"
    assert combine(carry(files, tmp_path / "t"), coalition.details, out) == 0
    assert read_csv(out) == expected_rows()


def test_one_key_is_not_enough_and_nothing_is_written(
    coalition: Coalition, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, shares_b = open_shares(coalition, 1)
    capsys.readouterr()
    out = tmp_path / "details.csv"
    assert combine(carry([shares_b], tmp_path / "t"), coalition.details, out) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "error: these details need shares from 2 of the petition's 3 keys; 1 given (share 2): "
        "1 more is missing"
    )
    assert not out.exists()


def test_shares_of_another_petition(
    coalition: Coalition, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_coalition(tmp_path / "other", origin="petitions.example.org/p/other", seed=4)
    _, ours = open_shares(coalition, 0)
    _, theirs = open_shares(other, 1)
    capsys.readouterr()
    out = tmp_path / "details.csv"
    assert combine(carry([ours, theirs], tmp_path / "t"), coalition.details, out) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path}/t/org-2.shares holds shares of petitions.example.org/p/other, but "
        f"the details file is of {ORIGIN}"
    )
    assert not out.exists()


def test_shares_of_another_petition_with_the_same_origin(
    coalition: Coalition, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A petition made again under the same slug has other keys (and other records).
    again = make_coalition(tmp_path / "again", seed=5)
    _, ours = open_shares(coalition, 0)
    _, theirs = open_shares(again, 1)
    capsys.readouterr()
    out = tmp_path / "details.csv"
    assert combine(carry([ours, theirs], tmp_path / "t"), coalition.details, out) == 1
    assert "org-2.shares was opened for other keys than this details file's" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_a_tampered_share_is_named(
    coalition: Coalition, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, shares_a = open_shares(coalition, 0)
    _, shares_b = open_shares(coalition, 1)
    lines = shares_b.read_text().split("\n")
    leaf, c, share = lines[10].split(" ")  # leaf 4's share
    lines[10] = f"{leaf} {c} {share[:-1]}{'0' if share[-1] != '0' else '1'}"
    shares_b.write_text("\n".join(lines))
    capsys.readouterr()
    out = tmp_path / "details.csv"
    files = carry([shares_a, shares_b], tmp_path / "t")
    assert combine(files, coalition.details, out) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {files[1]}: leaf 4: share 2 is not the share this record commits to: it was "
        "changed, or it belongs to another record or petition"
    )
    assert not out.exists()


def test_the_same_organisation_twice(
    coalition: Coalition, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, shares_a = open_shares(coalition, 0)
    copy = tmp_path / "copy.shares"
    shutil.copy(shares_a, copy)
    capsys.readouterr()
    out = tmp_path / "details.csv"
    assert combine([str(shares_a), str(copy)], coalition.details, out) == 1
    assert "both hold share 1: give each organisation's shares file once" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_a_damaged_shares_file_is_named(
    coalition: Coalition, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, shares_a = open_shares(coalition, 0)
    _, shares_b = open_shares(coalition, 1)
    shares_b.write_bytes(shares_b.read_bytes()[:-5])
    capsys.readouterr()
    out = tmp_path / "details.csv"
    assert combine([str(shares_a), str(shares_b)], coalition.details, out) == 1
    assert capsys.readouterr().err.startswith(f"error: {shares_b}: ")
    assert not out.exists()


def test_a_key_of_another_petition_opens_nothing(
    coalition: Coalition, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_coalition(tmp_path / "other", seed=6)
    shutil.copy(other.key(0), coalition.key(0))
    status, out = open_shares(coalition, 0)
    assert status == 1
    assert "org.key is not one of the 3 keys of petitions.example.org/p/end-impunity" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_the_passphrase_is_asked_once(
    coalition: Coalition, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[str] = []

    def typed(prompt: str) -> str:
        asked.append(prompt)
        return PASSPHRASE

    monkeypatch.setattr(audit.getpass, "getpass", typed)
    machine = coalition.machines[0]
    argv = ["shares", "open", "--key", str(machine / "org.key"), str(machine / "details.bin"),
            "--out", str(machine / "a.shares")]  # fmt: skip
    assert main(argv) == 0
    assert asked == [f"Passphrase for {machine / 'org.key'}: "]


def test_wrong_passphrase_writes_nothing(
    coalition: Coalition, capsys: pytest.CaptureFixture[str]
) -> None:
    (coalition.machines[0] / "passphrase.txt").write_text("not the passphrase at all\n")
    status, out = open_shares(coalition, 0)
    assert status == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: wrong passphrase, or the key file was changed"
    )
    assert not out.exists()


def test_open_checks_records_against_the_bundle(
    coalition: Coalition, capsys: pytest.CaptureFixture[str]
) -> None:
    assert open_shares(coalition, 0, "--bundle", str(coalition.bundle))[0] == 0
    # A details file of another petition, given with this bundle: refused by name.
    other = make_coalition(coalition.bundle.parent.parent / "other", origin="x.example/p/y")
    shutil.copy(other.details, coalition.machines[1] / "details.bin")
    capsys.readouterr()
    status, out = open_shares(coalition, 1, "--bundle", str(coalition.bundle))
    assert status == 1 and not out.exists()
    assert "details.bin holds the details of x.example/p/y, but the bundle is of " in (
        capsys.readouterr().err
    )


def test_a_swapped_record_is_named_and_nothing_written(
    coalition: Coalition, capsys: pytest.CaptureFixture[str]
) -> None:
    # Swap the records (not the leaf numbers or commitments) of leaves 2 and 3.
    details = coalition.machines[0] / "details.bin"
    data = bytearray(details.read_bytes())
    header_bytes = 24 + 2 + len(ORIGIN) + 2 + 3 * 32 + 8
    entry = 8 + 32 + 4 + (21 + 3 * 96 + 1040)
    second, third = header_bytes + entry, header_bytes + 2 * entry
    rec = slice(44, entry)
    a = bytes(data[second:third][rec])
    b = bytes(data[third : third + entry][rec])
    data[second + 44 : second + entry] = b
    data[third + 44 : third + entry] = a
    details.write_bytes(bytes(data))
    status, out = open_shares(coalition, 0)
    err = capsys.readouterr().err
    assert status == 1 and not out.exists()
    assert "leaf 2: undecryptable: share 1 does not open with this key" in err
    assert "leaf 3: undecryptable" in err
    assert "nothing was written" in err
    status, out = open_shares(coalition, 0, "--bundle", str(coalition.bundle))
    err = capsys.readouterr().err
    assert status == 1 and not out.exists()
    assert "leaf 2: mismatch: the record's SHA-256 is not this leaf's d" in err


def test_a_sample_audit_opens_only_the_sampled_records(
    coalition: Coalition, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = coalition.log
    seed = f"{hashlib.sha256(log.checkpoint()).hexdigest()} lottery 482913"
    sample = tmp_path / "sample.txt"
    assert main(["sample", "--bundle", str(coalition.bundle), "--seed", seed, "-k", "2",
                 "--out", str(sample)]) == 0  # fmt: skip
    final = Checkpoint(origin=log.origin, size=log.size, root=log.tree.root(log.size))
    drawn = sample_indices(final, seed, 2)
    for machine in coalition.machines[:2]:
        shutil.copy(sample, machine / "sample.txt")
    files = [open_shares(coalition, org, "--only", str(coalition.machines[org] / "sample.txt"))
             for org in (0, 1)]  # fmt: skip
    assert [status for status, _ in files] == [0, 0]
    assert files[0][1].read_text().count("\n") == 7 + 2  # header lines and the two records
    out = tmp_path / "sample.csv"
    assert combine(carry([f for _, f in files], tmp_path / "t"), coalition.details, out) == 0
    assert read_csv(out) == expected_rows(drawn)


def test_different_only_lists_leave_leaves_short(
    coalition: Coalition, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (coalition.machines[0] / "only.txt").write_text("1\n2\n")
    (coalition.machines[1] / "only.txt").write_text("2\n3\n")
    _, a = open_shares(coalition, 0, "--only", str(coalition.machines[0] / "only.txt"))
    _, b = open_shares(coalition, 1, "--only", str(coalition.machines[1] / "only.txt"))
    capsys.readouterr()
    out = tmp_path / "details.csv"
    assert combine([str(a), str(b)], coalition.details, out) == 1
    assert capsys.readouterr().err.strip() == (
        "error: leaf 1: these details need shares from 2 of the petition's 3 keys; 1 given "
        "(share 1): 1 more is missing (the shares files were opened with different --only lists)"
    )
    assert not out.exists()


def test_open_refuses_a_single_key_details_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = write_setup(tmp_path)
    out = tmp_path / "org.shares"
    status = main(["shares", "open", "--key", str(setup.key), str(setup.details), "--out",
                   str(out), "--passphrase-file", str(setup.passphrase)])  # fmt: skip
    assert status == 1 and not out.exists()
    assert "is the details file of a single-key petition (version 1): open it with " in (
        capsys.readouterr().err
    )


def decrypt(coalition: Coalition, org: int, out: Path) -> int:
    machine = coalition.machines[org]
    return main(["decrypt", "--key", str(machine / "org.key"), "--bundle", str(coalition.bundle),
                 "--passphrase-file", str(machine / "passphrase.txt"),
                 str(machine / "details.bin"), "--out", str(out)])  # fmt: skip


@pytest.mark.parametrize("n", [1, 3])
def test_decrypt_opens_a_threshold_one_petition_alone(tmp_path: Path, n: int) -> None:
    coalition = make_coalition(tmp_path / "p", k=1, n=n)
    for org in range(n):
        out = tmp_path / f"org-{org}.csv"
        assert decrypt(coalition, org, out) == 0
        assert read_csv(out) == expected_rows()


def test_decrypt_sends_a_coalition_to_shares(
    coalition: Coalition, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "details.csv"
    assert decrypt(coalition, 0, out) == 1
    assert "this petition's details open only with shares from 2 of its 3 keys" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_combine_checks_every_record_against_the_bundle(
    coalition: Coalition, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (coalition.machines[0] / "only.txt").write_text("1\n")
    (coalition.machines[1] / "only.txt").write_text("1\n")
    files = [
        open_shares(coalition, org, "--only", str(coalition.machines[org] / "only.txt"))[1]
        for org in (0, 1)
    ]
    # Leaf 5's record, which no share covers, is changed: the details file is not used at all.
    details = tmp_path / "details.bin"
    data = bytearray(coalition.details.read_bytes())
    data[-1] ^= 1
    details.write_bytes(bytes(data))
    capsys.readouterr()
    out = tmp_path / "details.csv"
    assert combine([str(f) for f in files], details, out, "--bundle", str(coalition.bundle)) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: leaf 5: mismatch: the record's SHA-256 is not this leaf's d"
    )
    assert not out.exists()
    # Without the bundle, the changed record is not opened, so the sample still combines.
    assert combine([str(f) for f in files], details, out) == 0
    assert read_csv(out) == expected_rows([1])
