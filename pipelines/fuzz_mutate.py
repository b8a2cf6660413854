"""Seeded mutations of wire messages for ``edgeloop bench fuzz``: one valid template in, one hostile payload out.

JSON messages get field-level mutations (wrong types, NaN/Inf, huge numbers, other endpoints' ids, extreme
lengths, deep nesting) or byte-level ones (bit flips, truncation). Binary messages (frame, model_data,
split_request: magic, uint32 header length, JSON header, body) also get a lying header length, a header
mutated with the body's size and hash kept consistent, and a body corrupted under a re-computed hash.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from typing import Callable

OTHER_IDS = ("cam-2", "", "x" * 65, "../cam-1", "cam_2026-11-30T07:55:00.123Z", "cam-1/frame", "+", "#", "ca\u00efm")
WRONG_TYPES: tuple[object, ...] = (None, [], {}, "string", True, -1, 0, 1.5, [1, 2], {"v": 1})
NON_FINITE = (float("nan"), float("inf"), float("-inf"))
HUGE_NUMBERS = (2**31, 2**63, 2**64 + 1, 10**30, -(2**63), 1e308, -1e308, 10**400)
EXTREME_LENGTHS = (0, 65, 129, 4096, 300_000, 1_100_000)  # the last two pass the header / JSON size limits


def binary_parts(message: bytes) -> tuple[bytes, dict, bytes]:
    """Magic, JSON header and body of a binary message."""
    (head_len,) = struct.unpack(">I", message[4:8])
    return message[:4], json.loads(message[8 : 8 + head_len]), message[8 + head_len :]


def pack(magic: bytes, header: dict | bytes, body: bytes) -> bytes:
    head = header if isinstance(header, bytes) else dumps(header)
    return magic + struct.pack(">I", len(head)) + head + body


def dumps(obj: object) -> bytes:
    # allow_nan: NaN and Infinity go out as the bare tokens Python's json (and a careless client) writes
    return json.dumps(obj, allow_nan=True).encode("utf-8")


class Mutator:
    """Makes mutants of templates; every choice comes from one seeded RNG, so a run is reproducible."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.counts: dict[str, int] = {}

    def json(self, template: dict) -> bytes:
        """A mutant of a JSON message."""
        kind, mutate = self.rng.choice(self._json_mutations())
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return mutate(template)

    def binary(self, message: bytes, size_field: str, hash_field: str | None) -> bytes:
        """A mutant of a binary message whose header names its body's size (and sha256) in these fields."""
        magic, header, body = binary_parts(message)
        choices: list[tuple[str, Callable[[], bytes]]] = [
            ("bit_flip", lambda: self._flip(message)),
            ("truncate", lambda: message[: self.rng.randrange(len(message))]),
            ("header_field", lambda: pack(magic, self.json(header), body)),
            ("declared_length", lambda: magic + struct.pack(">I", self.rng.choice(
                (0, 7, len(message), 2**31, 2**32 - 1, 256 * 1024 + 1))) + message[8:]),
            ("huge_declared_size", lambda: pack(magic, {**header, size_field: self.rng.choice(HUGE_NUMBERS)}, body)),
            ("body_rehashed", lambda: self._rehashed(magic, header, self._flip(body), size_field, hash_field)),
            ("body_truncated_rehashed", lambda: self._rehashed(
                magic, header, body[: self.rng.randrange(max(1, len(body)))], size_field, hash_field)),
            ("body_garbage_rehashed", lambda: self._rehashed(
                magic, header, self.rng.randbytes(self.rng.choice((1, 100, 5000))), size_field, hash_field)),
            ("wrong_magic", lambda: self.rng.choice((b"ELF1", b"\x00\x00\x00\x00", b"{\"v\"")) + message[4:]),
            ("empty", lambda: self.rng.choice((b"", magic, magic + b"\x00\x00"))),
            ("deep_nesting", lambda: pack(magic, b"[" * 100_000, body)),
        ]
        kind, mutate = self.rng.choice(choices)
        self.counts[f"bin:{kind}"] = self.counts.get(f"bin:{kind}", 0) + 1
        return mutate()

    def _rehashed(self, magic: bytes, header: dict, body: bytes, size_field: str, hash_field: str | None) -> bytes:
        # size and hash made to fit, so the receiver's deeper checks (JPEG decode, delta, codec) see the bytes
        fitted = {**header, size_field: len(body)}
        if hash_field:
            fitted[hash_field] = hashlib.sha256(body).hexdigest()
        return pack(magic, fitted, body)

    def _flip(self, data: bytes) -> bytes:
        if not data:
            return b"\x00"
        out = bytearray(data)
        for _ in range(self.rng.choice((1, 1, 2, 8, 64))):
            i = self.rng.randrange(len(out))
            out[i] ^= 1 << self.rng.randrange(8)
        return bytes(out)

    def _json_mutations(self) -> list[tuple[str, Callable[[dict], bytes]]]:
        return [
            ("bit_flip", lambda t: self._flip(dumps(t))),
            ("truncate", lambda t: (lambda b: b[: self.rng.randrange(len(b))])(dumps(t))),
            ("wrong_type", lambda t: self._set_field(t, self.rng.choice(WRONG_TYPES))),
            ("non_finite", lambda t: self._set_field(t, self.rng.choice(NON_FINITE))),
            ("huge_number", lambda t: self._set_field(t, self.rng.choice(HUGE_NUMBERS))),
            ("other_id", lambda t: dumps({**t, "endpoint_id": self.rng.choice(OTHER_IDS)})),
            ("extreme_length", lambda t: self._set_field(t, "x" * self.rng.choice(EXTREME_LENGTHS))),
            ("missing_field", lambda t: dumps(self._without_field(t))),
            ("extra_field", lambda t: dumps({**t, "surplus": 1})),
            ("wrong_version", lambda t: dumps({**t, "v": self.rng.choice((0, 2, "1", None))})),
            ("wrong_kind", lambda t: dumps({**t, "kind": self.rng.choice(("frame", "plan", "ack", "status", "x"))})),
            ("not_an_object", lambda t: dumps(self.rng.choice(([t], "text", 1, None, [])))),
            ("deep_nesting", lambda t: b'{"v": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
            ("not_utf8", lambda t: b"\xff\xfe" + dumps(t)),
        ]

    def _set_field(self, template: dict, value: object) -> bytes:
        key = self.rng.choice(sorted(template))
        return dumps({**template, key: value})

    def _without_field(self, template: dict) -> dict:
        key = self.rng.choice(sorted(template))
        return {k: v for k, v in template.items() if k != key}


def small_jpeg(seed: int, width: int = 96, height: int = 72) -> bytes:
    """A small real JPEG (smooth noise, so it is not all one colour)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8), (width, height))
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A tiny valid JPEG whose SOF0 header is patched to claim ``width`` x ``height`` (a decompression bomb)."""
    data = bytearray(small_jpeg(0, 8, 8))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)
