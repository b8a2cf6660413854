"""A JPEG's size from its marker segments, checking that the file is complete, without decoding any pixels.

Ingest used to decode every frame (scaled down, ~0.2 ms for 320x240): a tenth of its CPU per frame (issue 14).
Transport damage is already caught by the upload's sha256; what is left to catch is a file that is not a
whole JPEG (cut, no frame header, no scan data, bytes after the end), and that this walk finds. Scan data
cut short with an end marker appended still passes: only decoding tells, and no encoder writes that.
"""

from __future__ import annotations

import re

MAX_SEGMENTS = 4096  # a baseline JPEG has ~10, a progressive one a few dozen; bounds the walk on hostile input
# Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic); C4, C8 and CC are not frames.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_SOS, _EOI = 0xDA, 0xD9
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and restart markers carry no length
# Inside entropy-coded data FF is followed by 00 (a stuffed byte), D0-D7 (restart) or FF (fill); anything else ends it.
_SCAN_END = re.compile(rb"\xff(?![\x00\xd0-\xd7\xff])")
_FILL = re.compile(rb"\xff*")


class JpegLayoutError(ValueError):
    """The bytes are not one complete JPEG."""


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """Width and height from the frame header; JpegLayoutError unless SOI, frame header, scans, EOI are all there."""
    if not (jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9")):
        raise JpegLayoutError("missing JPEG start or end marker")
    end = len(jpeg) - 2  # where the final EOI starts
    pos, size, scans = 2, None, 0
    for _ in range(MAX_SEGMENTS):
        if pos >= end:  # reached the final EOI
            break
        if jpeg[pos] != 0xFF:
            raise JpegLayoutError(f"no marker at byte {pos}")
        if jpeg[pos + 1] == 0xFF:  # fill bytes before a marker: skipped in C, as a hostile run may be megabytes
            pos = max(pos, min(_FILL.match(jpeg, pos + 1).end() - 1, end - 2))
        marker = jpeg[pos + 1]
        if marker == _EOI:
            break
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > end:
            raise JpegLayoutError(f"segment {marker:02X} cut at byte {pos}")
        length = jpeg[pos + 2] << 8 | jpeg[pos + 3]
        body = pos + 4
        pos += 2 + length
        if length < 2 or pos > end:
            raise JpegLayoutError(f"segment {marker:02X} of {length} bytes runs past the end")
        if marker in _SOF_MARKERS:
            size = _frame_size(jpeg, body, length, size)
        elif marker == _SOS:
            if size is None:
                raise JpegLayoutError("scan before the frame header")
            if length < 6 or length != 6 + 2 * jpeg[body] or not 1 <= jpeg[body] <= 4:  # a scan has 1..4
                raise JpegLayoutError(f"scan header of {length} bytes does not fit its components")
            data_end = _SCAN_END.search(jpeg, pos).start()  # the final EOI always matches
            if data_end == pos:
                raise JpegLayoutError("empty scan")
            scans, pos = scans + 1, data_end
    else:
        raise JpegLayoutError(f"more than {MAX_SEGMENTS} segments")
    if pos != end:
        raise JpegLayoutError(f"{end - pos} bytes after the end marker")
    if size is None or not scans:
        raise JpegLayoutError("no frame header" if size is None else "no scan data")
    return size


def _frame_size(jpeg: bytes, body: int, length: int, seen: tuple[int, int] | None) -> tuple[int, int]:
    if seen is not None:
        raise JpegLayoutError("two frame headers")
    if length < 8 or length != 8 + 3 * jpeg[body + 5] or not jpeg[body + 5]:  # a frame of no component is no image
        raise JpegLayoutError(f"frame header of {length} bytes does not fit its components")
    height, width = jpeg[body + 1] << 8 | jpeg[body + 2], jpeg[body + 3] << 8 | jpeg[body + 4]
    if not width or not height:  # a height of 0 (set later by a DNL segment) is legal but no camera writes it
        raise JpegLayoutError(f"frame header says {width}x{height}")
    return width, height
