"""The export bundle (docs/formats.md §12) and the details file for the key holder (§13).

The bundle also holds ``delivery.pdf`` (service/tlog/delivery.py), listed in SHA256SUMS like every
file, unless the caller asks for none. The verifiable bundle never depends on the PDF: when it
cannot be made, the rest is written all the same and the caller is told why. A bundle is
written to a temporary folder beside the target and renamed into place at the end, so a
failed export leaves nothing half-written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flask import render_template
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from samleng.crypto.bundle import POLICY_FILE, lay_out_bundle, petition_witness_policy
from samleng.crypto.detailsfile import DetailsEntry, DetailsFileHeader, encode_details_record
from samleng.crypto.endorsement import (
    ENDORSEMENTS_FILE,
    Endorsement,
    endorsements_file,
    parse_record,
    record_hash,
)
from samleng.crypto.leaf import decode_leaf, is_signature
from samleng.service.platform.errors import PetitionStateError
from samleng.service.platform.models import Leaf, Petition, SignedCheckpoint
from samleng.service.tlog.delivery import (
    DELIVERY_FILE,
    DeliveryError,
    DeliveryFacts,
    FormalLetter,
    bundle_url,
    render_delivery_pdf,
)
from samleng.service.tlog.growth import daily_counts
from samleng.service.tlog.store import (
    endorsement_records,
    latest_checkpoint,
    leaf_bytes_in_order,
    leaves_in_order,
    with_cosignatures,
)

Progress = Callable[[int, int], None]


def _no_progress(_done: int, _total: int) -> None:
    pass


@dataclass(frozen=True, kw_only=True)
class WrittenBundle:
    """What :func:`write_bundle` wrote: the log size, and why delivery.pdf is missing."""

    size: int
    delivery_error: DeliveryError | None = None


def write_bundle(
    session: Session,
    petition: Petition,
    target: Path,
    progress: Progress = _no_progress,
    *,
    delivery: bool = True,
    letter: FormalLetter | None = None,
) -> WrittenBundle:
    """Write the public bundle of ``petition`` to the new folder ``target``.

    Needs an app context (VERIFY.txt and delivery.pdf are templates). With ``delivery`` the
    bundle includes delivery.pdf when it can be made; when it cannot, the bundle is written
    without it and the result says why. ``letter`` puts a formal covering letter first.
    """
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not an empty folder")
    state = latest_checkpoint(session, petition)
    if state is None or petition.petition_json is None or petition.log_vkey is None:
        raise PetitionStateError(f"petition {petition.slug!r} has not been opened")
    delivery_pdf: dict[str, bytes] = {}
    delivery_error = None
    records = endorsement_records(session, petition, state.size)
    endorsed = {ENDORSEMENTS_FILE: endorsements_file(records)} if records else {}
    if delivery:
        facts = DeliveryFacts(
            petition_json=petition.petition_json,
            checkpoint=state.note,
            size=state.size,
            signatures=state.count,
            paper=state.paper,
            photos=state.photos,
            endorsers=current_endorsers(records, petition.origin),
            closed_on=petition.closed_on,
            growth=daily_counts(session, petition),
            bundle_url=bundle_url(petition.origin),
            letter=letter,
        )
        try:
            delivery_pdf[DELIVERY_FILE] = render_delivery_pdf(facts)
        except DeliveryError as exc:
            delivery_error = exc
    policy = _frozen_policy(petition.petition_json)
    verify_text = render_template(
        "export/VERIFY.txt",
        petition=petition,
        size=state.size,
        count=state.count,
        witnessed=bool(policy),
    )
    checkpoints = [
        (size, with_cosignatures(session, petition.id, size, note))
        for size, note in session.execute(
            select(SignedCheckpoint.size, SignedCheckpoint.note)
            .where(SignedCheckpoint.petition_id == petition.id)
            .where(SignedCheckpoint.size <= state.size)
        )
    ]

    def leaves() -> Iterator[bytes]:
        written = 0
        for leaf in leaf_bytes_in_order(session, petition, state.size):
            yield leaf
            written += 1
            if written % 100_000 == 0:
                progress(written, state.size)
        progress(written, state.size)
        if written != state.size:
            raise PetitionStateError(f"the log holds {written} leaves, not {state.size}")

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        lay_out_bundle(
            work,
            petition_json=petition.petition_json,
            vkey=petition.log_vkey,
            leaves=leaves(),
            checkpoints=[(size, note) for size, note in checkpoints],
            verify_text=verify_text.encode("utf-8"),
            extra=delivery_pdf | policy | endorsed,
        )
        # The public bundle: nginx (another user) serves it; mkdtemp made the folder 0700.
        os.chmod(work, 0o755)  # noqa: S103
        if target.exists():
            target.rmdir()
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return WrittenBundle(size=state.size, delivery_error=delivery_error)


def _frozen_policy(petition_json: bytes) -> dict[str, bytes]:
    """The bundle's ``policy`` file: the witness policy petition.json froze, if any."""
    policy = petition_witness_policy(json.loads(petition_json))
    return {} if policy is None else {POLICY_FILE: policy}


