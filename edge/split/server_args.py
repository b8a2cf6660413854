"""Flags of the split server, apart from the server so the CLI can list them without loading onnxruntime."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_split_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``edgeloop split-server`` (and ``python -m edge.split.server``)."""
    parser.add_argument("--set-dir", required=True, help="split set folder (python -m edge.split build)")
    parser.add_argument("--host", default="127.0.0.1", help="MQTT broker host")
    parser.add_argument("--port", type=int, default=1883, help="MQTT broker port (8883 with --tls-ca-file)")
    parser.add_argument("--username", default="", help="MQTT user (the compose broker's ACL knows 'split')")
    parser.add_argument("--password", default="", help="MQTT password (prefer --password-file: argv is public)")
    parser.add_argument("--password-file", default="", help="file holding the MQTT password (a Docker secret)")
    parser.add_argument("--tls-ca-file", default="", help="CA certificate of the broker: connect with TLS")
    parser.add_argument("--tls-cert-file", default="", help="client certificate, if the broker asks for one")
    parser.add_argument("--tls-key-file", default="", help="key of the client certificate")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its default)")
    parser.add_argument("--max-queue", type=int, default=32, help="requests waiting; past this they get 'busy'")
    parser.add_argument("--share-group", default="", help="MQTT shared-subscription group (several servers)")
    parser.add_argument("--options", default=None, help="measured options.json: re-decide splits per endpoint")
    parser.add_argument("--device-speed", type=float, default=0.2, help="device speed vs this CPU, for decisions")
    parser.add_argument("--accuracy-floor", type=float, default=0.0, help="lowest mAP50-95 a decision may pick")


def read_password(args: argparse.Namespace) -> str:
    """The MQTT password: the file's content (stripped) when ``--password-file`` is given, else ``--password``."""
    if args.password_file:
        return Path(args.password_file).read_text().strip()
    return args.password
