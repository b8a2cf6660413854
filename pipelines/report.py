"""``edgeloop report DIR``: the per-round table and ``map_per_round.png`` from ``rounds.jsonl``."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from edge.learner.round_result import RoundResult, read_results


def results_table(results: list[RoundResult], title: str = "mAP per round"):
    from rich.table import Table

    table = Table(title=title)
    for col, justify in [("round", "right"), ("endpoint", "left"), ("domain", "left"), ("policy", "left"),
                         ("budget kB", "right"), ("up kB", "right"), ("push kB", "right"), ("push", "left"),
                         ("frames", "right"), ("model", "left"), ("mAP50", "right"), ("mAP50-95", "right"),
                         ("static", "right"), ("teacher", "right"), ("agree", "right"), ("wall s", "right")]:
        table.add_column(col, justify=justify)
    for r in results:
        gain = r.map50_95 - r.static_map50_95
        table.add_row(str(r.round), r.endpoint, r.domain, r.policy, f"{r.budget_bytes / 1e3:,.0f}",
                      f"{r.upload_bytes / 1e3:,.0f}", f"{r.push_bytes / 1e3:,.0f}", r.push_kind,
                      str(r.frames_uploaded), r.model_version, f"{r.map50:.3f}",
                      f"{r.map50_95:.3f} ({gain:+.3f})", f"{r.static_map50_95:.3f}", f"{r.teacher_map50_95:.3f}",
                      "-" if r.agreement_map50_95 is None else f"{r.agreement_map50_95:.3f}", f"{r.wall_s:.0f}")
    return table


def plot_results(results: list[RoundResult], out_png: str | Path) -> Path:
    """mAP50-95 per round (deployed vs static vs teacher) over bytes per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_endpoint: dict[str, list[RoundResult]] = defaultdict(list)
    for r in results:
        by_endpoint[r.endpoint].append(r)
    fig, (ax_map, ax_bytes) = plt.subplots(2, 1, figsize=(9, 7), sharex=True,
                                           gridspec_kw={"height_ratios": [2, 1]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (endpoint, rows) in enumerate(sorted(by_endpoint.items())):
        rows.sort(key=lambda r: r.round)
        x = [r.round for r in rows]
        c = colors[i % len(colors)]
        ax_map.plot(x, [r.map50_95 for r in rows], "o-", color=c, label=f"{endpoint} deployed")
        ax_map.plot(x, [r.static_map50_95 for r in rows], "s--", color=c, alpha=0.6, label=f"{endpoint} static")
        old = sorted({d for r in rows for d in r.map50_95_by_domain if d != r.domain})
        for domain in old:  # what the deployed student still knows of domains it left
            points = [(r.round, r.map50_95_by_domain[domain]) for r in rows
                      if domain in r.map50_95_by_domain and domain != r.domain]
            ax_map.plot(*zip(*points), "^-.", color=c, alpha=0.8, label=f"{endpoint} on {domain} (forgetting)")
    first = sorted(by_endpoint.values(), key=len)[-1] if by_endpoint else []
    if first:
        ax_map.plot([r.round for r in first], [r.teacher_map50_95 for r in first], "k:", label="teacher")
        _shade_domains(ax_map, first)
    ax_map.set_ylabel("mAP50-95 on held-out frames")
    ax_map.legend(fontsize=8, ncol=2)
    ax_map.grid(alpha=0.3)
    rounds = sorted({r.round for r in results})
    up = [sum(r.upload_bytes for r in results if r.round == k) / 1e3 for k in rounds]
    push = [sum(r.push_bytes for r in results if r.round == k) / 1e3 for k in rounds]
    budget = [sum(r.budget_bytes for r in results if r.round == k) / 1e3 for k in rounds]
    ax_bytes.bar(rounds, up, label="data up", color="#4c72b0")
    ax_bytes.bar(rounds, push, bottom=up, label="model push", color="#dd8452")
    ax_bytes.plot(rounds, budget, "k_", markersize=30, label="budget")
    ax_bytes.set_ylim(0, 1.3 * max([*budget, *(u + q for u, q in zip(up, push)), 1]))
    ax_bytes.set_ylabel("kB per round (all endpoints)")
    ax_bytes.set_xlabel("round")
    ax_bytes.set_xticks(rounds)
    ax_bytes.legend(fontsize=8, ncol=3, loc="upper center")
    ax_bytes.grid(alpha=0.3, axis="y")
    policy = results[0].policy if results else ""
    fig.suptitle(f"edgeloop: deployed student vs static baseline (policy {policy})")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)


def _shade_domains(ax, rows: list[RoundResult]) -> None:
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i].domain != rows[start].domain:
            ax.axvspan(rows[start].round - 0.5, rows[i - 1].round + 0.5, alpha=0.06 * (1 + start % 2), color="grey")
            ax.text((rows[start].round + rows[i - 1].round) / 2, 0.97, rows[start].domain, ha="center", va="top",
                    transform=ax.get_xaxis_transform(), fontsize=9, color="dimgray")
            start = i


def run_report(args) -> int:
    from rich.console import Console

    out = Path(args.dir)
    if not (out / "rounds.jsonl").is_file():
        print(f"edgeloop report: no rounds.jsonl in {out} (a lab --out directory or a learner's state_dir)",
              file=sys.stderr)
        return 2
    try:
        results = read_results(out / "rounds.jsonl")
    except ValueError as exc:  # a line that is JSON but not a round record
        print(f"edgeloop report: {out / 'rounds.jsonl'} holds a record of another shape: {str(exc)[:300]}",
              file=sys.stderr)
        return 2
    if not results:
        print(f"edgeloop report: {out / 'rounds.jsonl'} holds no finished round yet", file=sys.stderr)
        return 1
    Console(width=160).print(results_table(results))
    png = plot_results(results, out / "map_per_round.png")
    print(f"plot: {png}")
    return 0
