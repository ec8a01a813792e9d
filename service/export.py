"""The export bundle (DESIGN §4) and the details file for the key holder.

A bundle is written to a temporary folder beside the target and renamed into place at the
end, so a failed export leaves nothing half-written behind.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

from flask import render_template
from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.bundle import (
    CHECKPOINT_FILE,
    CHECKPOINTS_DIR,
    LEAVES_FILE,
    PETITION_FILE,
    SUMS_FILE,
    VERIFY_FILE,
    VKEY_FILE,
    checkpoint_path,
    sha256sums,
    vkey_file,
)
from crypto.leaf import LeafKind, decode_leaf
from service.errors import PetitionStateError
from service.log import latest_checkpoint, leaves_in_order
from service.models import Petition, SignedCheckpoint

Progress = Callable[[int, int], None]


def _no_progress(_done: int, _total: int) -> None:
    pass


def write_bundle(
    session: Session, petition: Petition, target: Path, progress: Progress = _no_progress
) -> int:
    """Write the public bundle of ``petition`` to the new folder ``target``; returns its size.

    Needs an app context (VERIFY.txt is a template).
    """
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not an empty folder")
    state = latest_checkpoint(session, petition)
    if state is None or petition.petition_json is None or petition.log_vkey is None:
        raise PetitionStateError(f"petition {petition.slug!r} has not been opened")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        (work / PETITION_FILE).write_bytes(petition.petition_json)
        (work / VKEY_FILE).write_bytes(vkey_file(petition.log_vkey))
        (work / CHECKPOINT_FILE).write_bytes(state.note)
        (work / CHECKPOINTS_DIR).mkdir()
        for row in session.scalars(
            select(SignedCheckpoint)
            .where(SignedCheckpoint.petition_id == petition.id)
            .where(SignedCheckpoint.size <= state.size)
        ):
            (work / checkpoint_path(row.size)).write_bytes(row.note)
        written = 0
        with (work / LEAVES_FILE).open("wb") as out:
            for leaf in leaves_in_order(session, petition):
                if leaf.index >= state.size:
                    break
                out.write(leaf.leaf)
                written += 1
                if written % 100_000 == 0:
                    progress(written, state.size)
        progress(written, state.size)
        if written != state.size:
            raise PetitionStateError(f"the log holds {written} leaves, not {state.size}")
        verify_text = render_template(
            "export/VERIFY.txt", petition=petition, size=state.size, count=state.count
        )
        (work / VERIFY_FILE).write_text(verify_text, encoding="utf-8")
        (work / SUMS_FILE).write_bytes(sha256sums(work))
        os.chmod(work, 0o755)
        if target.exists():
            target.rmdir()
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return state.size


def write_details(session: Session, petition: Petition, target: Path) -> int:
    """Write every signature leaf's sealed details, in index order: ``u16be(len) || ct``."""
    if target.exists():
        raise FileExistsError(f"{target} exists")
    partial = target.with_name(f".{target.name}.partial")
    records = 0
    try:
        with partial.open("xb") as out:
            for leaf in leaves_in_order(session, petition):
                if decode_leaf(leaf.leaf).kind == LeafKind.HEADER:
                    continue
                assert leaf.details_ciphertext is not None
                out.write(struct.pack(">H", len(leaf.details_ciphertext)))
                out.write(leaf.details_ciphertext)
                records += 1
        partial.rename(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return records
