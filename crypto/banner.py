"""The banner of photo pledges, made offline by the key holders: a print-ready PDF.

The photos ``photos extract`` wrote are laid out in a grid on one page of the banner's size
(say 500 x 200 cm), under a strip with the petition's title and its verified count; a second
page maps every tile to its leaf index, so that an auditor can tie each photo on the banner to
the log. Each photo is cropped to a square and scaled to its tile at the banner's resolution
one at a time, so memory holds one photo and the small tiles, never one giant image; WeasyPrint
lays out the page and embeds the tiles as JPEG.

Which photos: the signer's consent decides (docs/formats.md §10.3). A public banner shows the
photos whose consent is ``public``; with ``blur_faces``, also those whose consent is
``recipient``, with every face found blurred (crypto/faces.py), and listed for an organiser to
review. The recipient's banner shows ``public`` and ``recipient`` photos. A ``counted`` photo
is never shown.

Needs the ``banner`` extra: ``pip install 'samleng-audit[banner]'``.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from samleng.crypto.errors import Error

PHOTOS_CSV = "photos.csv"
AUDIENCES = ("public", "recipient")
CONSENTS = ("public", "recipient", "counted")
# The strip along the top, as a share of the banner's height: title and count.
_STRIP = 0.12
# Print sizes stay within what a PDF page may be (200 inches, 508 cm, a side).
MAX_SIDE_CM = 508.0


class BannerError(Error):
    """A banner that cannot be made: bad photos folder, sizes, or a missing extra."""


@dataclass(frozen=True, kw_only=True)
class BannerPhoto:
    """One photo of the folder ``photos extract`` wrote."""

    index: int
    consent: str
    path: Path


@dataclass(frozen=True, kw_only=True)
class Tile:
    """A photo's place on the banner: its number (printed on it), row and column."""

    number: int
    row: int
    column: int
    photo: BannerPhoto
    blurred: bool = False
    faces: int = 0


def read_photos(folder: Path) -> list[BannerPhoto]:
    """Read photos.csv strictly: ``index,consent,file`` rows, files inside ``folder``."""
    table = folder / PHOTOS_CSV
    try:
        rows = list(csv.reader(table.read_text(encoding="utf-8").splitlines()))
    except OSError as err:
        raise BannerError(f"{table}: cannot read it ({err.strerror})") from None
    if not rows or rows[0] != ["index", "consent", "file"]:
        raise BannerError(f"{table} is not the photos.csv that photos extract writes")
    photos = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 3 or not row[0].isdigit() or row[1] not in CONSENTS:
            raise BannerError(f"{table}, line {number}: not index,consent,file")
        path = folder / row[2]
        if path.parent != folder or not path.is_file():
            raise BannerError(f"{table}, line {number}: {row[2]} is not a file of {folder}")
        photos.append(BannerPhoto(index=int(row[0]), consent=row[1], path=path))
    return photos


def choose(
    photos: Sequence[BannerPhoto], audience: str, *, blur_faces: bool
) -> list[tuple[BannerPhoto, bool]]:
    """The photos the audience may see, each with whether its faces must be blurred."""
    if audience not in AUDIENCES:
        raise BannerError(f"the audience is one of {', '.join(AUDIENCES)}")
    chosen = []
    for photo in sorted(photos, key=lambda p: p.index):
        if photo.consent == "public":
            chosen.append((photo, False))
        elif photo.consent == "recipient" and audience == "recipient":
            chosen.append((photo, False))
        elif photo.consent == "recipient" and blur_faces:
            chosen.append((photo, True))
    return chosen


def grid(count: int, width: float, height: float) -> tuple[int, int, float]:
    """Columns, rows and the side of the largest square tiles that fit ``count`` photos in a
    ``width`` x ``height`` area."""
    best = (1, max(count, 1), 0.0)
    for columns in range(1, max(count, 1) + 1):
        rows = math.ceil(max(count, 1) / columns)
        side = min(width / columns, height / rows)
        if side > best[2]:
            best = (columns, rows, side)
    return best


@dataclass(frozen=True, kw_only=True)
class BannerSpec:
    """What the banner says and how large it is printed."""

    title_km: str
    title_en: str
    count: int
    origin: str
    width_cm: float
    height_cm: float
    dpi: int

    def __post_init__(self) -> None:
        for side in (self.width_cm, self.height_cm):
            if not 10 <= side <= MAX_SIDE_CM:
                raise BannerError(f"a banner's sides are 10 to {MAX_SIDE_CM:g} cm")
        if not 30 <= self.dpi <= 600:
            raise BannerError("the resolution is 30 to 600 dpi")


# Blurs the faces of a JPEG: returns the new JPEG and how many faces it found (crypto/faces.py).
Blur = Callable[[bytes], tuple[bytes, int]]


