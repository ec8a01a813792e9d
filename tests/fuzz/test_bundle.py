"""Fuzzing crypto.bundle.verify_bundle with damaged bundle directories.

Each example copies a valid bundle, damages it (bytes of a file, a missing, extra, emptied or
replaced file, a directory or symlink where a file should be) and, half of the time, rewrites
SHA256SUMS so that the damage reaches the checks behind the checksums. Verification must
either pass (only when what it proves is unchanged) or raise BundleError: never another
exception.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samleng.crypto.bundle import BundleReport, verify_bundle
from samleng.crypto.errors import BundleError
from samleng.crypto.leaf import LeafKind, encode_leaf
from tests.crypto.logfactory import make_log, reseal
from tests.fuzz.mutations import examples, mutated


@dataclass(frozen=True)
class Template:
    """A valid bundle to copy, what it proves, and its files."""

    directory: Path
    report: BundleReport
    files: list[str]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A bundle of 11 leaves (one with an all-zero c) and four published checkpoints."""
    log = make_log(9)
    log.append_leaf(encode_leaf(LeafKind.SIGNATURE, bytes(32), bytes(32)))
    directory = log.write_bundle(tmp_path_factory.mktemp("fuzz") / "bundle", history=[1, 3, 7])
    files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    return Template(directory, verify_bundle(directory), files)


def _clear(path: Path) -> None:
    """Remove whatever is at ``path``: a file, a symlink or a directory."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@st.composite
def damage(draw: st.DrawFn, directory: Path, files: list[str]) -> str:
    """Damage ``directory`` in one or two ways; return a description for failure reports."""
    done = []
    for _ in range(draw(st.integers(1, 2))):
        name = draw(st.sampled_from([*files, "checkpoints/99", "extra.txt", "checkpoints/x"]))
        path = directory / name
        how = draw(
            st.sampled_from(["mutate", "mutate", "mutate", "delete", "empty", "dir", "link"])
        )
        original = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        _clear(path)
        if how == "mutate":
            path.write_bytes(draw(mutated(original, 3)))
        elif how == "empty":
            path.write_bytes(b"")
        elif how == "dir":
            path.mkdir()
        elif how == "link":
            path.symlink_to(directory / draw(st.sampled_from(files)))
        done.append(f"{how} {name}")
    if draw(st.booleans()):
        try:
            reseal(directory)
            done.append("resealed")
        except (BundleError, IsADirectoryError):  # a symlink, or SHA256SUMS is a directory
            pass
    return ", ".join(done)


@settings(max_examples=examples(300), deadline=None)
@given(data=st.data())
def test_damaged_bundles(template: Template, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(prefix="samleng-fuzz-") as work:
        directory = Path(work) / "bundle"
        shutil.copytree(template.directory, directory, symlinks=True)
        what = data.draw(damage(directory, template.files), label="damage")
        try:
            report = verify_bundle(directory)
        except BundleError:
            return
        # Accepted: the damage must not have changed what the bundle proves (e.g. an extra
        # file listed in SHA256SUMS, or a damaged checkpoint file deleted with its listing).
        expected = template.report
        assert (report.origin, report.size, report.count, report.root) == (
            expected.origin,
            expected.size,
            expected.count,
            expected.root,
        ), what
