"""A student that scores below the deployed one on the endpoint's held-out frames is not pushed."""

import math

from edge.learner.push_gate import regression


def test_a_lower_score_is_a_regression_with_both_scores_in_the_reason():
    why = regression("v0003", 0.012, "v0002", 0.071, "dusk")
    assert why is not None and "v0003" in why and "0.012" in why and "0.071" in why and "dusk" in why


def test_an_equal_or_higher_score_may_be_pushed():
    assert regression("v0003", 0.071, "v0002", 0.071, "dusk") is None
    assert regression("v0003", 0.2, "v0002", 0.071, "dusk") is None


def test_an_unscored_side_never_blocks_a_push():
    assert regression("v0003", math.nan, "v0002", 0.071, "dusk") is None
    assert regression("v0003", 0.01, "v0002", math.nan, "dusk") is None
