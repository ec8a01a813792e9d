"""The photo pipeline (service/signing/photos.py) against real metadata readers: whatever a
phone or camera put in the file, exiftool and mat2 find none of it in the result; hostile
files are refused with a reason; nothing is written to disk."""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import werkzeug.formparser
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import EnvironBuilder, stream_encode_multipart

from samleng.service.signing.photos import MAX_SIDE, PhotoLimits, PhotoRefused, clean_photo
from samleng.service.web.uploads import InMemoryRequest, read_upload
from tests.components import require_program
from tests.service import photofiles as files

# What exiftool reports of any plain JPEG: the file itself, its JFIF header, derived values.
PLAIN_GROUPS = {"ExifTool", "System", "File", "JFIF", "Composite"}


def exiftool_groups(path: Path) -> dict[str, object]:
    exiftool = require_program("exiftool", "apt-get install libimage-exiftool-perl")
    out = subprocess.run(
        [exiftool, "-json", "-a", "-u", "-G1", "-b", str(path)],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    [tags] = json.loads(out)
    return {key: value for key, value in tags.items() if key != "SourceFile"}


def mat2_show(path: Path) -> str:
    mat2 = require_program("mat2", "apt-get install mat2")
    return subprocess.run(
        [mat2, "--show", str(path)], capture_output=True, check=True, text=True
    ).stdout


def with_thumbnail(data: bytes, other: Image.Image, tmp_path: Path) -> bytes:
    """``data`` with an EXIF thumbnail of ``other`` (an edited photo keeps its original's),
    written by exiftool itself."""
    exiftool = require_program("exiftool", "apt-get install libimage-exiftool-perl")
    photo, thumb = tmp_path / "edited.jpg", tmp_path / "thumb.jpg"
    photo.write_bytes(data)
    other.resize((160, 120)).save(thumb, "JPEG")
    subprocess.run(
        [exiftool, "-q", "-overwrite_original", f"-ThumbnailImage<={thumb}", str(photo)],
        check=True,
    )
    assert "IFD1:ThumbnailImage" in exiftool_groups(photo)
    return photo.read_bytes()


SOURCES: dict[str, Callable[[], bytes]] = {
    "jpeg-exif-gps-xmp-iptc-icc-makernotes": files.camera_jpeg,
    "mpo-second-frame": files.mpo,
    "png-text-chunks-exif-icc": files.png_with_text,
    "webp-exif-xmp-icc": files.webp_with_metadata,
    "heic-exif-xmp": files.heic_with_metadata,
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_nothing_but_the_pixels_comes_out(name: str, tmp_path: Path) -> None:
    source = tmp_path / f"source-{name}"
    source.write_bytes(SOURCES[name]())
    planted = {key.split(":")[0] for key in exiftool_groups(source)} - PLAIN_GROUPS
    assert planted, f"{name}: exiftool sees no metadata in the source"
    out = tmp_path / f"{name}.jpg"
    out.write_bytes(clean_photo(source.read_bytes()))
    tags = exiftool_groups(out)
    assert {key.split(":")[0] for key in tags} <= PLAIN_GROUPS, tags
    assert "No metadata found" in mat2_show(out)
    for secret in files.SECRETS:
        assert secret.encode() not in out.read_bytes()
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.size == (640, 480) and image.mode == "RGB"
        assert getattr(image, "n_frames", 1) == 1


def test_an_edited_photos_thumbnail_of_the_original_is_dropped(tmp_path: Path) -> None:
    original = files.picture(colour=(0, 160, 0))
    edited = with_thumbnail(files.camera_jpeg(), original, tmp_path)
    out = tmp_path / "out.jpg"
    out.write_bytes(clean_photo(edited))
    assert {key.split(":")[0] for key in exiftool_groups(out)} <= PLAIN_GROUPS
    assert "No metadata found" in mat2_show(out)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_exif_orientation_is_applied(orientation: int) -> None:
    # The white block is at the top left of the picture as seen; EXIF says how it was stored.
    stored = files.picture((400, 300))
    inverse = {
        2: [Image.Transpose.FLIP_LEFT_RIGHT],
        3: [Image.Transpose.ROTATE_180],
        4: [Image.Transpose.FLIP_TOP_BOTTOM],
        5: [Image.Transpose.TRANSPOSE],
        6: [Image.Transpose.ROTATE_90],
        7: [Image.Transpose.TRANSVERSE],
        8: [Image.Transpose.ROTATE_270],
    }
    for step in inverse.get(orientation, []):
        stored = stored.transpose(step)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, "JPEG", exif=exif, quality=95)
    with Image.open(io.BytesIO(clean_photo(out.getvalue()))) as image:
        assert image.size == (400, 300)
        assert image.getpixel((20, 20)) == pytest.approx((255, 255, 255), abs=12)
        assert image.getpixel((380, 280)) == pytest.approx((180, 40, 40), abs=12)


@pytest.mark.parametrize(
    ("source", "cleaned"),
    [
        ((6000, 4500), (MAX_SIDE, 1536)),  # decoded at half size, then scaled
        ((4032, 3024), (2016, 1512)),  # decoded at half size: already small enough
        ((1200, 900), (1200, 900)),  # never enlarged
    ],
)
def test_a_large_photo_is_scaled_to_at_most_2048_pixels(
    source: tuple[int, int], cleaned: tuple[int, int]
) -> None:
    data = files.jpeg(files.picture(source))
    with Image.open(io.BytesIO(clean_photo(data))) as image:
        assert image.size == cleaned
    png = io.BytesIO()
    files.picture(source).save(png, "PNG")
    with Image.open(io.BytesIO(clean_photo(png.getvalue()))) as image:
        assert max(image.size) == min(MAX_SIDE, max(source))


def test_transparency_is_flattened_on_white() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (32, 32), (0, 0, 0, 0)).save(out, "PNG")
    with Image.open(io.BytesIO(clean_photo(out.getvalue()))) as image:
        assert image.getpixel((16, 16)) == pytest.approx((255, 255, 255), abs=3)


