"""The ``edgeloop`` command: one entry point, a subcommand per job; parts are imported only when used."""

from __future__ import annotations

import argparse
import logging
import sys


def _endpoint(args) -> int:
    from endpoint.main import run_endpoint

    return run_endpoint(args.config)


def _edge(args) -> int:
    from edge.main import run_edge

    return run_edge(args.config)


def _lab(args) -> int:
    from pipelines.lab import run_lab

    return run_lab(args)


def _bench(args) -> int:
    if args.what == "ingest":
        from pipelines.bench_ingest import run_bench_ingest

        return run_bench_ingest(args)
    raise SystemExit(f"unknown benchmark {args.what!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeloop", description="End-edge continual learning for object detection.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("endpoint", help="run an endpoint (camera, video, folder or scenario → MQTT)")
    p.add_argument("--config", required=True, help="endpoint YAML config")
    p.set_defaults(func=_endpoint)

    p = sub.add_parser("edge", help="run the edge ingest (MQTT → object store)")
    p.add_argument("--config", required=True, help="edge YAML config")
    p.set_defaults(func=_edge)

    p = sub.add_parser("lab", help="bring up broker, store, endpoints and edge on this machine and run the loop")
    from pipelines.lab_args import add_lab_arguments

    add_lab_arguments(p)
    p.set_defaults(func=_lab)

    p = sub.add_parser("bench", help="benchmarks that print numbers")
    p.add_argument("what", choices=["ingest"], help="which benchmark")
    p.add_argument("--frames", type=int, default=300, help="frames per stream")
    p.add_argument("--video", default="../shared/data/vtest.avi", help="real video for the second stream")
    p.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("urllib3", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
