"""Command-line flags of ``edgeloop lab``."""

from __future__ import annotations

import argparse


def add_lab_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoints", type=int, default=2, help="endpoint processes to start")
    p.add_argument("--rounds", type=int, default=3, help="learning rounds to run")
    p.add_argument("--frames", type=int, default=120, help="frames each endpoint streams per round")
    p.add_argument("--scenario", default="synthetic",
                   help="'synthetic' or a comma-separated list of YOLO data set folders, one per domain")
    p.add_argument("--policy", default="adaptive", help="bandwidth scheduler policy")
    p.add_argument("--budget-kbps", type=float, default=2000.0, help="link budget per endpoint, kilobits/s")
    p.add_argument("--store", default="local", help="'local' (a directory under --out) or an S3 host:port")
    p.add_argument("--out", default="edgeloop-data/lab", help="results and data directory")
    p.add_argument("--seed", type=int, default=0, help="scenario seed")