HOSTILE: dict[str, tuple[Callable[[], bytes], str]] = {
    "truncated": (files.truncated, "damaged"),
    "zip-appended": (files.zip_appended, "extra"),
    "html-polyglot": (files.html_polyglot, "extra"),
    "zip-in-segment": (files.zip_in_segment, "extra"),
    "giant-dimensions": (files.giant_png, "dimensions"),
    "cmyk": (files.cmyk, "colour"),
    "16-bit": (files.sixteen_bit, "colour"),
    "animated": (files.animated_webp, "animated"),
    "icc-laden": (files.icc_laden, "extra"),
    "gif": (files.gif, "format"),
    "not-an-image": (lambda: b"%PDF-1.7\n", "format"),
    "empty": (lambda: b"", "format"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused_with_a_reason(name: str) -> None:
    make, reason = HOSTILE[name]
    with pytest.raises(PhotoRefused) as info:
        clean_photo(make())
    assert info.value.reason == reason


def test_the_size_cap() -> None:
    data = files.jpeg(files.picture((1200, 900)))
    with pytest.raises(PhotoRefused) as info:
        clean_photo(data, PhotoLimits(max_bytes=len(data) - 1))
    assert info.value.reason == "too-large"
    clean_photo(data, PhotoLimits(max_bytes=len(data)))
    with pytest.raises(PhotoRefused) as info:
        clean_photo(data, PhotoLimits(max_pixels=1200 * 900 - 1))
    assert info.value.reason == "dimensions"


def test_uploads_stay_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file part far over werkzeug's 500 KB spooling threshold is held in a BytesIO: no
    temporary file is ever made for it (werkzeug's spooling is made to fail here)."""

    def no_temporary_files(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("an upload was about to be spooled to disk")

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", no_temporary_files)
    monkeypatch.setattr(tempfile, "TemporaryFile", no_temporary_files)
    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", no_temporary_files)
    body = files.jpeg(files.picture((2400, 1800))) + bytes(2_000_000)
    # Encoded in memory here too (the test client would spool a body this large itself).
    stream, length, boundary = stream_encode_multipart(
        {"photo": FileStorage(io.BytesIO(body), "p.jpg", content_type="image/jpeg"), "name": "x"},
        threshold=1 << 30,
    )
    builder = EnvironBuilder(
        method="POST",
        input_stream=stream,
        content_length=length,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    request = InMemoryRequest(builder.get_environ())
    assert isinstance(request.files["photo"].stream, io.BytesIO)
    assert read_upload(request, "photo", 10 << 20) == body
    assert read_upload(request, "absent", 10) is None
    stream.close()