# Fixed metadata, so that the same bundle always zips to the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_FILE_MODE = 0o644 << 16


def zip_bundle(bundle: Path, target: Path, root: str) -> None:
    """Zip the bundle folder into ``target``, every file under the folder name ``root``/."""
    with zipfile.ZipFile(target, "x", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(f"{root}/{path.relative_to(bundle).as_posix()}", _ZIP_DATE)
            info.external_attr = _ZIP_FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as source, archive.open(info, "w") as out:
                shutil.copyfileobj(source, out, 1 << 20)


def cached_bundle_zip(session: Session, petition: Petition, cache: Path) -> Path:
    """Return the zip of the petition's bundle at its latest checkpoint, made if not cached.

    The cache keeps one zip per petition, ``<cache>/<slug>/<size>-<digest>.zip``; a newer
    checkpoint (signatures sealed after closing, or a new cosignature) makes a new one. A
    file lock per petition lets one process build it while the others wait for it. Needs an
    app context. Raises DeliveryError, caching nothing, when delivery.pdf cannot be made: the
    published zip is always complete, and is made once the operator has fixed what is missing.
    """
    state = latest_checkpoint(session, petition)
    if state is None:
        raise PetitionStateError(f"petition {petition.slug!r} has not been opened")
    folder = cache / petition.slug
    # Named by the checkpoint as published: a cosignature arriving later makes a new zip.
    zip_path = folder / f"{state.size}-{hashlib.sha256(state.note).hexdigest()[:16]}.zip"
    if zip_path.is_file():
        return zip_path
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not zip_path.is_file():
            with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as work:
                bundle = Path(work) / "bundle"
                written = write_bundle(session, petition, bundle)
                if written.delivery_error is not None:
                    raise written.delivery_error
                partial = Path(work) / "bundle.zip"
                zip_bundle(bundle, partial, f"{petition.slug}-bundle")
                os.chmod(partial, 0o644)
                partial.replace(zip_path)
            for old in folder.glob("*.zip"):
                if old != zip_path:
                    old.unlink(missing_ok=True)
    return zip_path


def current_endorsers(records: list[bytes], origin: str) -> tuple[Endorsement, ...]:
    """The endorsements standing after ``records`` (log order): withdrawn ones left out."""
    standing: dict[bytes, Endorsement] = {}
    for record in records:
        parsed = parse_record(json.loads(record), origin)
        if isinstance(parsed, Endorsement):
            standing[record_hash(record)] = parsed
        else:
            standing.pop(parsed.withdraws, None)
    return tuple(standing.values())


def write_details(session: Session, petition: Petition, target: Path) -> int:
    """Write every signature leaf's sealed details, in index order (docs/formats.md §13):
    ``u16be(len) || ct`` each for a single-key petition; for coalition custody a header
    naming the petition, its keys and threshold, then ``index || c || len || record`` each."""
    if target.exists():
        raise FileExistsError(f"{target} exists")
    custody = petition.custody()
    partial = target.with_name(f".{target.name}.partial")
    records = 0
    try:
        with partial.open("xb") as out:
            if custody.version == 2:
                count = session.scalar(
                    select(func.count())
                    .select_from(Leaf)
                    .where(Leaf.petition_id == petition.id, Leaf.details_ciphertext.is_not(None))
                )
                header = DetailsFileHeader(
                    origin=petition.origin, custody=custody, count=count or 0
                )
                out.write(header.encode())
            for leaf in leaves_in_order(session, petition):
                if not is_signature(decode_leaf(leaf.leaf).kind):
                    continue  # the header and endorsements have no details
                if leaf.details_ciphertext is None:
                    raise ValueError(f"signature leaf {leaf.index} has no details ciphertext")
                if custody.version == 2:
                    entry = DetailsEntry(
                        index=leaf.index, commitment=leaf.commitment, record=leaf.details_ciphertext
                    )
                    out.write(entry.encode())
                else:
                    out.write(encode_details_record(leaf.details_ciphertext))
                records += 1
        partial.rename(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return records
