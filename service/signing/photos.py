"""Photo pledges: a signer's photo made safe to keep, in memory only.

A photo says much about a person, and its file says more: GPS position, camera serial, the
time, thumbnails of the uncropped original, a second frame, editing history. The pipeline keeps
the pixels and nothing else: it checks the file's structure (a size cap, a known format, nothing
before or after the picture, no oversized colour profile), decodes the first frame under a
pixel cap, applies the EXIF orientation, copies the pixels into a **new** image (so nothing of
the original's info travels with it), scales it down to at most 2,048 pixels a side and encodes
it as a plain JPEG. Nothing touches the disk: the upload is read from memory
(service/web/uploads.py) and the result goes straight into the sealed record.

What no camera makes is refused with a reason the signer can act on (:class:`PhotoRefused`):
truncated files, data after the picture (a zip or an HTML page glued on), a document or script
hidden in a metadata segment, more pixels than the cap (a tiny file can declare huge
dimensions), animations, CMYK or more than 8 bits per channel, and colour profiles over
64 KiB. Ordinary camera metadata (EXIF with GPS, maker notes and thumbnails, XMP, IPTC, a
colour profile, an MPO's second frame, PNG text chunks) is accepted and dropped.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from flask_babel import LazyString, lazy_gettext

from samleng.service.platform.khmer import localized_number

if TYPE_CHECKING:
    from PIL import Image


@functools.cache
def _pillow() -> ModuleType:
    """Pillow, able to open HEIF, imported with the first photo: a worker that never takes
    one (most petitions have no photos) does not carry it and its decoders (about 12 MiB)."""
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    return Image


MAX_SIDE = 2048
DRAFT_SIDE = MAX_SIDE * 3 // 4
JPEG_QUALITY = 85
# The profiles cameras and phones embed are a few KiB; more is a place to hide things.
MAX_ICC_BYTES = 64 * 1024
# No legitimate photo declares sides this long; checked before anything is decoded.
MAX_DIMENSION = 20_000
# Strings that have no business in a photo's metadata segments: the start of a zip, a PDF, an
# HTML page or a script (a "polyglot" file that is also something else).
_SMUGGLED = (b"PK\x03\x04", b"%PDF-", b"<script", b"<html", b"<?php", b"<svg")
# Pixel modes taken (converted to RGB); CMYK, 16-bit and float modes are refused.
_ALLOWED_MODES = frozenset({"RGB", "RGBA", "L", "LA", "P", "PA", "1", "YCbCr"})


@dataclass(frozen=True, kw_only=True)
class PhotoLimits:
    """How large a photo may be: its file, and its decoded pixels."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000


class PhotoRefused(Exception):
    """A photo the pipeline does not take; ``reason`` names why (tests and logs never see the
    photo, only this), ``message`` says it to the signer in their language."""

    def __init__(self, reason: str, message: LazyString) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message


def _refused(reason: str, limits: PhotoLimits | None = None) -> PhotoRefused:
    messages = {
        "too-large": lambda: lazy_gettext(
            "This photo is too large: at most %(megabytes)s MB. Please send a smaller one.",
            megabytes=LazyString(localized_number, (limits or PhotoLimits()).max_bytes >> 20),
        ),
        "format": lambda: lazy_gettext(
            "This file is not a photo we can take. Please send a JPEG, PNG, WebP or HEIC photo."
        ),
        "damaged": lambda: lazy_gettext(
            "This photo is damaged or incomplete. Please take it again or send another one."
        ),
        "extra": lambda: lazy_gettext(
            "This file holds more than a photo. Please send the photo alone, as your camera "
            "saved it."
        ),
        "dimensions": lambda: lazy_gettext(
            "This photo has too many pixels. Please send a smaller one: a photo from a phone "
            "camera is fine."
        ),
        "animated": lambda: lazy_gettext("Please send a still photo, not an animation."),
        "colour": lambda: lazy_gettext(
            "This photo is in a colour format we cannot take (such as CMYK or 16 bits per "
            "channel). Please save it as an ordinary JPEG and send it again."
        ),
    }
    return PhotoRefused(reason, messages[reason]())


