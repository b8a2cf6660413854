"""``edgeloop bench fuzz``: hostile messages through a real Mosquitto into every receiver, as deployed.

Receivers: edge ingest (in this process, local store), an endpoint process, the learner's fleet view (in
this process) and a split server process. Each gets ``--messages`` mutants (bit flips, truncation, wrong
types, huge declared sizes, NaN/Inf, other endpoints' ids, extreme lengths, deep nesting) with valid
traffic between them. Per receiver it prints what was refused with a reason, crashes (must be 0), the
valid messages kept (must be all) and memory. Exit status 1 when any receiver fails either rule.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Callable

from pipelines.fuzz_common import FuzzRow

log = logging.getLogger(__name__)

RATE_PER_S = 250.0  # mutants and valid messages per second per receiver: the receivers keep up, nothing is shed
# Each refusal is logged at WARNING by design; thousands of them would bury the tables.
QUIET_LOGGERS = ("edge.ingest", "edge.learner.fleet", "edge.mqtt_connection", "edge.split.server")
RECEIVERS = ("ingest", "endpoint", "fleet", "split")


def run_fuzz(messages: int, seed: int, work: Path, receivers: tuple[str, ...] = RECEIVERS,
             rate_per_s: float = RATE_PER_S) -> list[FuzzRow]:
    """Start a broker, fuzz each receiver in turn, return one row per receiver."""
    from pipelines.broker import Broker
    from pipelines.fuzz_endpoint import fuzz_endpoint
    from pipelines.fuzz_fleet import fuzz_fleet
    from pipelines.fuzz_ingest import fuzz_ingest
    from pipelines.fuzz_models import split_set_dir, tiny_yolo
    from pipelines.fuzz_split import fuzz_split

    phases: dict[str, Callable[[str, int, Path], FuzzRow]] = {
        "ingest": lambda host, port, w: fuzz_ingest(host, port, w, messages, seed, rate_per_s),
        "endpoint": lambda host, port, w: fuzz_endpoint(host, port, w, messages, seed, rate_per_s, tiny_yolo().onnx),
        "fleet": lambda host, port, w: fuzz_fleet(host, port, w, messages, seed, rate_per_s),
        "split": lambda host, port, w: fuzz_split(host, port, w, messages, seed, rate_per_s, split_set_dir()),
    }
    rows = []
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    (work / "broker").mkdir(parents=True)
    broker = Broker(workdir=work / "broker").start()
    try:
        for name in receivers:
            log.info("fuzz: %s, %d mutated messages", name, messages)
            started = time.monotonic()
            row = phases[name](broker.host, broker.port, work / name)
            row.wall_s = time.monotonic() - started
            rows.append(row)
            if broker.process is None or broker.process.poll() is not None:
                raise RuntimeError(f"the broker died during the {name} fuzz; see {broker.workdir}")
    finally:
        broker.stop()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    return rows


def receiver_table(row: FuzzRow):
    """One receiver's numbers, refusal reasons included."""
    from rich.table import Table

    table = Table(title=f"{row.receiver}: {row.wall_s:.0f} s", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("mutated messages sent", f"{row.mutated_sent}")
    table.add_row("refused with a reason", f"{row.refused}")
    for reason, n in sorted(row.reasons.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  {reason}", f"{n}")
    table.add_row("not refused (still valid, or ignored by design)", f"{max(0, row.mutated_sent - row.refused)}")
    table.add_row("crashes (must be 0)", f"{row.crashes}", style=None if row.crashes == 0 else "bold red")
    table.add_row("valid messages sent", f"{row.valid_sent}")
    table.add_row("valid messages kept (must be all)", f"{row.valid_kept}",
                  style=None if row.valid_kept == row.valid_sent else "bold red")
    table.add_row(f"RSS after start, MiB ({row.rss_note})", f"{row.rss_start_mib:.1f}")
    table.add_row("peak RSS during the fuzz, MiB", f"{row.rss_peak_mib:.1f}")
    table.add_row("verdict", "pass" if row.passed else "FAIL", style="bold green" if row.passed else "bold red")
    return table


def run_bench_fuzz(args) -> int:
    from rich.console import Console

    console = Console(width=150)  # the tables stay whole in logs and pipes
    if args.messages < 1:  # before any broker or receiver starts
        console.print(f"[red]edgeloop bench fuzz: --messages must be at least 1, not {args.messages}[/]")
        return 2
    started = time.monotonic()
    work = Path(args.out) / "fuzz"  # kept after the run: the receivers' logs explain any failure
    shutil.rmtree(work, ignore_errors=True)
    rows = run_fuzz(args.messages, args.seed, work)
    for row in rows:
        console.print(receiver_table(row))
        for note in row.crash_notes:
            console.print(f"  [red]{note}[/]")
    failed = [row.receiver for row in rows if not row.passed]
    console.print(f"fuzz: {len(rows)} receivers, {sum(r.mutated_sent for r in rows)} mutated messages, seed "
                  f"{args.seed}, {time.monotonic() - started:.0f} s: "
                  + (f"[bold red]FAIL[/] {failed}" if failed else "[bold green]all pass[/]"))
    return 1 if failed else 0
