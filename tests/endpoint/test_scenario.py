"""The synthetic drift scenario: deterministic per seed, domain and index, with sane boxes and a darker dusk."""

from __future__ import annotations

import numpy as np
import pytest

from endpoint.sources.scenario import CLASS_NAMES, DEFAULT_DOMAINS, Domain, SyntheticScenario

INDICES = range(40)


def test_the_same_seed_domain_and_index_give_the_same_frame():
    a, b = SyntheticScenario(seed=3), SyntheticScenario(seed=3)
    for domain in ("day", "dusk"):
        for index in (0, 1, 17):
            fa, fb = a.frame(domain, index), b.frame(domain, index)
            np.testing.assert_array_equal(fa.image, fb.image)
            np.testing.assert_array_equal(fa.boxes, fb.boxes)
            np.testing.assert_array_equal(fa.classes, fb.classes)
            assert fa.domain == fb.domain == domain
    # the order frames are asked in does not matter (cached textures hold no per-frame state)
    late_first = SyntheticScenario(seed=3)
    late_first.frame("dusk", 9)
    np.testing.assert_array_equal(late_first.frame("day", 1).image, a.frame("day", 1).image)


@pytest.mark.parametrize("other", [dict(seed=4), dict(domain="dusk"), dict(index=2)])
def test_another_seed_domain_or_index_gives_another_frame(other):
    base = dict(seed=3, domain="day", index=1)
    changed = {**base, **other}
    a = SyntheticScenario(seed=base["seed"]).frame(base["domain"], base["index"])
    b = SyntheticScenario(seed=changed["seed"]).frame(changed["domain"], changed["index"])
    assert not np.array_equal(a.image, b.image)


@pytest.mark.parametrize("width, height", [(320, 240), (128, 96), (96, 160)])
def test_frames_have_the_asked_shape_and_boxes_inside_them(width, height):
    scenario = SyntheticScenario(width=width, height=height, seed=1)
    for domain in ("day", "dusk"):
        for index in INDICES:
            f = scenario.frame(domain, index)
            assert f.image.shape == (height, width, 3) and f.image.dtype == np.uint8
            assert f.boxes.dtype == np.float32 and f.boxes.shape == (len(f.classes), 4)
            assert 1 <= len(f.classes) <= scenario.max_objects
            assert f.boxes.min() >= 0.0 and f.boxes.max() <= 1.0
            assert np.all(f.boxes[:, 2] > f.boxes[:, 0]) and np.all(f.boxes[:, 3] > f.boxes[:, 1])
            assert f.classes.dtype == np.int64
            assert set(f.classes.tolist()) <= set(range(len(CLASS_NAMES)))


def test_each_domain_draws_only_the_classes_it_weighs():
    scenario = SyntheticScenario(seed=0)
    day = np.concatenate([scenario.frame("day", i).classes for i in INDICES])
    dusk = np.concatenate([scenario.frame("dusk", i).classes for i in INDICES])
    assert 2 not in day  # day weighs triangles 0
    assert set(dusk.tolist()) == {0, 1, 2}


def test_objects_follow_the_domains_scale():
    scenario = SyntheticScenario(seed=0)
    for domain in DEFAULT_DOMAINS:
        sides = np.concatenate([np.round((f.boxes[:, 2] - f.boxes[:, 0]) * scenario.width)
                                for f in (scenario.frame(domain.name, i) for i in INDICES)])
        short = min(scenario.width, scenario.height)
        assert sides.min() >= int(short * domain.scale[0]) and sides.max() <= short * domain.scale[1], domain.name


def test_dusk_is_darker_than_day():
    scenario = SyntheticScenario(seed=0)
    day = np.mean([scenario.frame("day", i).image.mean() for i in range(10)])
    dusk = np.mean([scenario.frame("dusk", i).image.mean() for i in range(10)])
    assert dusk < 0.75 * day


def test_the_boxes_mark_where_the_shapes_are():
    scenario = SyntheticScenario(seed=0, domains=(Domain("flat", noise_std=0.0),))
    f = scenario.frame("flat", 5)
    h, w = f.image.shape[:2]
    for (x1, y1, x2, y2), cls in zip(f.boxes, f.classes):
        cx, cy = int((x1 + x2) / 2 * w), int((y1 + y2) / 2 * h)
        centre = f.image[cy, cx].astype(int)
        # a filled shape covers its box's centre with one flat colour: the textured background varies there
        patch = f.image[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3).astype(int)
        assert np.abs(patch - centre).max() <= 2, (cls, patch)


def test_an_unknown_domain_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown domain 'night'"):
        SyntheticScenario().frame("night", 0)
