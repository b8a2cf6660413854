import random

import pytest

from endpoint.uplink.sampler import Candidate, Sampler, SamplerParams, low_confidence, strategy, uniform


@pytest.mark.parametrize("confs, expected", [
    ([], True),  # nothing found
    ([0.9, 0.95], False),  # sure
    ([0.3], True),  # weak best box
    ([0.9, 0.3], True),  # one box near the 0.25 threshold
    ([0.9, 0.6], False),
])
def test_low_confidence(confs, expected):
    assert low_confidence(Candidate(0, confs), SamplerParams(sample_rate=1.0), random.Random(0)) is expected


def test_uniform_rate():
    rng = random.Random(1)
    taken = sum(uniform(Candidate(i, []), SamplerParams(sample_rate=0.3), rng) for i in range(5000))
    assert 1300 < taken < 1700


def test_every_nth_is_deterministic():
    s = Sampler("every_nth", SamplerParams(sample_rate=0.25))
    assert [i for i in range(12) if s.wants(Candidate(i, []))] == [0, 4, 8]


@pytest.mark.parametrize("rate", [5e-324, 1e-300])
def test_every_nth_takes_frame_zero_alone_at_a_rate_whose_stride_overflows(rate):
    """1 / 5e-324 is inf, and round(inf) raised on the detection thread: a retained plan killed every restart."""
    s = Sampler("every_nth", SamplerParams(sample_rate=rate))
    assert [i for i in (0, 1, 2, 10**6, 2**61 + 1) if s.wants(Candidate(i, []))] == [0]


def test_round_cap_in_bytes():
    s = Sampler("uniform", SamplerParams(sample_rate=1.0), round_budget_bytes=1000)
    admitted = [s.admit(300) for _ in range(5) if s.wants(Candidate(0, []))]
    assert admitted == [True, True, True, False, False]  # 900 of 1000 bytes spent: no 300-byte frame fits
    assert s.admit(100) and not s.wants(Candidate(0, []))  # exactly full: the sampler stops asking
    s.configure("uniform", SamplerParams(sample_rate=1.0), 1000)
    assert s.wants(Candidate(0, [])) and s.admit(300)


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        strategy("nope")
