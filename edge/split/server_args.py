"""Flags of the split server, apart from the server so the CLI can list them without loading onnxruntime."""

from __future__ import annotations

import argparse

from endpoint.wire.broker_config import BrokerConfig
from endpoint.wire.config_base import load_config

# flag dest -> BrokerConfig field; a flag left out (None) keeps the field from --broker-config or its default
BROKER_FLAGS = {"host": "host", "port": "port", "username": "username", "password": "password",
                "password_file": "password_file", "password_env": "password_env", "client_id": "client_id",
                "tls_ca_file": "tls_ca_file", "tls_cert_file": "tls_cert_file", "tls_key_file": "tls_key_file"}


def add_split_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``edgeloop split-server`` (and ``python -m edge.split.server``)."""
    parser.add_argument("--set-dir", required=True, help="split set folder (python -m edge.split build)")
    parser.add_argument("--broker-config", default=None,
                        help="YAML with the broker settings (a BrokerConfig, or a file with a 'broker:' section); "
                             "broker flags given as well override its fields")
    parser.add_argument("--host", default=None, help="MQTT broker host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help="MQTT broker port (default 1883; with --tls-ca-file give the TLS listener's, e.g. 8883)")
    parser.add_argument("--username", default=None, help="MQTT user (the compose broker's ACL knows 'split')")
    parser.add_argument("--password", default=None, help="MQTT password (prefer --password-file: argv is public)")
    parser.add_argument("--password-file", default=None, help="file holding the MQTT password (a Docker secret)")
    parser.add_argument("--password-env", default=None, help="environment variable holding the MQTT password")
    parser.add_argument("--client-id", default=None, help="MQTT client id (default: a unique one)")
    parser.add_argument("--tls-ca-file", default=None, help="CA certificate of the broker: connect with TLS")
    parser.add_argument("--tls-cert-file", default=None, help="client certificate, if the broker asks for one")
    parser.add_argument("--tls-key-file", default=None, help="key of the client certificate")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its default)")
    parser.add_argument("--max-queue", type=int, default=32, help="requests waiting; past this they get 'busy'")
    parser.add_argument("--share-group", default="", help="MQTT shared-subscription group (several servers)")
    parser.add_argument("--options", default=None, help="measured options.json: re-decide splits per endpoint")
    parser.add_argument("--device-speed", type=float, default=0.2, help="device speed vs this CPU, for decisions")
    parser.add_argument("--accuracy-floor", type=float, default=0.0, help="lowest mAP50-95 a decision may pick")


def broker_config_from_args(args: argparse.Namespace) -> BrokerConfig:
    """The broker settings: ``--broker-config`` (when given), then the broker flags given on top."""
    base = load_config(BrokerConfig, args.broker_config, section="broker") if args.broker_config else BrokerConfig()
    flags = {field: getattr(args, dest) for dest, field in BROKER_FLAGS.items() if getattr(args, dest) is not None}
    return BrokerConfig.model_validate({**base.model_dump(), **flags})
