"""Photo pledges through the sign form: a photo petition takes a photo (multipart, no JS),
cleans it in memory, seals it with the details and the signer's consent in a photo record,
and logs a kind 0x04 leaf; the count shows the photo pledges apart everywhere. Hostile files
are refused with a clear message and leave nothing behind, on disk or in the database."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from PIL import Image
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import TestResponse, stream_encode_multipart

from samleng.crypto.audit import main as audit
from samleng.crypto.bundle import verify_bundle
from samleng.crypto.custody import Consent, is_photo_record, open_photo_record
from samleng.crypto.leaf import LeafKind, decode_leaf
from samleng.service.petitions.lifecycle import close_petition, create_petition, set_photos
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import Leaf, PendingSignature, get_petition
from tests.components import require_program
from tests.conftest import (
    CHEAP_ARGON2,
    ORIGIN,
    OpenPetition,
    add_petition,
    form_token,
    pending_records,
    receipt_of,
    seal,
)
from tests.service import photofiles as files
from tests.service.test_custody import Coalition, combine, create, make_machines, open_shares
from tests.service.test_delivery import pdf_text
from tests.service.test_log import export
from tests.service.test_photos import HOSTILE, PLAIN_GROUPS, exiftool_groups


def post_multipart(client: FlaskClient, path: str, fields: dict[str, Any]) -> TestResponse:
    """Post a multipart body encoded and closed here (werkzeug's test client leaves a large
    one open)."""
    body, length, boundary = stream_encode_multipart(fields, threshold=1 << 30)
    with body:
        return client.post(
            path,
            input_stream=body,
            content_length=length,
            content_type=f"multipart/form-data; boundary={boundary}",
        )


def sign_with_photo(
    client: FlaskClient,
    slug: str,
    photo: bytes | None,
    *,
    lang: str = "en",
    consent: str = "public",
    filename: str = "photo.jpg",
    **fields: str,
) -> TestResponse:
    data: dict[str, Any] = {
        "form_token": form_token(client, slug, lang),
        "consent": "yes",
        "website": "",
        "photo_consent": consent,
        **fields,
    }
    data["photo"] = FileStorage(io.BytesIO(photo or b""), "" if photo is None else filename)
    return post_multipart(client, f"/{lang}/p/{slug}/sign", data)


def photo_petition(app: Flask, photos: str = "optional", slug: str = "faces") -> OpenPetition:
    return add_petition(app, slug=slug, photos=photos)


def stored(app: Flask) -> int:
    with app.app_context():
        return int(get_session().scalar(select(func.count()).select_from(PendingSignature)) or 0)


def test_a_photo_pledge_is_cleaned_sealed_logged_and_counted_apart(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    petition = photo_petition(app)
    with app.app_context():
        frozen = get_petition(get_session(), petition.slug).petition_json
    assert frozen is not None
    document = json.loads(frozen)
    assert document["photos"] == "optional"
    assert document["details"]["format"] == "samleng-details/v2"  # one key, 1 of 1
    page = client.get(f"/en/p/{petition.slug}").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and 'type="file"' in page
    assert "everything but the picture itself is removed" in page and "<script" not in page
    km = client.get(f"/km/p/{petition.slug}").get_data(as_text=True)
    assert 'name="photo"' in km and "everything but the picture" not in km
    answer = sign_with_photo(
        client,
        petition.slug,
        files.camera_jpeg(orientation=6),
        consent="recipient",
        identifier="012 345 678",
        name="Sokha",
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    code = receipt_of(answer)
    assert "Set-Cookie" not in answer.headers
    # Without a photo, an optional petition takes a plain signature.
    plain = sign_with_photo(client, petition.slug, None, identifier="012 345 679")
    assert plain.status_code == 200
    records = pending_records(app)
    assert sorted(r.kind for r in records) == [LeafKind.SIGNATURE, LeafKind.PHOTO]
    seal(app)
    with app.app_context():
        rows = get_session().execute(select(Leaf.leaf, Leaf.details_ciphertext)).all()
    [(leaf, record)] = [(leaf, rec) for leaf, rec in rows if decode_leaf(leaf).kind == 4]
    assert record is not None and is_photo_record(record)
    opened = open_photo_record(
        petition.details_private_key, 1, petition.origin, decode_leaf(leaf).c, record
    )
    assert opened.details == {"name": "Sokha"} and opened.consent == Consent.RECIPIENT_BANNER
    assert opened.photo is not None
    cleaned = tmp_path / "cleaned.jpg"
    cleaned.write_bytes(opened.photo)
    assert {key.split(":")[0] for key in exiftool_groups(cleaned)} <= PLAIN_GROUPS
    with Image.open(cleaned) as image:
        assert image.size == (480, 640)  # turned upright by its EXIF orientation
    for secret in files.SECRETS:
        assert secret.encode() not in opened.photo

    counts = client.get(f"/p/{petition.slug}/count.json").get_json()
    assert (counts["count"], counts["online"], counts["photos"]) == (2, 2, 1)
    assert "1 of them pledged with a photo." in client.get(f"/en/p/{petition.slug}").get_data(
        as_text=True
    )
    assert "counted" in client.post(
        f"/en/p/{petition.slug}/receipt", data={"receipt": code}
    ).get_data(as_text=True)
    with app.app_context():
        close_petition(get_session(), get_petition(get_session(), petition.slug))
        get_session().commit()
    bundle = tmp_path / "bundle"
    export(runner, petition.slug, bundle)
    report = verify_bundle(bundle)
    assert (report.count, report.photos) == (2, 1)
    assert audit(["verify", str(bundle)]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == ["photos 1", "count 2"]
    assert "1 of them with a photo" in pdf_text(bundle / "delivery.pdf")
    # The details file carries the photo record; decrypt writes its details like any other.
    details = tmp_path / "details.bin"
    assert runner.invoke(args=["export-details", petition.slug, str(details)]).exit_code == 0


def test_a_required_photo_is_asked_for_and_a_consent_chosen(
    app: Flask, client: FlaskClient
) -> None:
    petition = photo_petition(app, "required")
    answer = sign_with_photo(client, petition.slug, None, identifier="012 345 678")
    assert answer.status_code == 400
    assert "Please add your photo" in answer.get_data(as_text=True)
    answer = sign_with_photo(
        client, petition.slug, files.jpeg(), consent="", identifier="012 345 678"
    )
    assert answer.status_code == 400
    assert "Please choose where your photo may be shown." in answer.get_data(as_text=True)
    answer = sign_with_photo(
        client, petition.slug, files.jpeg(), consent="everywhere", identifier="012 345 678"
    )
    assert answer.status_code == 400
    assert stored(app) == 0


def test_a_petition_without_photos_refuses_files(app: Flask, client: FlaskClient) -> None:
    petition = add_petition(app)
    page = client.get(f"/en/p/{petition.slug}").get_data(as_text=True)
    assert 'type="file"' not in page and "multipart" not in page
    answer = sign_with_photo(client, petition.slug, files.jpeg(), identifier="012 345 678")
    assert answer.status_code in (400, 413)
    assert stored(app) == 0


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused_and_leave_nothing(
    name: str, app: Flask, client: FlaskClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    petition = photo_petition(app, "required")
    make, _reason = HOSTILE[name]
    # Every temporary file goes here, where the test can see it (none may be made).
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    before = sorted(os.listdir(Path(app.instance_path)))
    answer = sign_with_photo(client, petition.slug, make(), identifier="012 345 678")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400, page
    assert 'id="e-photo"' in page and 'aria-invalid="true" aria-describedby="e-photo"' in page
    assert stored(app) == 0
    assert sorted(os.listdir(Path(app.instance_path))) == before
    assert not list(spool.iterdir())
    km = sign_with_photo(client, petition.slug, make(), lang="km", identifier="012 345 678")
    assert km.status_code == 400 and 'id="e-photo"' in km.get_data(as_text=True)


def test_a_photo_over_the_cap_is_told_so(app: Flask, client: FlaskClient) -> None:
    petition = photo_petition(app)
    big = files.jpeg() + bytes(10 * 1024 * 1024)
    answer = sign_with_photo(client, petition.slug, big, identifier="012 345 678")
    assert answer.status_code == 400
    assert "This photo is too large: at most 10 MB." in answer.get_data(as_text=True)
    far = files.jpeg() + bytes(12 * 1024 * 1024)
    refused = sign_with_photo(client, petition.slug, far, identifier="012 345 678")
    assert refused.status_code == 413 and "choose a smaller photo" in refused.get_data(as_text=True)
    assert stored(app) == 0


def test_photo_settings(app: Flask) -> None:
    with app.app_context():
        session = get_session()
        with pytest.raises(ValueError, match="email verification"):
            create_petition(
                session,
                vault=services(app).vault,
                origin=ORIGIN,
                slug="both",
                texts={"en": {"title": "T", "body": "B"}},
                goal=10,
                identifier_mode="email",
                verification_mode="email",
                details_public_key=bytes(32),
                argon2=CHEAP_ARGON2,
                photos="optional",
            )
        session.rollback()
    draft = add_petition(app, slug="later", status="draft")
    with app.app_context():
        session = get_session()
        row = get_petition(session, draft.slug)
        assert row.custody().version == 1
        set_photos(row, "required")
        # Photo records are version 2: a single key becomes 1 of 1.
        assert row.custody().version == 2 and row.custody().threshold == 1
        with pytest.raises(ValueError, match="photos must be one of"):
            set_photos(row, "sometimes")
        session.commit()


def test_two_of_three_organisations_extract_the_photos(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    machines = make_machines(tmp_path / "machines")
    status, output = create(app, "faces", machines, "--threshold", "2", "--photos", "required")
    assert status == 0 and "photo pledges required" in output, output
    assert runner.invoke(args=["petition", "open", "faces"]).exit_code == 0
    sent = {"public": files.camera_jpeg(), "recipient": files.png_with_text()}
    sent["counted"] = files.heic_with_metadata()
    for i, (consent, photo) in enumerate(sent.items()):
        answer = sign_with_photo(
            client, "faces", photo, consent=consent, identifier=f"012 555 00{i}", name=f"N{i}"
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
    seal(app)
    bundle, details = tmp_path / "bundle", tmp_path / "details.bin"
    with app.app_context():
        close_petition(get_session(), get_petition(get_session(), "faces"))
        get_session().commit()
    export(runner, "faces", bundle)
    assert runner.invoke(args=["export-details", "faces", str(details)]).exit_code == 0
    coalition = Coalition(slug="faces", machines=machines, work=tmp_path)
    first, third = open_shares(coalition, 1), open_shares(coalition, 3)
    out = tmp_path / "photos"
    capsys.readouterr()
    assert audit(
        ["photos", "extract", str(first), str(third), "--details", str(details),
         "--bundle", str(bundle), "--out", str(out)]
    ) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert "extracted 3 photos" in said and "1 for the public banner" in said
    table = (out / "photos.csv").read_text().splitlines()
    assert table[0] == "index,consent,file" and len(table) == 4
    consents = sorted(line.split(",")[1] for line in table[1:])
    assert consents == ["counted", "public", "recipient"]
    for line in table[1:]:
        index, _consent, name = line.split(",")
        photo = out / name
        assert name == f"{int(index):08d}.jpg" and photo.stat().st_mode & 0o777 == 0o600
        assert {key.split(":")[0] for key in exiftool_groups(photo)} <= PLAIN_GROUPS
    # The CSV of details still opens the same records, details only.
    status, csv_file = combine(tmp_path / "table", details, [first, third])
    assert status == 0 and "N1" in csv_file.read_text()
    # One organisation alone: a named error, and no folder.
    lonely = tmp_path / "alone"
    assert (
        audit(["photos", "extract", str(first), "--details", str(details), "--out", str(lonely)])
        == 1
    )
    assert "1 more is missing" in capsys.readouterr().err
    assert not lonely.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]

    # The banners: the public one shows the photos allowed in public, the recipient's those
    # too; the index page ties every tile to its leaf.
    table_rows = [line.split(",") for line in table[1:]]
    leaf_of = {consent: int(index) for index, consent, _name in table_rows}
    for audience, shown in (("public", ["public"]), ("recipient", ["public", "recipient"])):
        pdf = tmp_path / f"{audience}.pdf"
        assert audit(
            ["banner", "--photos", str(out), "--bundle", str(bundle), "--out", str(pdf),
             "--audience", audience, "--width-cm", "60", "--height-cm", "40", "--dpi", "50"]
        ) == 0  # fmt: skip
        assert f"{len(shown)} photos for the {audience} banner" in capsys.readouterr().out
        assert pdf_images(pdf) == len(shown)
        index = " ".join(pdf_text(pdf).split())
        for number, consent in enumerate(sorted(shown, key=leaf_of.get), start=1):
            row = rf"\b{number} \d+ \d+ {leaf_of[consent]} {consent}\b"
            assert re.search(row, index), (row, index)
        assert "3 signatures" in index and "counted" not in index.split("Faces blurred")[1]
    # With --blur-faces, the recipient-only photo joins the public banner, blurred, and is
    # listed for review (the test's photos have no face: marked for a closer look).
    blurred = tmp_path / "blurred.pdf"
    assert audit(
        ["banner", "--photos", str(out), "--bundle", str(bundle), "--out", str(blurred),
         "--width-cm", "60", "--height-cm", "40", "--dpi", "50", "--blur-faces"]
    ) == 0  # fmt: skip
    assert pdf_images(blurred) == 2
    review = (tmp_path / "blurred.pdf.review.csv").read_text().splitlines()
    assert review == [
        "tile,leaf,faces_blurred,check",
        f"{1 + (leaf_of['public'] < leaf_of['recipient'])},{leaf_of['recipient']},0,"
        "no face found: look at it before printing",
    ]
    # Photos said to be of a leaf that is no photo pledge (here the header) are refused.
    (out / "photos.csv").write_text("index,consent,file\r\n0,public,00000001.jpg\r\n")
    (out / "00000001.jpg").write_bytes(files.jpeg())
    wrong = tmp_path / "wrong.pdf"
    assert (
        audit(["banner", "--photos", str(out), "--bundle", str(bundle), "--out", str(wrong)]) == 1
    )
    assert "no photo pledge at that leaf" in capsys.readouterr().err and not wrong.exists()


def pdf_images(pdf: Path) -> int:
    """How many images the PDF embeds (poppler's pdfimages)."""
    pdfimages = require_program("pdfimages", "apt-get install poppler-utils")
    listed = subprocess.run(
        [pdfimages, "-list", str(pdf)], capture_output=True, check=True, text=True
    )
    return len(listed.stdout.splitlines()) - 2
