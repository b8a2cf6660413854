"""The compose Mosquitto (the repo's mosquitto.conf, ACL and a password file) as a process on a loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pipelines.broker import mosquitto_binary
from pipelines.ports import free_port, wait_for_port
from tests.deploy.compose_file import REPO

DEPLOY = REPO / "deploy/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
COMPOSE_PORTS = {"1883": "plain", "8883": "tls"}


def make_certs(out: Path) -> Path:
    """The CA and server certificate, made by the script compose users run (deploy/mosquitto/make-certs.sh)."""
    subprocess.run(["sh", str(DEPLOY / "make-certs.sh"), str(out)], check=True, capture_output=True)
    return out


def repo_conf_lines(ports: dict[str, int], passwords: Path, certs: Path, workdir: Path) -> list[str]:
    """The repo's mosquitto.conf with only where it listens and where its files are changed."""
    overrides = {"password_file": str(passwords), "acl_file": str(DEPLOY / "acl"), "cafile": str(certs / "ca.crt"),
                 "certfile": str(certs / "server.crt"), "keyfile": str(certs / "server.key"),
                 "persistence_location": f"{workdir}/", "log_dest": "stdout"}
    lines = []
    for line in (DEPLOY / "mosquitto.conf").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.strip().partition(" ")
        if key == "listener":
            value = f"{ports[COMPOSE_PORTS[value.split()[0]]]} 127.0.0.1"
        lines.append(f"{key} {overrides.get(key, value)}")
    if os.geteuid() == 0:
        lines.append("user root")  # else Mosquitto drops to its own user, who cannot read pytest's tmp dirs
    return lines


def write_passwords(path: Path, users: dict[str, str]) -> Path:
    for i, (user, password) in enumerate(users.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run([MOSQUITTO_PASSWD, "-b", *create, str(path), user, password], check=True)
    return path


def start_compose_broker(workdir: Path, users: dict[str, str]) -> tuple[subprocess.Popen, dict[str, int], Path]:
    """Start it with both compose listeners ("plain" for 1883, "tls" for 8883); return the CA file clients trust."""
    workdir.mkdir(parents=True, exist_ok=True)
    passwords = write_passwords(workdir / "passwords", users)
    certs = make_certs(workdir / "certs")
    ports = {"plain": free_port(), "tls": free_port()}
    (workdir / "mosquitto.conf").write_text("\n".join(repo_conf_lines(ports, passwords, certs, workdir)) + "\n")
    log = open(workdir / "mosquitto.log", "wb")
    process = subprocess.Popen([mosquitto_binary(), "-c", str(workdir / "mosquitto.conf")], stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        for port in ports.values():
            wait_for_port(port, timeout_s=10)
    except TimeoutError:
        process.kill()
        raise RuntimeError((workdir / "mosquitto.log").read_text()) from None
    return process, ports, certs / "ca.crt"
