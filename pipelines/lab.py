"""``edgeloop lab``: broker, object store, edge and endpoint processes on this machine, running R rounds of drift."""

from __future__ import annotations

import logging
import os
import shutil
import signal
from pathlib import Path

from rich.console import Console

from pipelines.logs import LOG_FORMAT

log = logging.getLogger(__name__)

# A lab run starts afresh: the learner's state from an earlier run in --out is not resumed.
STALE = ("rounds.jsonl", "history.jsonl", "state.json", "lab.log", "map_per_round.png", "static.onnx", "store",
         "endpoints", "work", "keys", "broker", "models", "replay")


def run_lab(args) -> int:
    from edge.store import StoreError
    from pipelines.scenarios import open_scenario

    console = Console(width=170)
    try:
        open_scenario(args.scenario, args.seed)
    except (OSError, ValueError) as exc:
        console.print(f"[red]edgeloop lab: bad --scenario:[/] {exc}")
        return 2
    out = Path(args.out)
    if problem := bad_lab_args(args, out):  # before anything of an earlier run in --out is deleted
        console.print(f"[red]edgeloop lab: {problem}")
        return 2
    if out.exists():
        for stale in STALE:
            target = out / stale
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    handler, console_levels = _log_to_file(out / "lab.log", verbose=getattr(args, "verbose", False))
    console.print(f"edgeloop lab: {args.endpoints} endpoints, {args.rounds} rounds, scenario {args.scenario}, "
                  f"policy {args.policy}, {args.budget_kbps:g} kbit/s; details in {out / 'lab.log'}")
    # SIGTERM (kill, systemd, docker stop) ends the run as Ctrl-C does: the broker and endpoints stop with it
    previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run_rounds(args, out, console)
    except StoreError as exc:  # e.g. --store HOST:PORT with the wrong --s3-access-key / --s3-secret-key
        console.print(f"[red]edgeloop lab: --store {args.store}:[/] {exc}")
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C's carries no signal number; _interrupt's does
        console.print("[yellow]interrupted: every lab process was stopped; results so far are in "
                      f"{out / 'rounds.jsonl'}[/]")
        return 128 + (exc.args[0] if exc.args else signal.SIGINT)  # the shell's convention
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        logging.getLogger().removeHandler(handler)
        handler.close()
        for console_handler, level in console_levels.items():  # the CLI's console as it was
            console_handler.setLevel(level)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(signum)


def bad_lab_args(args, out: Path) -> str | None:
    """What is wrong with the flags and ``--learning`` file, or None: checked before the lab starts anything."""
    from edge.learner.config import check_labels, check_policy
    from edge.store import StoreError, open_store
    from pipelines.lab_session import lab_learning_config, lab_store_config

    if args.endpoints < 1 or args.rounds < 1:
        return f"--endpoints and --rounds must be at least 1, not {args.endpoints} and {args.rounds}"
    if not (args.budget_kbps > 0 and args.round_s > 0 and args.frames >= 1 and args.seed >= 0):
        return (f"--budget-kbps and --round-s must be above 0, --frames at least 1 and --seed at least 0, not "
                f"{args.budget_kbps:g}, {args.round_s:g}, {args.frames} and {args.seed}")
    if args.metrics_port and not 1 <= args.metrics_port <= 65535 - args.endpoints:  # the endpoints take the next
        return f"--metrics-port {args.metrics_port} leaves no port for {args.endpoints} endpoints (1..65535)"
    for flag, path in (("--teacher", getattr(args, "teacher", None)), ("--student", getattr(args, "student", None))):
        if path and not Path(path).is_file():
            return f"{flag} {path}: no such weights file"
    for flag, check, value in (("--policy", check_policy, args.policy),
                               ("--labels", check_labels, args.labels.split(","))):
        try:
            check(value)
        except ValueError as exc:
            return f"bad {flag}: {exc}"
    try:
        lab_learning_config(args, out)  # the learning file, --imgsz, --teacher and --student: as the run reads them
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        return f"bad --learning or model flags: {exc}"
    if args.store != "local":  # a server that is down or refuses the keys, before the earlier run is deleted
        try:
            open_store(lab_store_config(args, out))
        except StoreError as exc:
            return f"--store {args.store}: {exc}"
    return None


def _run_rounds(args, out: Path, console: Console) -> int:
    from edge.learner.collect import NoFramesError
    from pipelines.lab_session import LabSession
    from pipelines.report import plot_results, results_table

    results = []
    with LabSession(args, out, console) as lab:
        for round_index in range(args.rounds):
            domain = lab.scenario.domain_for_round(round_index, args.rounds)
            with console.status(f"round {round_index}: {domain}") as status:
                lab.learner.on_stage = lambda text: (status.update(text), log.info("%s", text))
                lab.endpoints.check_alive()
                try:
                    round_results = lab.learner.run_round(domain, lab.settings())
                except NoFramesError as exc:
                    console.print(f"[red]edgeloop lab: {exc}[/]")
                    for ep in lab.endpoints.endpoints:
                        console.print(f"[dim]{ep.endpoint_id} log tail:[/]\n{ep.log_tail(1500)}")
                    return 1
            results.extend(round_results)
            console.print(results_table(round_results, title=f"round {round_index} ({domain})"))
    if not results:
        return 1
    console.print(results_table(results, title=f"edgeloop lab: {args.endpoints} endpoints, {args.rounds} rounds, "
                                               f"policy {args.policy}, {args.budget_kbps:g} kbit/s"))
    png = plot_results(results, out / "map_per_round.png")
    console.print(f"results: {out / 'rounds.jsonl'}   plot: {png}   rebuild both: edgeloop report {out}")
    return 0


def _log_to_file(path: Path, verbose: bool) -> tuple[logging.Handler, dict[logging.Handler, int]]:
    """Add ``lab.log`` to the CLI's logging; the console keeps tables and warnings (all with -v) until restored."""
    os.environ.setdefault("YOLO_VERBOSE", "True" if verbose else "False")  # before ultralytics is imported
    root = logging.getLogger()
    console_levels = {}
    if not verbose:
        for handler in root.handlers:
            if type(handler) is logging.StreamHandler:
                console_levels[handler] = handler.level
                handler.setLevel(logging.WARNING)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    root.addHandler(handler)
    return handler, console_levels
