"""Photo files for the tests, made here rather than kept as binaries: each carries the
metadata a phone or camera writes (or a hostile file's trick), with marker strings that must
never come out of the pipeline."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pillow_heif
from PIL import Image, ImageCms, PngImagePlugin

pillow_heif.register_heif_opener()

# Strings planted in metadata: none may appear in a cleaned photo.
SECRETS = ("SecretCam", "SN-4242", "MakerSecret", "xmp-secret", "iptc-secret", "png-secret")
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="xmp-secret"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def picture(
    size: tuple[int, int] = (640, 480), colour: tuple[int, int, int] = (180, 40, 40)
) -> Image.Image:
    """A picture with a feature that shows its orientation: a white block at the top left."""
    image = Image.new("RGB", size, colour)
    image.paste((255, 255, 255), (0, 0, size[0] // 4, size[1] // 4))
    return image


def camera_exif(orientation: int = 1) -> Image.Exif:
    """EXIF as a phone writes it: make, serial, GPS position, maker notes."""
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0112] = orientation
    exif[0x0132] = "2026:11:30 09:41:07"  # DateTime
    details = exif.get_ifd(0x8769)
    details[0xA431] = "SN-4242"  # BodySerialNumber
    details[0x927C] = b"MakerSecret\x00\x01\x02"  # MakerNote
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (11.0, 33.0, 36.5)
    gps[3], gps[4] = "E", (104.0, 55.0, 12.0)
    return exif


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _insert_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """Insert an APPn/COM segment just after SOI."""
    return jpeg[:2] + struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload + jpeg[2:]


def iptc_segment(text: str) -> bytes:
    """A Photoshop APP13 segment holding one IPTC keyword."""
    value = text.encode()
    record = b"\x1c\x02\x19" + struct.pack(">H", len(value)) + value
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(record)) + record
    if len(record) % 2:
        resource += b"\x00"
    return b"Photoshop 3.0\x00" + resource


def jpeg(image: Image.Image | None = None, **save: object) -> bytes:
    out = io.BytesIO()
    (image or picture()).save(out, "JPEG", quality=90, **save)
    return out.getvalue()


def camera_jpeg(orientation: int = 1) -> bytes:
    """A JPEG with EXIF (GPS, serial, maker notes), XMP, IPTC and an ICC profile."""
    data = jpeg(exif=camera_exif(orientation), icc_profile=srgb_profile())
    data = _insert_segment(data, 0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP)
    return _insert_segment(data, 0xED, iptc_segment("iptc-secret"))


def mpo() -> bytes:
    """An MPO: a first frame with EXIF, and a second frame (a phone's second view)."""
    out = io.BytesIO()
    first = picture()
    first.save(out, "MPO", save_all=True, append_images=[picture(colour=(0, 0, 255))],
               exif=camera_exif())  # fmt: skip
    return out.getvalue()


def png_with_text() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "png-secret")
    info.add_itxt("Author", "png-secret", lang="km")
    info.add_text("XML:com.adobe.xmp", XMP.decode())
    out = io.BytesIO()
    picture().save(out, "PNG", pnginfo=info, exif=camera_exif(), icc_profile=srgb_profile())
    return out.getvalue()


def webp_with_metadata() -> bytes:
    out = io.BytesIO()
    picture().save(out, "WEBP", exif=camera_exif(), xmp=XMP, icc_profile=srgb_profile())
    return out.getvalue()


def heic_with_metadata(orientation: int = 1) -> bytes:
    out = io.BytesIO()
    picture().save(out, "HEIF", exif=camera_exif(orientation).tobytes(), xmp=XMP)
    return out.getvalue()


# Hostile files.


def truncated() -> bytes:
    data = jpeg()
    return data[: len(data) * 2 // 3]


def zip_appended() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "hidden")
    return jpeg() + archive.getvalue()


def html_polyglot() -> bytes:
    return _insert_segment(jpeg(), 0xFE, b"<html><script>alert(1)</script></html>")


def zip_in_segment() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "x")
    return _insert_segment(jpeg(), 0xE9, archive.getvalue())


def giant_png() -> bytes:
    """A few hundred bytes declaring 19,000 x 19,000 pixels."""
    out = io.BytesIO()
    Image.new("L", (8, 8)).save(out, "PNG")
    data = bytearray(out.getvalue())
    struct.pack_into(">II", data, 16, 19_000, 19_000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def cmyk() -> bytes:
    return jpeg(Image.new("CMYK", (64, 64), (0, 255, 255, 0)))


def sixteen_bit() -> bytes:
    out = io.BytesIO()
    Image.new("I;16", (64, 64), 40000).save(out, "PNG")
    return out.getvalue()


def animated_webp() -> bytes:
    out = io.BytesIO()
    frames = [picture(colour=(i * 60, 0, 0)) for i in range(3)]
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


def icc_laden() -> bytes:
    return jpeg(icc_profile=srgb_profile() + bytes(200_000))


def gif() -> bytes:
    out = io.BytesIO()
    picture().save(out, "GIF")
    return out.getvalue()
