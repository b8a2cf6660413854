"""edge.replay: bounded per-domain reservoirs, even sampling across domains, mixing, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from edge.replay import ReplayBuffer
from edge.yolo_dataset import LabelledImage


def items(prefix: str, count: int) -> list[LabelledImage]:
    box = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    return [LabelledImage(f"{prefix}-{i:04d}", np.full((8, 8, 3), i % 255, np.uint8), box, np.array([i % 3]))
            for i in range(count)]


def test_capacity_is_per_domain_and_bounded():
    buffer = ReplayBuffer(capacity_per_domain=10, seed=0)
    buffer.add(items("day", 100), "day")
    buffer.add(items("dusk", 4), "dusk")
    assert len(buffer.items("day")) == 10 and len(buffer.items("dusk")) == 4
    assert len(buffer) == 14 and buffer.domains() == ["day", "dusk"]
    assert buffer.seen("day") == 100


def test_reservoir_keeps_old_and_new_items_alike():
    # Over many seeds every position of the stream is kept about capacity/seen of the time.
    kept_early = kept_late = 0
    for seed in range(200):
        buffer = ReplayBuffer(capacity_per_domain=10, seed=seed)
        buffer.add(items("d", 100), "d")
        indices = [int(item.name.split("-")[1]) for item in buffer.items("d")]
        kept_early += sum(i < 50 for i in indices)
        kept_late += sum(i >= 50 for i in indices)
    assert kept_early + kept_late == 2000
    assert abs(kept_early - kept_late) < 200  # a FIFO or keep-first buffer would be 0 vs 2000


def test_sample_is_even_across_domains_without_repeats():
    buffer = ReplayBuffer(capacity_per_domain=50, seed=1)
    buffer.add(items("day", 50), "day")
    buffer.add(items("dusk", 50), "dusk")
    buffer.add(items("night", 3), "night")
    sample = buffer.sample(21)
    names = [s.name for s in sample]
    assert len(names) == len(set(names)) == 21
    counts = {d: sum(n.startswith(d) for n in names) for d in ("day", "dusk", "night")}
    assert counts == {"day": 9, "dusk": 9, "night": 3}
    assert len(buffer.sample(1000)) == 103


def test_mix_adds_the_replay_fraction():
    buffer = ReplayBuffer(capacity_per_domain=100, seed=0)
    buffer.add(items("day", 100), "day")
    new = items("dusk", 70)
    mixed = buffer.mix(new, replay_fraction=0.3)
    assert mixed[:70] == new
    assert len(mixed) == 100 and all(m.name.startswith("day") for m in mixed[70:])
    assert buffer.mix(new, replay_fraction=0.0) == new
    with pytest.raises(ValueError):
        buffer.mix(new, replay_fraction=1.0)


def test_empty_buffer_mixes_nothing_in():
    new = items("dusk", 3)
    assert ReplayBuffer(5).mix(new, 0.5) == new


def test_save_and_load_round_trip(tmp_path):
    buffer = ReplayBuffer(capacity_per_domain=5, seed=0)
    buffer.add(items("day", 12), "day")
    buffer.add(items("dusk", 2), "dusk")
    buffer.save(tmp_path / "replay")
    loaded = ReplayBuffer.load(tmp_path / "replay", capacity_per_domain=5)
    assert loaded.domains() == ["day", "dusk"] and loaded.seen("day") == 12
    original = {i.name: i for i in buffer.items()}
    for item in loaded.items():
        ref = original[item.name.rsplit(".", 1)[0]]
        np.testing.assert_allclose(item.boxes, ref.boxes, atol=1e-6)
        np.testing.assert_array_equal(item.classes, ref.classes)
        np.testing.assert_array_equal(item.image, ref.image)
    assert len(ReplayBuffer.load(tmp_path / "absent", 5)) == 0


def test_a_loaded_buffer_keeps_the_order_its_images_were_kept_in(tmp_path):
    """``edgeloop round`` loads the buffer every round: loaded in name order, the newest frames the calibration
    takes were the alphabetically last endpoint's."""
    buffer = ReplayBuffer(capacity_per_domain=10, seed=0)
    newest_last = [*items("cam-2", 3), *items("cam-1", 3)]  # cam-1's frames arrived last
    buffer.add(newest_last, "dusk")
    buffer.add(items("day", 2), "day")
    buffer.save(tmp_path / "replay")
    loaded = ReplayBuffer.load(tmp_path / "replay", capacity_per_domain=10)
    assert [i.name.rsplit(".", 1)[0] for i in loaded.items("dusk")] == [i.name for i in newest_last]
    assert [i.name.rsplit(".", 1)[0] for i in loaded.calibration("dusk", 3, 0.0)] == \
        [i.name for i in buffer.calibration("dusk", 3, 0.0)] == ["cam-1-0000", "cam-1-0001", "cam-1-0002"]
    (tmp_path / "replay" / "order.txt").unlink()  # saved before the order was: name order, as it was
    assert [i.name for i in ReplayBuffer.load(tmp_path / "replay", 10).items("dusk")][:3] == \
        ["cam-1-0000.png", "cam-1-0001.png", "cam-1-0002.png"]


def test_calibration_mixes_domains_like_the_training_set_and_draws_no_random_numbers():
    buffer = ReplayBuffer(capacity_per_domain=50, seed=3)
    buffer.add(items("day", 50), "day")
    buffer.add(items("night", 3), "night")
    buffer.add(items("dusk", 40), "dusk")
    state = buffer._rng.bit_generator.state
    picked = [i.name for i in buffer.calibration("dusk", 16, replay_fraction=0.5)]
    assert buffer._rng.bit_generator.state == state  # the next fine-tune's replay draw is unchanged
    # half from the other domains, evenly; night has 3 of its 4, and the newest of the domain fill the rest
    assert picked[:9] == [f"dusk-{i:04d}" for i in range(31, 40)]
    others = picked[9:]
    assert len(others) == len(set(others)) == 7
    assert sum(n.startswith("day") for n in others) == 4 and sum(n.startswith("night") for n in others) == 3
    assert [i.name for i in buffer.calibration("dusk", 16, 0.0)] == [f"dusk-{i:04d}" for i in range(24, 40)]
    # one domain only, or fewer images than asked: what there is
    assert len(ReplayBuffer(50).calibration("dusk", 8, 0.5)) == 0
    alone = ReplayBuffer(50)
    alone.add(items("dusk", 5), "dusk")
    assert [i.name for i in alone.calibration("dusk", 8, 0.5)] == [f"dusk-{i:04d}" for i in range(5)]
