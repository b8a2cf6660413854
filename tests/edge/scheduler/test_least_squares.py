"""The least-squares solver: the best of its starts, and the Laplace spread on a problem solved by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edge.scheduler.least_squares import posterior_covariance, posterior_sd, solve


def test_a_straight_line_matches_the_normal_equations():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 40)
    y = 0.3 + 2.0 * x + rng.normal(0, 0.05, len(x))
    sigma = 0.05

    def residuals(v):
        return (v[0] + v[1] * x - y) / sigma

    best = solve(residuals, [np.zeros(2)], center=np.zeros(2), scale=np.ones(2))
    design = np.column_stack([np.ones_like(x), x]) / sigma
    exact = np.linalg.lstsq(design, y / sigma, rcond=None)[0]
    assert best.v == pytest.approx(exact, abs=1e-6)
    cov = posterior_covariance(best.jac)
    assert cov == pytest.approx(np.linalg.inv(design.T @ design), rel=1e-4)
    # the sd of the prediction at x = 1 by the delta method equals the exact linear one
    assert posterior_sd(lambda v: v[0] + v[1], best.v, cov) == pytest.approx(np.sqrt(cov.sum()), rel=1e-3)


def test_the_lowest_of_several_starts_wins():
    # two basins: v = -1 (residual 0.5 left) and v = 2 (exact); only a start near 2 finds the better one
    def residuals(v):
        return np.array([(v[0] + 1.0) * (v[0] - 2.0), 0.5 * np.exp(-((v[0] + 1.0) ** 2))])

    one = solve(residuals, [np.array([-1.2])], center=np.zeros(1), scale=np.ones(1))
    both = solve(residuals, [np.array([-1.2]), np.array([2.5])], center=np.zeros(1), scale=np.ones(1))
    assert one.v[0] == pytest.approx(-1.0, abs=0.05)
    assert both.v[0] == pytest.approx(2.0, abs=1e-6) and both.sum_squares < one.sum_squares


def test_no_start_is_an_error():
    with pytest.raises(ValueError, match="no start"):
        solve(lambda v: v, [], center=np.zeros(1), scale=np.ones(1))
