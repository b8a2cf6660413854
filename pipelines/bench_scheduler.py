"""``edgeloop bench scheduler``: every policy on measured response surfaces, from a starved link to a plentiful one.

Prints per bandwidth each policy's deployed mAP50-95 and the data/model split it spent, checks
``adaptive`` against the oracle and the fixed ratios, and writes ``scheduler.png`` and ``scheduler.json``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

ORACLE_GAP_MAP = 0.01  # adaptive should stay within 1 mAP point of the oracle
FIXED = ("fixed-20-80", "fixed-50-50", "fixed-80-20")


SIM_ROUNDS = 20  # simulated rounds per bandwidth unless --rounds says otherwise
_SPARSE_SAYS = {"measured": "measured (from the surface file)",
                "derived": "DERIVED from measured points (bytes from the codec's size, mAP interpolated by trained "
                           "fraction between measured pushes); not measured yet",
                "none": "none (the file lacks the student's parameter count to derive them)"}


def run_bench_scheduler(args) -> int:
    counts = {"--rounds": getattr(args, "rounds", None), "--endpoints": getattr(args, "endpoints", None)}
    if bad := [f"{flag} {value}" for flag, value in counts.items() if value is not None and value < 1] + \
            ([f"--seed {args.seed}"] if getattr(args, "seed", 0) < 0 else []):
        print(f"edgeloop bench scheduler: {', '.join(bad)}: rounds and endpoints must be at least 1, the seed not "
              f"negative", file=sys.stderr)
        return 2
    if getattr(args, "live", False):
        from pipelines.bench_scheduler_live import run_bench_scheduler_live

        return run_bench_scheduler_live(args)
    from rich.console import Console
    from rich.progress import Progress

    from edge.scheduler.policies import POLICY_NAMES
    from edge.scheduler.simulate import SimConfig, budget_grid, sweep
    from edge.scheduler.surfaces import SurfaceError, load_surfaces
    from pipelines.measure_response import DEFAULT_SURFACES_PATH

    console = Console(width=160)
    path = Path(args.surfaces) if getattr(args, "surfaces", None) else DEFAULT_SURFACES_PATH
    try:
        surfaces = load_surfaces(path)
    except SurfaceError as exc:
        console.print(f"[red]{exc}[/red]\nThe bench replays response surfaces measured from real rounds; none are "
                      f"invented. Measure them first (about an hour on 2 CPU cores):\n"
                      f"  python -m pipelines.measure_response --out {path}")
        return 2
    measured_scenarios = surfaces.scenarios  # the bandwidth grid spans the measured pushes, as before
    sparse = getattr(args, "sparse", "auto") or "auto"
    if sparse != "none":
        from edge.scheduler.sparse_options import with_sparse_options

        extended = [with_sparse_options(s) for s in surfaces.scenarios]
        surfaces = surfaces.model_copy(update={"scenarios": [s for s, _ in extended]})
        for scenario, provenance in extended:
            console.print(f"sparse push options of {scenario.name}: {_SPARSE_SAYS[provenance]}")
    config = SimConfig(rounds=getattr(args, "rounds", None) or SIM_ROUNDS, seed=getattr(args, "seed", 0) or 0,
                       endpoints=getattr(args, "endpoints", None) or SimConfig.endpoints)
    budgets = budget_grid(measured_scenarios, config)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("simulating", total=len(budgets) * len(POLICY_NAMES))
        results = sweep(surfaces.scenarios, POLICY_NAMES, budgets, config,
                        progress=lambda name, budget: progress.advance(task))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    console.print(_table(results, config, path))
    for line in verdict(results):
        console.print(line)
    _write_json(out / "scheduler.json", results, config, path)
    _plot(out / "scheduler.png", results, config)
    console.print(f"wrote {out / 'scheduler.png'} and {out / 'scheduler.json'}")
    return 0


def _table(results, config, path):
    from rich.table import Table

    from edge.scheduler.simulate import bandwidth_label_kbps

    policies = list(next(iter(results.values())))
    table = Table(title=f"deployed mAP50-95 (data % / model % of bytes spent): {config.endpoints} endpoints "
                        f"{'sharing one link' if config.shared_link else 'with own links'}, {config.rounds} rounds "
                        f"of {config.round_s:.0f} s, drift every {config.rounds_per_domain}; surfaces {path.name}")
    table.add_column("kbit/s per endpoint", justify="right")
    table.add_column("KB/round", justify="right")
    for name in policies:
        table.add_column(name, justify="right")
    table.add_column("adaptive - oracle", justify="right")
    for budget, runs in results.items():
        best_fixed = max(runs[n].mean_map for n in FIXED if n in runs)
        cells = []
        for name in policies:
            run = runs[name]
            text = f"{run.mean_map:.3f} ({100 * run.data_share:.0f}/{100 - 100 * run.data_share:.0f})"
            if name == "adaptive" and run.mean_map < best_fixed:
                text = f"[red]{text}[/red]"
            cells.append(text)
        gap = runs["adaptive"].mean_map - runs["oracle"].mean_map if "oracle" in runs else float("nan")
        table.add_row(f"{bandwidth_label_kbps(budget, config.round_s):,.1f}", f"{budget / 1000:,.0f}", *cells,
                      f"{'[red]' if gap < -ORACLE_GAP_MAP else ''}{gap:+.3f}")
    return table


def verdict(results) -> list[str]:
    """Did ``adaptive`` stay near the oracle and above the fixed ratios, and how did its split move?"""
    lines = []
    gaps = {b: runs["adaptive"].mean_map - runs["oracle"].mean_map for b, runs in results.items()}
    worst = min(gaps, key=gaps.get)
    ok = gaps[worst] >= -ORACLE_GAP_MAP
    lines.append(f"adaptive vs oracle: worst gap {gaps[worst]:+.4f} at {worst / 1000:,.0f} KB/round — "
                 f"{'within' if ok else 'NOT within'} {ORACLE_GAP_MAP} at every bandwidth")
    below = [(b, n) for b, runs in results.items() for n in FIXED if runs["adaptive"].mean_map < runs[n].mean_map]
    lines.append("adaptive vs fixed ratios: " + ("at or above every one at every bandwidth" if not below else
                 "below " + ", ".join(f"{n} at {b / 1000:,.0f} KB" for b, n in below)))
    firsts = [(b, n, runs[n].mean_map - runs["adaptive"].mean_map) for b, runs in results.items()
              for n in ("data-first", "model-first") if n in runs and runs["adaptive"].mean_map < runs[n].mean_map]
    lines.append("adaptive vs data-first and model-first: " + (
        "at or above both at every bandwidth" if not firsts else
        "below " + ", ".join(f"{n} by {d:.3f} at {b / 1000:,.0f} KB" for b, n, d in firsts)))
    shares = [100 * (1 - runs["adaptive"].data_share) for runs in results.values()]
    peak = max(range(len(shares)), key=shares.__getitem__)
    lines.append("adaptive model share by bandwidth: " + " → ".join(f"{s:.0f}%" for s in shares)
                 + f" (peak at step {peak + 1} of {len(shares)}; the paper's shape rises then falls)")
    return lines


def _write_json(path: Path, results, config, surfaces_path: Path) -> None:
    from dataclasses import asdict

    rows = [{"budget_bytes_per_endpoint": b, "policy": n, "mean_map50_95": r.mean_map, "data_share": r.data_share,
             "upload_bytes": r.upload_bytes, "push_bytes": r.push_bytes, "planned_upload_bytes": r.planned_upload_bytes,
             "planned_push_bytes": r.planned_push_bytes, "push_counts": r.push_counts}
            for b, runs in results.items() for n, r in runs.items()]
    path.write_text(json.dumps({"config": asdict(config), "surfaces": str(surfaces_path), "results": rows}, indent=1))


def _plot(path: Path, results, config) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edge.scheduler.simulate import bandwidth_label_kbps

    budgets = list(results)
    kbps = [bandwidth_label_kbps(b, config.round_s) for b in budgets]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    for name in results[budgets[0]]:
        style = {"linewidth": 2.5} if name in ("adaptive", "oracle") else {"linewidth": 1, "alpha": 0.8}
        top.plot(kbps, [results[b][name].mean_map for b in budgets], marker="o", label=name, **style)
        bottom.plot(kbps, [100 * (1 - results[b][name].data_share) for b in budgets], marker="o", label=name, **style)
    top.set_ylabel("deployed mAP50-95 (mean over rounds)")
    bottom.set_ylabel("model push share of bytes spent (%)")
    bottom.set_xlabel("link per endpoint (kbit/s)")
    bottom.set_xscale("log")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    bottom.grid(alpha=0.3)
    fig.suptitle("bandwidth scheduler on measured response surfaces")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = ["run_bench_scheduler", "verdict"]
