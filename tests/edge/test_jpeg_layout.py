"""The JPEG layout walk: the size of every JPEG our encoders write, and a clear refusal of anything incomplete."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from edge.frame_checks import MAX_JPEG_PIXELS, FrameRejected, check_jpeg
from edge.jpeg_layout import MAX_SEGMENTS, JpegLayoutError, jpeg_size


def _pixels(width: int = 64, height: int = 40) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 255, (height, width, 3), dtype=np.uint8)


def _pil(**options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_pixels()).save(buf, "JPEG", **options)
    return buf.getvalue()


def _cv2(*params: int) -> bytes:
    return cv2.imencode(".jpg", _pixels(), list(params))[1].tobytes()


GOOD = {
    "cv2 baseline": lambda: _cv2(cv2.IMWRITE_JPEG_QUALITY, 85),
    "cv2 restart markers": lambda: _cv2(cv2.IMWRITE_JPEG_RST_INTERVAL, 1),
    "cv2 progressive": lambda: _cv2(cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    "pil with exif and comment": lambda: _pil(quality=70, exif=Image.Exif(), comment=b"cam 7"),
    "pil progressive, 4:2:0": lambda: _pil(progressive=True, subsampling=2),
    "pil grayscale": lambda: (lambda b: (Image.fromarray(_pixels()[:, :, 0]).save(b, "JPEG"), b.getvalue())[1])(
        io.BytesIO()),
}


@pytest.mark.parametrize("name", list(GOOD))
def test_every_encoders_jpeg_gives_its_size(name):
    jpeg = GOOD[name]()
    assert jpeg_size(jpeg) == (64, 40) == Image.open(io.BytesIO(jpeg)).size


def _bad() -> dict[str, bytes]:
    jpeg = _cv2()
    sos = jpeg.index(b"\xff\xda")
    sof = jpeg.index(b"\xff\xc0")
    return {
        "cut in half": jpeg[: len(jpeg) // 2],
        "headers only": jpeg[:sos] + b"\xff\xd9",
        "empty scan": jpeg[: sos + 2 + int.from_bytes(jpeg[sos + 2 : sos + 4], "big")] + b"\xff\xd9",
        "no frame header": jpeg[:sof] + jpeg[sof + 2 + int.from_bytes(jpeg[sof + 2 : sof + 4], "big"):],
        "bytes after the end": jpeg + b"trailing junk\xff\xd9",
        "two images": jpeg + jpeg,
        "zero width": jpeg[: sof + 7] + b"\x00\x00" + jpeg[sof + 9 :],
        "segment longer than the file": jpeg[:2] + b"\xff\xe0\xff\xff" + jpeg[6:],
        "not a marker": jpeg[:2] + b"\x00" + jpeg[3:],
        # every length agrees, but a header naming no component describes no pixels (nothing decodes it)
        "frame of no component": _no_components(jpeg),
    }


def _no_components(jpeg: bytes) -> bytes:
    sof, sos = jpeg.index(b"\xff\xc0"), jpeg.index(b"\xff\xda")
    sof_end, sos_end = (at + 2 + int.from_bytes(jpeg[at + 2 : at + 4], "big") for at in (sof, sos))
    frame = b"\xff\xc0\x00\x08" + jpeg[sof + 4 : sof + 9] + b"\x00"
    return jpeg[:sof] + frame + jpeg[sof_end:sos] + b"\xff\xda\x00\x06\x00\x00\x3f\x00" + jpeg[sos_end:]


# Not caught: scan data cut short and an end marker appended (only decoding tells); the endpoint's encoder
# does not write that, and damage on the way is the sha256's to catch.
@pytest.mark.parametrize("name", list(_bad()))
def test_incomplete_or_extra_bytes_are_refused(name):
    with pytest.raises(JpegLayoutError):
        jpeg_size(_bad()[name])
    with pytest.raises(FrameRejected) as info:
        check_jpeg(_bad()[name])
    assert info.value.reason == "corrupt_jpeg"


def test_the_walk_is_bounded_on_endless_tiny_segments():
    jpeg = b"\xff\xd8" + b"\xff\xfe\x00\x02" * 2_000_000 + b"\xff\xd9"  # 8 MB of empty comments
    with pytest.raises(JpegLayoutError, match=f"more than {MAX_SEGMENTS} segments"):  # stops at the bound
        jpeg_size(jpeg)


def test_a_decompression_bomb_is_refused_by_its_header_alone():
    jpeg = _cv2()
    sof = jpeg.index(b"\xff\xc0")
    bomb = jpeg[: sof + 5] + (40_000).to_bytes(2, "big") + (40_000).to_bytes(2, "big") + jpeg[sof + 9 :]
    assert jpeg_size(bomb) == (40_000, 40_000)
    with pytest.raises(FrameRejected, match=f"exceeds {MAX_JPEG_PIXELS} pixels"):
        check_jpeg(bomb)


@pytest.mark.parametrize("fill_bytes", [1, 7, 1 << 20])
def test_fill_bytes_before_markers_are_skipped_however_many(fill_bytes):
    jpeg = _cv2()
    sos = jpeg.index(b"\xff\xda")
    padded = jpeg[:sos] + b"\xff" * fill_bytes + jpeg[sos:]  # fill before the scan header, as the standard allows
    assert jpeg_size(padded) == (64, 40)
    decoded = cv2.imdecode(np.frombuffer(padded, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape[:2] == (40, 64)


def test_a_file_of_fill_bytes_is_refused():
    with pytest.raises(JpegLayoutError):
        jpeg_size(b"\xff\xd8" + b"\xff" * (1 << 20) + b"\xff\xd9")
