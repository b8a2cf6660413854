"""Nonlinear least squares from a few starts (scipy), and the Laplace spread of a function of the solution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
from scipy.optimize import approx_fprime, least_squares

Residuals = Callable[[np.ndarray], np.ndarray]
METHOD = "trf"  # measured against "lm" and the former hand-written Levenberg-Marquardt: docs/scheduler.md


@dataclass(frozen=True)
class Solution:
    """The best parameters, their summed squared residuals, and the residuals' Jacobian there."""

    v: np.ndarray
    sum_squares: float
    jac: np.ndarray


def solve(fun: Residuals, starts: Iterable[np.ndarray], center: np.ndarray, scale: np.ndarray,
          method: str = METHOD) -> Solution:
    """Minimize ``sum(fun(v)**2)`` from each start; the lowest wins (the cost can have local minima).

    The solver works on ``z = (v - center) / scale``: with the prior's mean and sds there, its first trust region
    is about one prior sd wide, so it does not leap into a far basin (measured: docs/scheduler.md).
    """
    center, scale = np.asarray(center, dtype=np.float64), np.asarray(scale, dtype=np.float64)

    def whitened(z: np.ndarray) -> np.ndarray:
        return fun(center + scale * z)

    best: Solution | None = None
    for start in starts:
        result = least_squares(whitened, (np.asarray(start, dtype=np.float64) - center) / scale, method=method,
                               x_scale="jac")
        sum_squares = float(result.fun @ result.fun)
        if best is None or sum_squares < best.sum_squares:
            best = Solution(center + scale * result.x, sum_squares, np.atleast_2d(result.jac) / scale)
    if best is None:
        raise ValueError("no start to solve from")
    return best


def posterior_covariance(jac: np.ndarray) -> np.ndarray:
    """Residuals in sigmas, prior rows included: ``(J^T J)^-1`` is the Laplace covariance of the solution."""
    return np.linalg.pinv(jac.T @ jac)


def posterior_sd(f: Callable[[np.ndarray], float], v: np.ndarray, cov: np.ndarray) -> float:
    """Standard deviation of ``f`` at the solution ``v`` by the delta method (finite-difference gradient)."""
    grad = approx_fprime(v, f, 1e-6 * np.maximum(1.0, np.abs(v)))
    return float(np.sqrt(max(0.0, grad @ cov @ grad)))


__all__ = ["METHOD", "Solution", "posterior_covariance", "posterior_sd", "solve"]
