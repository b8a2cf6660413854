"""Flags of the split server, apart from the server so the CLI can list them without loading onnxruntime."""

from __future__ import annotations

import argparse


def add_split_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``edgeloop split-server`` (and ``python -m edge.split_server``)."""
    parser.add_argument("--set-dir", required=True, help="split set folder (python -m edge.split build)")
    parser.add_argument("--host", default="127.0.0.1", help="MQTT broker host")
    parser.add_argument("--port", type=int, default=1883, help="MQTT broker port")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its default)")
    parser.add_argument("--share-group", default="", help="MQTT shared-subscription group (several servers)")
    parser.add_argument("--options", default=None, help="measured options.json: re-decide splits per endpoint")
    parser.add_argument("--device-speed", type=float, default=0.2, help="device speed vs this CPU, for decisions")
    parser.add_argument("--accuracy-floor", type=float, default=0.0, help="lowest mAP50-95 a decision may pick")
