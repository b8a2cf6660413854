"""The Raspberry Pi service: the systemd unit runs the real ``edgeloop endpoint`` from the venv, as its own
user, forever; the config in docs/raspberry-pi.md validates."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from endpoint.config import EndpointConfig
from pipelines.cli import build_parser
from tests.deploy.compose_file import REPO

UNIT = REPO / "deploy/systemd/edgeloop-endpoint.service"


@pytest.fixture(scope="module")
def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_runs_the_endpoint_from_the_venv(unit):
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[0] == "/opt/edgeloop/bin/edgeloop"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "endpoint" and args.config == "/etc/edgeloop/endpoint.yaml"


def test_unit_restarts_and_runs_as_a_dedicated_user(unit):
    service = unit["Service"]
    assert service["Restart"] == "always"
    assert service["User"] not in ("", "root", "pi") and service["Group"]
    assert service["StateDirectory"] == "edgeloop" and service["WorkingDirectory"] == "/var/lib/edgeloop"
    assert "video" in service["SupplementaryGroups"].split()  # cameras are group video on Raspberry Pi OS
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in unit["Unit"]["After"].split()


def test_systemd_accepts_the_unit():
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    out = subprocess.run([analyze, "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
    # The venv is not installed here; anything else systemd says about the unit is a mistake in it.
    complaints = [line for line in (out.stdout + out.stderr).splitlines()
                  if line.strip() and "/opt/edgeloop/bin/edgeloop" not in line]
    assert not complaints, "\n".join(complaints)


def test_pi_guide_config_validates():
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "docs/raspberry-pi.md").read_text(), re.S)
    configs = [yaml.safe_load(b) for b in blocks if b.startswith("endpoint_id:")]
    assert len(configs) == 1
    config = EndpointConfig.model_validate(configs[0])
    assert config.source.kind == "camera" and config.broker.username == config.endpoint_id
    for path in (config.uplink.spool_dir, config.model.models_dir):  # the unit's only writable directory
        assert path.startswith("/var/lib/edgeloop/"), path
