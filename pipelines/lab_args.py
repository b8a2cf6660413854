"""Command-line flags of ``edgeloop lab``."""

from __future__ import annotations

import argparse


def add_lab_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoints", type=int, default=2, help="endpoint processes to start")
    p.add_argument("--rounds", type=int, default=4, help="learning rounds to run")
    p.add_argument("--frames", type=int, default=80, help="frames each endpoint sees per round")
    p.add_argument("--scenario", default="synthetic",
                   help="'synthetic' or a comma-separated list of YOLO data set folders, one per domain, in order")
    p.add_argument("--policy", default="adaptive", help="bandwidth scheduler policy (adaptive, fixed-50-50, ...)")
    p.add_argument("--budget-kbps", type=float, default=1000.0, help="link budget per endpoint, kilobits/s")
    p.add_argument("--round-s", type=float, default=10.0, help="link seconds per round (budget = kbps x round-s)")
    p.add_argument("--labels", default="oracle,import,teacher",
                   help="label sources in order of preference: oracle, import, teacher")
    p.add_argument("--imgsz", type=int, default=None,
                   help="training and student input size (default: the learning config's, 128; for YOLO-folder "
                        "scenarios, the data-aware size printed at start)")
    p.add_argument("--teacher", default=None, metavar="PT",
                   help="start from these ultralytics weights for the teacher (e.g. COCO-pretrained yolo11s.pt "
                        "whose classes match the scenario's); skips its bootstrap training")
    p.add_argument("--student", default=None, metavar="PT", help="the same for the student")
    p.add_argument("--learning", default=None,
                   help="YAML file of learning settings (models, epochs, replay; see edge/learning_config.py)")
    p.add_argument("--broker", choices=["auto", "mosquitto", "amqtt"], default="auto",
                   help="auto: Mosquitto when installed, else the embedded amqtt (no shared subscriptions)")
    p.add_argument("--store", default="local", help="'local' (a directory under --out) or an S3 host:port (bucket "
                   "edgeloop-lab, emptied at the start of each run, as the local directory is)")
    p.add_argument("--s3-access-key", default="minioadmin", help="S3 access key when --store is a host:port")
    p.add_argument("--s3-secret-key", default="minioadmin", help="S3 secret key when --store is a host:port")
    p.add_argument("--out", default="edgeloop-data/lab", help="results and data directory")
    p.add_argument("--cache", default="edgeloop-data/cache", help="bootstrapped models are cached here")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="serve Prometheus metrics on this port (endpoints on the next ports); 0: off")
    p.add_argument("--seed", type=int, default=0, help="scenario and training seed")