def _tile_jpeg(path: Path, pixels: int, blur: Blur | None) -> tuple[bytes, int]:
    """The photo cropped to a centred square of ``pixels`` a side, as JPEG; with ``blur``,
    its faces blurred first. Returns the JPEG and the number of faces blurred."""
    from PIL import Image, ImageOps

    data, faces = path.read_bytes(), 0
    if blur is not None:
        data, faces = blur(data)
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
        square = ImageOps.fit(image.convert("RGB"), (pixels, pixels), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    square.save(out, "JPEG", quality=88)
    return out.getvalue(), faces


def lay_out(
    chosen: Sequence[tuple[BannerPhoto, bool]],
    spec: BannerSpec,
    blur: Blur | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[bytes, list[Tile]]:
    """Render the banner PDF (the banner page, then the index); return it with its tiles."""
    try:
        import fontpkg
        from weasyprint import CSS, HTML
        from weasyprint.text.fonts import FontConfiguration
    except ImportError as err:  # the extra is not installed
        raise BannerError(
            f"the banner needs the banner extra (pip install 'samleng-audit[banner]'): {err}"
        ) from None
    if not chosen:
        raise BannerError("no photo may be shown on this banner (check the consents)")
    strip = spec.height_cm * _STRIP
    columns, rows, side = grid(len(chosen), spec.width_cm, spec.height_cm - strip)
    # The grid is centred in the space below the strip.
    left = (spec.width_cm - columns * side) / 2
    top = strip + (spec.height_cm - strip - rows * side) / 2
    pixels = max(16, round(side / 2.54 * spec.dpi))
    tiles, cells = [], []
    for number, (photo, blurred) in enumerate(chosen, start=1):
        jpeg, faces = _tile_jpeg(photo.path, pixels, blur if blurred else None)
        row, column = divmod(number - 1, columns)
        tiles.append(
            Tile(number=number, row=row + 1, column=column + 1, photo=photo, blurred=blurred,
                 faces=faces)
        )  # fmt: skip
        uri = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
        cells.append(
            f'<div class="tile" style="left:{left + column * side:.4f}cm;'
            f'top:{top + row * side:.4f}cm">'
            f'<img src="{uri}" alt=""><span>{number}</span></div>'
        )
        if on_progress is not None:
            on_progress(number, len(chosen))
    index_rows = "".join(
        f"<tr><td>{t.number}</td><td>{t.row}</td><td>{t.column}</td><td>{t.photo.index}</td>"
        f"<td>{t.photo.consent}</td><td>{'yes' if t.blurred else ''}</td></tr>"
        for t in tiles
    )
    title_km, title_en = html.escape(spec.title_km), html.escape(spec.title_en)
    shown = f"{len(tiles)} photo" + ("" if len(tiles) == 1 else "s")
    document = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"></head><body>
<section class="banner">
<div class="strip"><p lang="km">{title_km}</p><p>{title_en}</p>
<p class="count">{spec.count:,} signatures · {shown}</p></div>
{"".join(cells)}
</section>
<section class="index">
<h1>{title_en}</h1>
<p>{html.escape(spec.origin)}: {spec.count:,} signatures in the verified log. Each tile of the
banner carries its number; this table gives the leaf of the log each one comes from.</p>
<table><thead><tr><th>Tile</th><th>Row</th><th>Column</th><th>Leaf</th><th>Consent</th>
<th>Faces blurred</th></tr></thead><tbody>{index_rows}</tbody></table>
</section></body></html>"""
    font = fontpkg.path("Noto Sans Khmer", 400).resolve().as_uri()
    style = f"""
@font-face {{ font-family: "Banner"; src: url("{font}"); }}
@page banner {{ size: {spec.width_cm}cm {spec.height_cm}cm; margin: 0; }}
@page index {{ size: A4; margin: 2cm; }}
body {{ font-family: "Banner"; margin: 0; }}
.banner {{ page: banner; position: relative; width: {spec.width_cm}cm;
  height: {spec.height_cm}cm; overflow: hidden; }}
.strip {{ height: {strip:.4f}cm; text-align: center; font-size: {strip / 4:.3f}cm; }}
.strip p {{ margin: 0; line-height: 1.25; }}
.tile {{ position: absolute; width: {side:.4f}cm; height: {side:.4f}cm; }}
.tile img {{ width: 100%; height: 100%; display: block; }}
.tile span {{ position: absolute; left: 0; bottom: 0; background: #fff; color: #000;
  font-size: {max(side / 14, 0.3):.3f}cm; padding: 0 0.2em; }}
.index {{ page: index; break-before: page; font-size: 9pt; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #888; padding: 1px 6px; }}
"""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "No fonts configured in FontConfig")
        fonts = FontConfiguration()
        pdf = HTML(string=document).write_pdf(
            stylesheets=[CSS(string=style, font_config=fonts)], font_config=fonts
        )
    return bytes(pdf), tiles
