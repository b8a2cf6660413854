"""The feature codec: round trips within the quantization step, fewer bytes per bit, clear errors on bad blobs."""

import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from endpoint.wire.feature_codec import CodecError, CodecSpec, decode_tensors, encode_tensors, pack_bits, unpack_bits


def _features(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # SiLU-like activations: skewed, many near zero, a constant channel (step-0 edge case)
    a = rng.gamma(1.5, 0.7, (1, 16, 12, 12)).astype(np.float32) - 0.28
    a[0, 3] = 0.5
    b = rng.normal(0, 2, (1, 8, 6, 6)).astype(np.float32)
    return [a, b]


@pytest.mark.parametrize("name", ["fp32", "fp16-zlib", "q8c-zlib", "q8t-none", "q6c-zlib", "q5c-lzma", "q4c-zlib",
                                  "q4t-lzma", "q3c-none", "q2c-zlib"])
def test_round_trip_error_within_half_a_step(name):
    spec = CodecSpec.parse(name)
    assert spec.name == name.replace("-none", "")
    feats = _features()
    decoded = decode_tensors(encode_tensors(feats, spec))
    assert [d.shape for d in decoded] == [f.shape for f in feats]
    for f, d in zip(feats, decoded):
        span = f.max() - f.min()
        bound = 0 if spec.bits == 32 else 2e-3 * np.abs(f).max() if spec.bits == 16 else \
            span / ((1 << spec.bits) - 1) / 2 + 1e-6
        assert np.abs(f - d).max() <= bound
    if spec.granularity == "channel" and spec.bits not in (16,):
        assert np.array_equal(decoded[0][0, 3], feats[0][0, 3])  # a constant channel decodes exactly


def test_fewer_bits_give_fewer_bytes():
    feats = _features()
    sizes = {b: len(encode_tensors(feats, CodecSpec(b, "channel", "zlib"))) for b in (8, 6, 4, 2)}
    raw = sum(f.nbytes for f in feats)
    assert sizes[8] < raw / 3  # 8 bits + entropy coding: well under a quarter of float32
    assert sizes[8] > sizes[6] > sizes[4] > sizes[2]


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 7, 8])
def test_pack_bits_round_trip(bits):
    symbols = np.random.default_rng(bits).integers(0, 1 << bits, 101).astype(np.uint8)
    assert np.array_equal(unpack_bits(pack_bits(symbols, bits), bits, len(symbols)), symbols)


def test_malformed_blobs_raise_codec_error():
    blob = encode_tensors(_features(), CodecSpec.parse("q8c-zlib"))
    with pytest.raises(CodecError, match="shorter than the codec header"):
        decode_tensors(blob[:5])
    with pytest.raises(CodecError, match="not a feature blob"):
        decode_tensors(b"JUNK" + blob[4:])
    with pytest.raises(CodecError, match="truncated"):
        decode_tensors(blob[:-10])
    with pytest.raises(CodecError, match="truncated header"):
        decode_tensors(blob[:20])
    bad_bits = bytearray(blob)
    bad_bits[5] = 9  # the bits byte
    with pytest.raises(CodecError, match="bits"):
        decode_tensors(bytes(bad_bits))
    corrupt = bytearray(blob)
    corrupt[-20:] = b"\x00" * 20  # the zlib stream's tail
    with pytest.raises(CodecError):
        decode_tensors(bytes(corrupt))
    # a header that claims a bigger tensor than the body holds
    fixed = 4 + 5
    bigger = bytearray(blob)
    struct.pack_into(">I", bigger, fixed + 1 + 4, 999)
    with pytest.raises(CodecError):
        decode_tensors(bytes(bigger))


def test_unknown_codec_name_is_refused():
    with pytest.raises(ValueError, match="not a codec name"):
        CodecSpec.parse("q9x-gzip")
    with pytest.raises(ValueError, match="bits must be one of"):
        CodecSpec(1)


def _bomb(declared_shape, inflated_bytes: int) -> bytes:
    """A well-formed q8t-zlib header declaring ``declared_shape`` whose body inflates to ``inflated_bytes`` zeros."""
    good = encode_tensors([np.zeros(declared_shape, np.float32)], CodecSpec.parse("q8t-zlib"))
    header = good[: len(good) - 4 - len(_body_of(good))]
    body = _zeros_zlib(inflated_bytes)
    return header + struct.pack(">I", len(body)) + body


def _body_of(blob: bytes) -> bytes:
    # q8t: fixed header, ndim + dims, one low and one step, then the body length and the body
    ndim = blob[9]
    pos = 9 + 1 + 4 * ndim + 8
    (n,) = struct.unpack_from(">I", blob, pos)
    return blob[pos + 4 : pos + 4 + n]


def _zeros_zlib(size: int) -> bytes:
    compressor, chunk = zlib.compressobj(9), b"\0" * (1 << 20)
    parts = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join(parts) + compressor.flush()


def test_a_declared_shape_other_than_the_expected_one_is_refused_before_inflating():
    bomb = encode_tensors([np.zeros((1, 64, 400, 400), np.float32)], CodecSpec.parse("q8c-zlib"))
    assert len(bomb) < 64 * 1024  # 10 MB of symbols in a few KB
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match=r"^tensor 0 has shape \(1, 64, 400, 400\), the split expects"):
            decode_tensors(bomb, expected_shapes=[(1, 64, 20, 20)])
        with pytest.raises(CodecError, match="tensors, the split expects 2"):
            decode_tensors(bomb, expected_shapes=[(1, 64, 20, 20), (1, 8, 10, 10)])
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_bytes < 1024 * 1024
    ok = _features()
    blob = encode_tensors(ok, CodecSpec.parse("q8c-zlib"))
    assert [d.shape for d in decode_tensors(blob, expected_shapes=[f.shape for f in ok])] == [f.shape for f in ok]


def test_a_body_that_inflates_past_its_declared_shape_is_refused_with_bounded_memory():
    bomb = _bomb((1, 4, 8, 8), 100 * 1024 * 1024)  # declares 256 symbols, inflates to 100 MB
    assert len(bomb) < 200 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(CodecError):
            decode_tensors(bomb)  # without expected shapes the header's own shapes bound the inflation
        peak_bytes = tracemalloc.get_traced_memory()[1]
        assert peak_bytes < 1024 * 1024, f"decoding the bomb allocated {peak_bytes} bytes"
        with pytest.raises(CodecError, match="inflates past"):
            decode_tensors(bomb, expected_shapes=[(1, 4, 8, 8)])
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_bytes < 1024 * 1024, f"decoding the bomb allocated {peak_bytes} bytes"


def test_a_header_declaring_more_than_the_decode_cap_is_refused():
    huge = bytearray(encode_tensors([np.zeros((1, 2, 4, 4), np.float32)], CodecSpec.parse("q8t-zlib")))
    struct.pack_into(">I", huge, 4 + 5 + 1 + 8, 60000)  # (1, 2, 60000, 4)
    struct.pack_into(">I", huge, 4 + 5 + 1 + 12, 60000)  # (1, 2, 60000, 60000): 29 GB of float32
    with pytest.raises(CodecError, match="decoded bytes, more than"):
        decode_tensors(bytes(huge))
