"""Maximize predicted deployed mAP under a byte budget: one endpoint's split, and one link shared by many.

Values come from a ``ValueFn(upload_bytes_array, option) -> mAP array``, so the same search
serves the fitted response model (``adaptive``) and the simulator's true surface (``oracle``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import minimize_scalar

from edge.scheduler.policy import PushOption

ValueFn = Callable[[np.ndarray, PushOption], np.ndarray]
TIE_MAP = 1e-9  # values closer than this are equal
REFINE_TOL = 1e-8  # of the refined stretch: 40 golden-section steps, as before scipy, left 4e-9 of it
# Of equal values, more data wins (later pushes still carry it), then the larger push (it carries at least as much);
# in the last round (``ties_to_push``) no later push carries data, so the larger push wins first.


@dataclass(frozen=True)
class Choice:
    """One endpoint's decision and its predicted deployed mAP."""

    upload_bytes: float
    option: PushOption
    value: float


def _better(value: float, upload: float, option: PushOption, than: "Choice | None", ties_to_push: bool = False) -> bool:
    if than is None or value > than.value + TIE_MAP:
        return True
    if value < than.value - TIE_MAP:
        return False
    if ties_to_push:
        return (option.bytes, upload) > (than.option.bytes, than.upload_bytes)
    return (upload, option.bytes) > (than.upload_bytes, than.option.bytes)


def _last_best(values: np.ndarray, tol: float = TIE_MAP) -> int:
    return int(np.flatnonzero(values >= values.max() - tol)[-1])


def _refine(value: ValueFn, option: PushOption, lo: float, hi: float) -> tuple[float, float]:
    """A maximum of a unimodal stretch ``[lo, hi]`` by bounded Brent search."""
    result = minimize_scalar(lambda x: -float(value(np.array([x]), option)[0]), bounds=(lo, hi), method="bounded",
                             options={"xatol": REFINE_TOL * (hi - lo)})
    return float(result.x), -float(result.fun)


def best_split(value: ValueFn, budget_bytes: float, options: Sequence[PushOption],
               max_upload_bytes: float = math.inf, grid_points: int = 257, ties_to_push: bool = False) -> Choice:
    """For each affordable push, search the data bytes on a grid then refine; the best pair wins."""
    best: Choice | None = None
    for option in options:
        room = budget_bytes - option.bytes
        if room < 0:
            continue
        hi = max(0.0, min(room, max_upload_bytes))
        grid = np.linspace(0.0, hi, grid_points if hi > 0 else 1)
        values = np.asarray(value(grid, option), dtype=np.float64)
        i = _last_best(values)
        upload, val = float(grid[i]), float(values[i])
        if 0 < i < len(grid) - 1 or (i == 0 and len(grid) > 1):
            lo, up = float(grid[max(0, i - 1)]), float(grid[min(len(grid) - 1, i + 1)])
            x, fx = _refine(value, option, lo, up)
            if fx > val + TIE_MAP:
                upload, val = x, fx
        if _better(val, upload, option, best, ties_to_push):
            best = Choice(upload, option, val)
    if best is None:
        raise ValueError("no push option fits the budget; include 'skip'")
    return best


def _endpoint_table(value: ValueFn, options: Sequence[PushOption], max_upload_bytes: float, quantum_bytes: float,
                    quanta: int, ties_to_push: bool = False) -> tuple[np.ndarray, list[Choice | None]]:
    """Best predicted mAP of one endpoint given ``k`` quanta of the link, for every k, and the choice behind it."""
    best = np.full(quanta + 1, -np.inf)
    choices: list[Choice | None] = [None] * (quanta + 1)
    uploads = np.minimum(np.arange(quanta + 1) * quantum_bytes, max_upload_bytes)
    for option in options:
        cost = math.ceil(option.bytes / quantum_bytes - 1e-9) if option.bytes else 0
        if cost > quanta:
            continue
        values = np.asarray(value(uploads[: quanta + 1 - cost], option), dtype=np.float64)
        # running best over data quanta 0..j, ties to the larger j
        run_best, run_arg = np.empty_like(values), np.empty(len(values), dtype=int)
        top, arg = -np.inf, 0
        for j, v in enumerate(values):
            if v >= top - TIE_MAP:
                top, arg = max(top, v), j
            run_best[j], run_arg[j] = top, arg
        for k in range(cost, quanta + 1):
            upload = float(uploads[run_arg[k - cost]])
            if _better(float(run_best[k - cost]), upload, option, choices[k], ties_to_push):
                best[k] = run_best[k - cost]
                choices[k] = Choice(upload, option, float(run_best[k - cost]))
    return best, choices


def allocate_link(values: Sequence[ValueFn], options: Sequence[Sequence[PushOption]],
                  max_uploads: Sequence[float], budget_bytes: float, quanta: int = 200,
                  ties_to_push: bool = False) -> list[Choice]:
    """Split one link across endpoints so the summed predicted mAP is largest.

    An exact dynamic program over ``quanta`` slices of the budget: bytes go where the marginal
    mAP gain is largest, including a lumpy push whose first slices alone gain nothing.
    """
    n = len(values)
    if n == 0:
        return []
    if budget_bytes <= 0:
        return [best_split(v, 0, o, m, ties_to_push=ties_to_push) for v, o, m in zip(values, options, max_uploads)]
    quantum = budget_bytes / quanta
    tables = [_endpoint_table(v, o, m, quantum, quanta, ties_to_push) for v, o, m in zip(values, options, max_uploads)]
    total = tables[0][0].copy()
    splits = []  # per endpoint after the first: for each total k, the quanta given to it
    for table, _ in tables[1:]:
        new_total, given = np.full(quanta + 1, -np.inf), np.zeros(quanta + 1, dtype=int)
        for k in range(quanta + 1):
            sums = total[k::-1] + table[: k + 1]  # endpoint gets a = 0..k, the ones before it k - a
            a = _last_best(sums)  # of equal sums, the larger share: spare bytes still carry data or a bigger push
            new_total[k], given[k] = sums[a], a
        total = new_total
        splits.append(given)
    k = _last_best(total)  # of equal totals, the one that uses more of the link
    shares = []
    for given in reversed(splits):
        shares.append(int(given[k]))
        k -= shares[-1]
    shares.append(k)
    shares.reverse()
    return [table_choices[a] for (_, table_choices), a in zip(tables, shares)]


__all__ = ["Choice", "TIE_MAP", "ValueFn", "allocate_link", "best_split"]
