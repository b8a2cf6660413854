"""The ``edgeloop`` command: one entry point, a subcommand per job; parts are imported only when used."""

from __future__ import annotations

import argparse
import sys

from pipelines.logs import configure_logging


def _endpoint(args) -> int:
    if args.mode == "split":
        from endpoint.split.main import run_split_endpoint

        return run_split_endpoint(args.config)
    from endpoint.main import run_endpoint

    return run_endpoint(args.config)


def _edge(args) -> int:
    from edge.main import run_edge

    return run_edge(args.config)


def _lab(args) -> int:
    from pipelines.lab import run_lab

    return run_lab(args)


BENCHES = {  # name -> "module:function"; each benchmark module takes the parsed bench arguments
    "ingest": "pipelines.bench_ingest:run_bench_ingest",
    "spool": "pipelines.bench_spool:run_bench_spool",
    "endpoint": "pipelines.bench_endpoint:run_bench_endpoint",
    "scheduler": "pipelines.bench_scheduler:run_bench_scheduler",
    "fuzz": "pipelines.bench_fuzz:run_bench_fuzz",
    "split": "pipelines.bench_split:run_bench_split",
    "push": "pipelines.bench_push:run_bench_push",
    "distill": "pipelines.bench_distill:run_bench_distill",
    "delta": "pipelines.bench_delta:run_bench_delta",
    "data-defaults": "pipelines.bench_data_defaults:run_bench_data_defaults",
}


def _bench(args) -> int:
    import importlib

    module, function = BENCHES[args.what].split(":")
    return getattr(importlib.import_module(module), function)(args)


def _split_server(args) -> int:
    from edge.split.server import run_split_server

    return run_split_server(args)


def _edge_missing(args) -> int:
    print("edgeloop split-server runs on the edge: this installation has no edge package (the endpoint image)",
          file=sys.stderr)
    return 2


def _round(args) -> int:
    from pipelines.edge_round import run_round_command

    return run_round_command(args)


def _report(args) -> int:
    from pipelines.report import run_report

    return run_report(args)