def _kind(data: bytes) -> str | None:
    """The photo's format from its first bytes, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim"):
        return "heif"
    return None


_FORMATS = {
    "jpeg": ["JPEG", "MPO"],
    "png": ["PNG"],
    "webp": ["WEBP"],
    "heif": ["HEIF"],
}


def _smuggles(segment: bytes) -> bool:
    lowered = segment.lower()
    return any(marker.lower() in lowered for marker in _SMUGGLED)


def _jpeg_end(data: bytes, start: int) -> int:
    """The offset just past the EOI marker of the JPEG that starts at ``start``, walking its
    segments; ``extra`` for a metadata segment that smuggles something, ``damaged`` for a
    broken structure."""
    at, icc = start + 2, 0
    while True:
        if at + 2 > len(data) or data[at] != 0xFF:
            raise _refused("damaged")
        marker = data[at + 1]
        if marker == 0xFF:  # fill bytes before a marker
            at += 1
            continue
        if marker == 0xD9:
            return at + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # restart markers, TEM: no length
            at += 2
            continue
        if at + 4 > len(data):
            raise _refused("damaged")
        (length,) = struct.unpack_from(">H", data, at + 2)
        if length < 2 or at + 2 + length > len(data):
            raise _refused("damaged")
        segment = data[at + 4 : at + 2 + length]
        if (0xE0 <= marker <= 0xEF or marker == 0xFE) and _smuggles(segment):
            raise _refused("extra")
        if marker == 0xE2 and segment.startswith(b"ICC_PROFILE\x00"):
            icc += len(segment)
            if icc > MAX_ICC_BYTES:
                raise _refused("extra")
        at += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
            while True:
                at = data.find(b"\xff", at)
                if at < 0 or at + 1 >= len(data):
                    raise _refused("damaged")
                following = data[at + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                    at += 1 if following == 0xFF else 2
                    continue
                break


def _check_jpeg(data: bytes) -> None:
    end = _jpeg_end(data, 0)
    # An MPO holds further JPEGs after the first (a phone's depth map or a second view):
    # they are walked the same way, and dropped with the rest.
    while data.startswith(b"\xff\xd8\xff", end):
        end = _jpeg_end(data, end)
    _check_tail(data, end)


def _check_png(data: bytes) -> None:
    at = 8
    while True:
        if at + 12 > len(data):
            raise _refused("damaged")
        length, kind = struct.unpack_from(">I4s", data, at)
        if at + 12 + length > len(data):
            raise _refused("damaged")
        body = data[at + 8 : at + 8 + length]
        if kind == b"IHDR" and (length < 13 or body[8] > 8):
            raise _refused("colour" if length >= 13 else "damaged")
        if kind == b"iCCP" and length > MAX_ICC_BYTES:
            raise _refused("extra")
        if kind not in (b"IDAT", b"IHDR", b"PLTE", b"IEND") and _smuggles(body):
            raise _refused("extra")
        at += 12 + length
        if kind == b"IEND":
            break
    _check_tail(data, at)


def _check_webp(data: bytes) -> None:
    if len(data) < 12:
        raise _refused("damaged")
    (size,) = struct.unpack_from("<I", data, 4)
    end = 8 + size + (size & 1)
    if end > len(data):
        raise _refused("damaged")
    at = 12
    while at + 8 <= end:
        kind, length = struct.unpack_from("<4sI", data, at)
        body = data[at + 8 : at + 8 + length]
        if kind == b"ICCP" and length > MAX_ICC_BYTES:
            raise _refused("extra")
        if kind in (b"EXIF", b"XMP ") and _smuggles(body):
            raise _refused("extra")
        at += 8 + length + (length & 1)
    _check_tail(data, end)


def _check_heif(data: bytes) -> None:
    at = 0
    while at < len(data):
        if at + 8 > len(data):
            raise _refused("damaged")
        size, _kind = struct.unpack_from(">I4s", data, at)
        if size == 1:
            if at + 16 > len(data):
                raise _refused("damaged")
            (size,) = struct.unpack_from(">Q", data, at + 8)
        elif size == 0:
            size = len(data) - at
        if size < 8 or at + size > len(data):
            # A box running past the end: the file is cut short, or something was glued on
            # whose bytes do not read as boxes.
            raise _refused("damaged" if at + size > len(data) else "extra")
        at += size


def _check_tail(data: bytes, end: int) -> None:
    """Nothing after the picture but padding zeros (some cameras pad their files)."""
    if data[end:].strip(b"\x00"):
        raise _refused("extra")


_CHECKS = {"jpeg": _check_jpeg, "png": _check_png, "webp": _check_webp, "heif": _check_heif}

# EXIF orientation -> the transposition that shows the picture upright (EXIF 2.32, tag 0x0112).
_ORIENT = {
    2: ("FLIP_LEFT_RIGHT",),
    3: ("ROTATE_180",),
    4: ("FLIP_TOP_BOTTOM",),
    5: ("TRANSPOSE",),
    6: ("ROTATE_270",),
    7: ("TRANSVERSE",),
    8: ("ROTATE_90",),
}


def _decode(data: bytes, kind: str, limits: PhotoLimits) -> tuple[Image.Image, int]:
    """The first frame's pixels as RGB, and its EXIF orientation."""
    pil = _pillow()
    with pil.open(io.BytesIO(data), formats=_FORMATS[kind]) as image:
        width, height = image.size
        if max(width, height) > MAX_DIMENSION or width * height > limits.max_pixels:
            raise _refused("dimensions")
        if getattr(image, "n_frames", 1) > 1 and image.format != "MPO":
            raise _refused("animated")
        if image.mode not in _ALLOWED_MODES:
            raise _refused("colour")
        try:
            orientation = int(image.getexif().get(0x0112, 1))
        except (ValueError, TypeError, SyntaxError, struct.error):
            orientation = 1  # an unreadable EXIF block is dropped like a readable one
        if image.format in ("JPEG", "MPO") and image.mode in ("RGB", "L"):
            # Let the JPEG decoder scale down by 2, 4 or 8 as far as the long side stays at
            # least 3/4 of MAX_SIDE: a quarter of the memory and time for a phone's 12 MP.
            scale = DRAFT_SIDE / max(width, height)
            image.draft(image.mode, (max(1, int(width * scale)), max(1, int(height * scale))))
        image.load()
        # Scaled down first, so that each copy below is of the small picture (a 40 MP PNG
        # is 120 MB of pixels once decoded; its copies would be as large).
        alpha = image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info
        picture = image.convert("RGBA") if image.mode in ("P", "PA", "1") or alpha else image
        picture.thumbnail((MAX_SIDE, MAX_SIDE), pil.Resampling.LANCZOS)
        # A new image made of the pixels alone: no info, EXIF, profile or palette carried over.
        clean = pil.new("RGB", picture.size, (255, 255, 255))
        if picture.mode in ("RGBA", "LA"):
            rgba = picture.convert("RGBA")
            clean.paste(rgba, mask=rgba.getchannel("A"))
        else:
            clean.paste(picture.convert("RGB") if picture.mode != "RGB" else picture)
        return clean, orientation


def clean_photo(data: bytes, limits: PhotoLimits | None = None) -> bytes:
    """Return ``data``'s picture as a new JPEG of at most 2,048 pixels a side, with nothing
    of the original file but its pixels. PhotoRefused when the file is not taken."""
    limits = limits or PhotoLimits()
    if len(data) > limits.max_bytes:
        raise _refused("too-large", limits)
    kind = _kind(data)
    if kind is None:
        raise _refused("format")
    _CHECKS[kind](data)
    pil = _pillow()
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check, stricter than its default, on top of ours.
            warnings.simplefilter("error", pil.DecompressionBombWarning)
            pixels, orientation = _decode(data, kind, limits)
    except PhotoRefused:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, MemoryError) as exc:
        # Truncated data, a broken stream, or a decoder's refusal: never a crash.
        raise _refused("damaged") from exc
    except (pil.DecompressionBombError, pil.DecompressionBombWarning) as exc:
        raise _refused("dimensions") from exc
    for step in _ORIENT.get(orientation, ()):
        pixels = pixels.transpose(getattr(pil.Transpose, step))
    out = io.BytesIO()
    pixels.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()
