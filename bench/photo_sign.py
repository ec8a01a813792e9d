"""Photo pledges (issue 20): signing with a photo against plain signing, and the photo
pipeline's peak memory.

**Signing.** One app in this process on SQLite (the embedded default), two open petitions
with the default Argon2 parameters: ``plain`` (no photos) and ``photos`` (photos optional).
Each round signs ``--per-round`` times on each, alternating plain and photo rounds, through
the Flask test client (the whole request: form parsing, the pipeline, Argon2, sealing to the
epoch key, the write). The photo is a 12-megapixel phone JPEG (4032 x 3024) with camera EXIF.
Figures: signatures per second and CPU seconds per signature of each kind, and their ratios
within the run (photo ÷ plain). The sealer is not running: it is the same for both kinds but
the record's size.

**Pipeline memory.** For each source (the same JPEG, a 12-megapixel HEIC, a 24-megapixel PNG
and the largest file the default caps allow, a 40-megapixel PNG), a fresh Python process
imports the pipeline, notes its peak RSS (VmHWM), cleans the photo once and notes the peak
again; the difference is what one photo costs. The PNGs are smooth gradients (a noisy one that
large is over the 10 MB file cap). Several signing threads each take that much at once.

    .venv/bin/python bench/photo_sign.py [--rounds 4] [--per-round 6] [--no-record]
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, note, record

TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
# VmHWM, the peak RSS of this process's memory map (ru_maxrss would count the parent's,
# inherited through fork).
_MEMORY_PROBE = """
import re, sys
from samleng.service.signing.photos import clean_photo
def peak():
    status = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
data = open(sys.argv[1], "rb").read()
before = peak()
out = clean_photo(data)
print(before, peak(), len(data), len(out))
"""


def phone_photo(size: tuple[int, int] = (4032, 3024), fmt: str = "JPEG") -> bytes:
    """A photo like a phone's: noise over a gradient (so that a JPEG compresses like a real
    one; a PNG gets less noise, as a screenshot or an edited picture would)."""
    import pillow_heif
    from PIL import Image

    from tests.service.photofiles import camera_exif

    pillow_heif.register_heif_opener()
    base = Image.linear_gradient("L").resize(size).convert("RGB")
    noise = Image.effect_noise(size, 40).convert("RGB")
    image = base if fmt == "PNG" else Image.blend(base, noise, 0.35)
    out = io.BytesIO()
    if fmt == "PNG":
        image.save(out, fmt, compress_level=1)
    elif fmt == "HEIF":
        image.save(out, fmt, exif=camera_exif().tobytes(), quality=80)
    else:
        image.save(out, fmt, exif=camera_exif(), quality=90)
    return out.getvalue()


def signing(rounds: int, per_round: int) -> list[str]:
    """Alternate plain and photo rounds; return the figure lines."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import stream_encode_multipart

    import tests.conftest
    from samleng.crypto.tokens import DEFAULT_ARGON2
    from samleng.service.app import create_app
    from samleng.service.platform.context import services
    from samleng.service.platform.db import upgrade
    from tests.conftest import add_petition, make_config

    # The tests' petitions hash cheaply; these hash as deployed.
    tests.conftest.CHEAP_ARGON2 = DEFAULT_ARGON2
    tmp = Path(tempfile.mkdtemp(prefix="photo-bench-"))
    config = make_config(tmp, f"sqlite:///{tmp / 'bench.sqlite3'}", argon2=DEFAULT_ARGON2)
    app = create_app(config)
    upgrade(services(app).engine)
    add_petition(app, slug="plain")
    add_petition(app, slug="photos", photos="optional")
    client = app.test_client()
    photo = phone_photo()
    note(f"photo: {len(photo) / 1e6:.1f} MB, 4032 x 3024 JPEG with EXIF")
    counter = iter(range(10**6))

    def sign(slug: str) -> None:
        page = client.get(f"/en/p/{slug}").get_data(as_text=True)
        match = TOKEN.search(page)
        assert match, "no form token"
        fields: dict[str, object] = {
            "form_token": match.group(1),
            "consent": "yes",
            "identifier": f"012 {next(counter):06d}"[:11],
        }
        if slug == "photos":
            fields["photo"] = FileStorage(io.BytesIO(photo), "p.jpg", content_type="image/jpeg")
            fields["photo_consent"] = "public"
        body, length, boundary = stream_encode_multipart(fields, threshold=1 << 30)
        with body:
            answer = client.post(
                f"/en/p/{slug}/sign",
                input_stream=body,
                content_length=length,
                content_type=f"multipart/form-data; boundary={boundary}",
            )
        assert answer.status_code == 200, answer.status_code

    measured: dict[str, list[tuple[float, float]]] = {"plain": [], "photos": []}
    sign("plain")  # warm-up: imports, the first epoch, caches
    sign("photos")
    for number in range(rounds):
        for slug in ("plain", "photos") if number % 2 == 0 else ("photos", "plain"):
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(per_round):
                sign(slug)
            wall, used = time.perf_counter() - start, time.process_time() - cpu
            measured[slug].append((per_round / wall, used / per_round))
            each = used / per_round * 1e3
            note(f"round {number + 1} {slug}: {per_round / wall:.2f}/s, {each:.0f} ms CPU each")
    rate = {k: statistics.median(r for r, _ in v) for k, v in measured.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in measured.items()}
    return [
        f"signing, {rounds} rounds of {per_round} each (medians; Argon2 t=2 m=19 MiB p=1, SQLite)",
        f"plain signature: {rate['plain']:.2f}/s, {cpu['plain'] * 1e3:.0f} ms CPU",
        f"photo pledge (12 MP JPEG): {rate['photos']:.2f}/s, {cpu['photos'] * 1e3:.0f} ms CPU",
        f"throughput ratio photo/plain: {rate['photos'] / rate['plain']:.2f}",
        f"CPU ratio plain/photo: {cpu['plain'] / cpu['photos']:.2f}",
    ]


def memory() -> list[str]:
    """Peak RSS of one photo through the pipeline, per source format."""
    lines = ["pipeline peak memory (one photo, a fresh process each; RSS growth over the imports)"]
    sources = {
        "12 MP JPEG (4032 x 3024)": phone_photo(),
        "12 MP HEIC (4032 x 3024)": phone_photo(fmt="HEIF"),
        "24 MP PNG (6000 x 4000)": phone_photo((6000, 4000), "PNG"),
        "40 MP PNG (7300 x 5470), the pixel cap": phone_photo((7300, 5470), "PNG"),
    }
    with tempfile.TemporaryDirectory() as folder:
        for name, data in sources.items():
            path = Path(folder) / "photo"
            path.write_bytes(data)
            if len(data) > 10 * 1024 * 1024:
                lines.append(f"{name}: {len(data) / 1e6:.1f} MB, over the 10 MB file cap: refused")
                continue
            out = subprocess.run(
                [sys.executable, "-c", _MEMORY_PROBE, str(path)],
                capture_output=True, check=True, text=True, cwd=ROOT,
            ).stdout.split()  # fmt: skip
            before, after, size, cleaned = (int(x) for x in out)
            lines.append(
                f"{name}: file {size / 1e6:.1f} MB -> {cleaned / 1e3:.0f} KB JPEG; "
                f"peak RSS +{(after - before) / 1024:.0f} MiB (imports {before / 1024:.0f} MiB)"
            )
            note(lines[-1])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=6)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    lines = [machine(), *signing(args.rounds, args.per_round), *memory()]
    print("\n".join(lines))
    if not args.no_record:
        record("photo_sign.py", lines)


if __name__ == "__main__":
    main()
