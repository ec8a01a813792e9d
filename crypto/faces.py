"""Face blurring for photos whose signer did not allow them on the public banner.

Fully offline: OpenCV's Haar cascade for frontal faces, shipped inside the
opencv-python-headless 4.x wheel (nothing is downloaded at run time). A detector misses faces
(in profile, small, partly hidden, in poor light) and finds some that are not: every blurred
photo goes on the organisers' review list with the number of faces found, and a photo where
none was found is marked for a closer look. Needs the ``banner`` extra.
"""

from __future__ import annotations

from samleng.crypto.banner import BannerError

# How much larger than the detected box the blurred area is, on each side.
_MARGIN = 0.25


def blur_faces(jpeg: bytes) -> tuple[bytes, int]:
    """Return ``jpeg`` with every face the detector finds blurred past recognition (as
    JPEG), and how many it found."""
    try:
        import cv2
        import numpy as np
    except ImportError as err:
        raise BannerError(
            f"face blurring needs the banner extra (pip install 'samleng-audit[banner]'): {err}"
        ) from None
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise BannerError("a photo could not be decoded for face blurring")
    detector = cv2.CascadeClassifier(
        cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
    )
    if detector.empty():
        raise BannerError("OpenCV's face cascade is missing from this installation")
    gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    side = min(gray.shape[:2])
    faces = detector.detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=4, minSize=(max(side // 20, 20),) * 2
    )
    height, width = image.shape[:2]
    for x, y, w, h in faces:
        dx, dy = int(w * _MARGIN), int(h * _MARGIN)
        x0, y0 = max(x - dx, 0), max(y - dy, 0)
        x1, y1 = min(x + w + dx, width), min(y + h + dy, height)
        region = image[y0:y1, x0:x1]
        # Pixelate coarsely, then blur: nothing of the features survives either step.
        small = cv2.resize(region, (8, 8), interpolation=cv2.INTER_AREA)
        blocks = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        kernel = (max((x1 - x0) // 4, 1) | 1, max((y1 - y0) // 4, 1) | 1)
        image[y0:y1, x0:x1] = cv2.GaussianBlur(blocks, kernel, 0)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise BannerError("a blurred photo could not be encoded")
    return encoded.tobytes(), len(faces)