def _pi_wheels(args) -> int:
    from pipelines.pi_wheels import main as pi_wheels_main

    return pi_wheels_main([])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeloop", description="End-edge continual learning for object detection.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("endpoint", help="run an endpoint (camera, video, folder or scenario → MQTT)")
    p.add_argument("--config", required=True, help="endpoint YAML config")
    p.add_argument("--mode", choices=["detect", "split"], default="detect",
                   help="detect: whole detector on the device; split: co-inference with the edge (split config)")
    p.set_defaults(func=_endpoint)

    p = sub.add_parser("edge", help="run the edge service: ingest (MQTT → object store) and the learner, "
                                    "as its roles say")
    p.add_argument("--config", required=True, help="edge YAML config")
    p.set_defaults(func=_edge)

    p = sub.add_parser("lab", help="bring up broker, store, endpoints and edge on this machine and run the loop")
    from pipelines.lab_args import add_lab_arguments

    add_lab_arguments(p)
    p.set_defaults(func=_lab)

    p = sub.add_parser("round", help="run one learning round against a running broker, ingest and endpoints")
    p.add_argument("--config", required=True, help="round YAML config (see deploy/config/round.yaml)")
    p.add_argument("--init", action="store_true", help="prepare the edge once: key, bootstrap models, first student")
    p.add_argument("--domain", default=None, help="name of the current domain (default: the config's)")
    p.set_defaults(func=_round)

    p = sub.add_parser("bench", help="benchmarks that print numbers")
    p.add_argument("what", choices=list(BENCHES),
                   help="which benchmark")
    p.add_argument("--frames", type=int, default=0,
                   help="ingest: frames per stream (0: what --duration-s allows); distill: drift frames (0: 130); "
                        "data-defaults: training images per data set (0: 160)")
    p.add_argument("--duration-s", type=float, default=12.0, help="ingest: seconds of publishing when --frames is 0")
    p.add_argument("--endpoints", type=int, default=None,
                   help="ingest: endpoint identities publishing at once (default 8); scheduler: simulated endpoints "
                        "(default: the simulation's, 2)")
    p.add_argument("--window", type=int, default=8, help="ingest: unacked frames each endpoint keeps in flight")
    p.add_argument("--workers", type=int, default=1, help="ingest: ingest instances on one shared subscription")
    p.add_argument("--pool-size", type=int, default=16, help="ingest: store threads per instance (1: the old design)")
    p.add_argument("--store-latency-ms", type=float, default=0.0, help="ingest: delay added to every store call")
    p.add_argument("--video", default="../shared/data/vtest.avi",
                   help="ingest: real video for the second stream; endpoint: the frames every model runs on")
    p.add_argument("--models", default="student,yolo11n-320,yolo11n-640", help="endpoint: models to measure")
    p.add_argument("--iterations", type=int, default=100, help="endpoint: timed calls per measurement (medians)")
    p.add_argument("--threads", type=int, default=1, help="endpoint: onnxruntime intra-op threads")
    p.add_argument("--student-onnx", default=None, help="endpoint: a trained FP32 student (default: built from YAML)")
    p.add_argument("--out", default="edgeloop-data/bench", help="where plots are written")
    p.add_argument("--surfaces", default=None, help="scheduler: measured response surfaces (default: shipped set)")
    p.add_argument("--rounds", type=int, default=None,
                   help="scheduler: simulated rounds per bandwidth (default 20); with --live, lab rounds (default 4)")
    p.add_argument("--live", action="store_true", help="scheduler: run the real lab per policy and budget")
    p.add_argument("--sparse", choices=["auto", "none"], default="auto",
                   help="scheduler: sparse-fraction push options, measured or derived (auto), or none")
    p.add_argument("--policies", default=None, help="scheduler --live: comma-separated policies (default: adaptive, "
                                                    "fixed-50-50, data-first, model-first)")
    p.add_argument("--budgets-kbps", default=None,
                   help="scheduler --live: starved,middle,plenty link rates per endpoint (default 320,1100,3000), "
                        "or name=kbps,... in the order to run")
    p.add_argument("--lab-args", default="", help="scheduler --live: more `edgeloop lab` flags, e.g. "
                                                  "--lab-args='--imgsz 64 --learning small.yaml'")
    p.add_argument("--seed", type=int, default=0, help="scheduler: simulation seed; fuzz: mutation seed")
    p.add_argument("--messages", type=int, default=10_000, help="fuzz: mutated messages per receiver")
    p.add_argument("--fractions", default="0.01,0.05,0.1,0.2", help="push: sparse fractions of the student trained")
    p.add_argument("--selection", default=None, choices=["gradient", "movement"],
                   help="push: how the sparse coordinates are chosen (default: the learning config's)")
    p.add_argument("--learning", default=None,
                   help="distill, push: YAML of learning settings (edge/learning_config.py)")
    p.add_argument("--dis", default="1", help="distill: comma-separated distillation loss weights to compare")
    from pipelines.bench_distill import DRIFT_LABELS

    p.add_argument("--labels", choices=list(DRIFT_LABELS), default="oracle",
                   help="distill: what the drift frames are labelled with: ground truth, or (teacher) the teacher's "
                        "pseudo-labels, as in `edgeloop lab --labels teacher`; held-out frames score on ground truth")
    p.add_argument("--seeds", default=None,
                   help="distill: training seeds to repeat the students over, N (--seed .. --seed+N-1) or a comma "
                        "list; the frames and teacher stay --seed's. Default: --seed alone")
    from pipelines.bench_delta import add_delta_arguments

    add_delta_arguments(p)
    p.set_defaults(func=_bench)

    p = sub.add_parser("split-server", help="co-inference: run split-detector tails for endpoints in --mode split")
    try:
        from edge.split.server_args import add_split_server_arguments
    except ImportError:  # the endpoint image carries no edge/: every other command must still parse
        p.set_defaults(func=_edge_missing)
    else:
        add_split_server_arguments(p)
        p.set_defaults(func=_split_server)

    p = sub.add_parser("report", help="the per-round table and map_per_round.png of a lab run")
    p.add_argument("dir", help="a lab --out directory or a learner state_dir, holding rounds.jsonl")
    p.set_defaults(func=_report)

    p = sub.add_parser("pi-wheels", help="check that every endpoint dependency has an aarch64 wheel for the Pi")
    p.set_defaults(func=_pi_wheels)
    for command in sub.choices.values():
        _accept_verbose(command)
    return parser


def _accept_verbose(command: argparse.ArgumentParser) -> None:
    """``edgeloop lab -v`` as well as ``edgeloop -v lab``; SUPPRESS keeps a top-level -v when none follows."""
    try:
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    except argparse.ArgumentError:
        pass  # the subcommand has a -v of its own


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgeloop")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)  # the only place the process's logging is set up
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
