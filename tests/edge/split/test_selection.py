"""Split selection on known numbers: the fastest option above the accuracy floor, and re-decisions on drift."""

import re

import pytest

from edge.split.selection import (SplitController, SplitOption, choose_split, load_options, predict_latency,
                                  save_options)

# reference-CPU ms, bytes per frame, accuracy: a device-only model, a JPEG upload, an early and a late cut
DEVICE = SplitOption("device", "", 22, device_ms=40.0, edge_ms=0.0, request_bytes=0, reply_bytes=0, map50=0.60,
                     map50_95=0.40)
EDGE = SplitOption("edge", "jpeg", -1, device_ms=1.0, edge_ms=40.0, request_bytes=20_000, reply_bytes=200,
                   map50=0.60, map50_95=0.40)
EARLY = SplitOption("after2", "q8c-zlib", 2, device_ms=5.0, edge_ms=36.0, request_bytes=60_000, reply_bytes=200,
                    map50=0.60, map50_95=0.40)
LATE = SplitOption("after6", "q4c-zlib", 6, device_ms=15.0, edge_ms=26.0, request_bytes=3_000, reply_bytes=200,
                   map50=0.59, map50_95=0.39)
LOSSY = SplitOption("after6", "q2c-zlib", 6, device_ms=15.0, edge_ms=26.0, request_bytes=800, reply_bytes=200,
                    map50=0.45, map50_95=0.25)
OPTIONS = [DEVICE, EDGE, EARLY, LATE, LOSSY]
MBIT = 1e6 / 8


def test_latency_model_adds_compute_transfer_and_rtt():
    c = predict_latency(LATE, device_speed_factor=0.5, edge_speed_factor=2.0, bandwidth_bytes_per_s=1 * MBIT,
                        rtt_ms=5.0)
    assert c.device_ms == pytest.approx(30.0)
    assert c.edge_ms == pytest.approx(13.0)
    assert c.transfer_ms == pytest.approx(3200 * 8 / 1e6 * 1e3 + 5.0)
    assert predict_latency(DEVICE, 0.5, 2.0, 1.0).transfer_ms == 0.0  # device-only sends nothing


@pytest.mark.parametrize("device_speed, edge_speed, mbit, floor, expected", [
    (1.0, 1.0, 0.01, 0.3, DEVICE),  # a link too thin for anything: the fast device does it all
    (0.05, 4.0, 1000, 0.3, EDGE),  # plentiful link, very slow device: upload the frame
    (0.2, 4.0, 1.0, 0.3, LATE),  # thin link, slow device: a late, small cut wins (3 kB instead of 20 kB)
    (0.2, 4.0, 0.5, 0.395, DEVICE),  # the floor rules the 4-bit cut out and the link is too thin for JPEG
    (0.2, 4.0, 0.25, 0.2, LOSSY),  # a floor low enough lets 2-bit features through on a very thin link
])
def test_choice_on_known_numbers(device_speed, edge_speed, mbit, floor, expected):
    choice = choose_split(OPTIONS, device_speed, edge_speed, mbit * MBIT, floor, rtt_ms=5.0)
    assert choice.option == expected
    assert choice.meets_floor
    others = [predict_latency(o, device_speed, edge_speed, mbit * MBIT, 5.0) for o in OPTIONS
              if o.map50_95 >= floor]
    assert choice.total_ms == pytest.approx(min(c.total_ms for c in others))


def test_no_option_meets_the_floor_gives_the_most_accurate():
    choice = choose_split([LATE, LOSSY], 1.0, 1.0, MBIT, accuracy_floor=0.9)
    assert choice.option == LATE and not choice.meets_floor


def test_controller_re_decides_when_bandwidth_moves_and_not_on_noise():
    ctl = SplitController(OPTIONS, 0.2, 4.0, accuracy_floor=0.3, bandwidth_bytes_per_s=1 * MBIT, rtt_ms=5.0,
                          hysteresis=0.25, smoothing=1.0)
    assert ctl.choice.option == LATE
    assert ctl.observe_bandwidth(1.1 * MBIT) is None  # inside the hysteresis band
    switched = ctl.observe_bandwidth(200 * MBIT)  # a fat link: send the JPEG, the edge is 4x faster
    assert switched is not None and switched.option == EDGE
    assert ctl.observe_transfer(sent_bytes=3000, transfer_s=0.1) is not None  # 30 kB/s measured: back to a cut
    assert ctl.choice.option in (LATE, LOSSY, DEVICE) and ctl.choice.option.map50_95 >= 0.3
    assert ctl.switches == 2


def test_options_round_trip_json(tmp_path):
    path = save_options(OPTIONS, tmp_path / "options.json")
    assert load_options(path) == OPTIONS


def _device_with(**fields) -> str:
    """An options file whose one option is DEVICE with ``fields`` changed."""
    import json
    from dataclasses import asdict

    return json.dumps({"version": 1, "options": [{**asdict(DEVICE), **fields}]})


@pytest.mark.parametrize("text, says", [
    ('[{"version": 1}]', "not a version 1 options file (found 'list')"),  # AttributeError before
    ('{"version": 1}', "'options' must be a non-empty list"),  # KeyError before
    ('{"version": 1, "options": []}', "'options' must be a non-empty list"),  # no option to choose from
    ('{"version": 1, "options": [[1, 2]]}', "'options' must be a non-empty list"),
    ('{"version": 1, "options": [{"split_key": "device"}]}', "an option of another shape"),  # TypeError before
    (_device_with(device_ms="fast"), "'device' holds a field of the wrong type"),
    (_device_with(device_ms=float("nan")), "negative or non-finite"),
    (_device_with(split_after=True), "wrong type"),
    ('{"version": 2}', "found 2"),
    ("not json", "Expecting value")])
def test_an_options_file_of_another_shape_is_a_value_error_that_says_what(tmp_path, text, says):
    path = tmp_path / "options.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(says)):
        load_options(path)


def test_an_options_file_past_its_size_bound_is_refused_unread(tmp_path):
    from edge.split.selection import MAX_OPTIONS_BYTES

    path = tmp_path / "options.json"
    path.write_bytes(b" " * (MAX_OPTIONS_BYTES + 1))
    with pytest.raises(ValueError, match="is not an options file"):
        load_options(path)
