"""docker-compose.yml: schema, images and Dockerfiles, ports, mounts, and that each service runs a real
``edgeloop`` subcommand with a config that validates. No Docker engine is needed."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from edge.service_config import EdgeServiceConfig
from endpoint.config import EndpointConfig
from endpoint.wire.config_base import load_config
from pipelines.cli import build_parser
from tests.deploy.compose_file import (COMPOSE_PATH, REPO, MissingVariable, bind_source_for, host_path, is_bind,
                                       load_compose, mounts, read_env_file, required_variables)

CONFIG_MODELS = {"endpoint": EndpointConfig, "edge": EdgeServiceConfig}
PORT = re.compile(r"^(?:(?P<ip>[0-9.]+):)?(?P<host>\d+):(?P<container>\d+)(?:/(?P<proto>tcp|udp))?$")
# what deploy/make-secrets.sh writes: never in git, so a fresh checkout lacks them until it runs
GENERATED = ("deploy/secrets/", "deploy/mosquitto/passwords", "deploy/mosquitto/certs/", ".env")


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Path:
    """A folder holding what deploy/make-secrets.sh makes, as it would in the repository."""
    if not (shutil.which("openssl") and shutil.which("python3")):
        pytest.skip("deploy/make-secrets.sh needs openssl and python3")
    root = tmp_path_factory.mktemp("deployment")
    subprocess.run([str(REPO / "deploy/make-secrets.sh")], check=True, capture_output=True, timeout=60,
                   env={**os.environ, "EDGELOOP_SECRETS_ROOT": str(root)})
    return root


def _generated(source: str) -> str | None:
    """The repository-relative path of a bind source that deploy/make-secrets.sh makes, else None."""
    relative = str(host_path(source).relative_to(REPO)) if str(host_path(source)).startswith(str(REPO)) else ""
    return relative if relative and any(relative == g.rstrip("/") or relative.startswith(g) for g in GENERATED) \
        else None


def _dockerfile(service: dict):
    build = service.get("build")
    if build is None:
        return None
    context = REPO / (build if isinstance(build, str) else build.get("context", "."))
    return context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")


def _instructions(dockerfile) -> str:
    """The Dockerfile without its comment lines."""
    return "\n".join(line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#"))


def _edgeloop_services(compose: dict) -> dict[str, list[str]]:
    return {name: s["command"] for name, s in compose["services"].items()
            if isinstance(s.get("command"), list) and s["command"][:1] == ["edgeloop"]}


def _config_of(compose: dict, service: str):
    command = compose["services"][service]["command"]
    path = bind_source_for(compose["services"][service], command[command.index("--config") + 1])
    return load_config(CONFIG_MODELS[command[1]], path)


def test_matches_the_compose_specification_schema(compose):
    pytest.importorskip("jsonschema")
    check_jsonschema = pytest.importorskip("check_jsonschema", reason="ships the vendored compose-spec.json")
    from importlib.resources import files

    import jsonschema

    schema = json.loads((files(check_jsonschema.__name__) / "builtin_schemas/vendor/compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)
    broken = copy.deepcopy(compose)
    broken["services"]["edge"]["restart_policy"] = "always"  # not a service key: the schema must say so
    assert not validator.is_valid(broken)


def test_docker_compose_config_accepts_it(deployment):
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    out = subprocess.run([docker, "compose", "-f", str(COMPOSE_PATH), "--env-file", str(deployment / ".env"),
                          "config", "-q"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr


def test_every_service_has_an_image_or_a_dockerfile(compose):
    assert {"mosquitto", "minio", "edge", "endpoint-1", "endpoint-2", "prometheus", "grafana"} <= set(
        compose["services"])
    for name, service in compose["services"].items():
        assert service.get("image") or service.get("build"), name
        dockerfile = _dockerfile(service)
        if dockerfile is not None:
            assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
            text = _instructions(dockerfile)
            assert re.search(r"^FROM python:3\.11-slim\b", text, re.M), name
            for source in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+?)\s+\S+\s*$", text, re.M):
                for part in source.split():
                    assert (REPO / part).exists(), f"{dockerfile.name} copies missing {part}"
    assert compose["services"]["mosquitto"]["image"].startswith("eclipse-mosquitto:2")


def test_endpoint_image_installs_only_the_endpoint_extra():
    text = _instructions(REPO / "deploy/docker/endpoint.Dockerfile")
    installs = [i.strip() for i in re.findall(r"pip install\s+([^\n&\\]+)", text)]
    assert installs == ['".[endpoint]"'], installs
    assert not re.search(r"^COPY\s+edge/", text, re.M), "the endpoint image must not carry the edge sources"
    assert "torch" not in " ".join(installs)
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pulled, todo = set(), ["endpoint"]
    while todo:  # follow edgeloop[...] self-references
        for req in extras[todo.pop()]:
            for extra in re.findall(r"^edgeloop\[([^\]]+)\]", req):
                todo += [e.strip() for e in extra.split(",") if e.strip() not in pulled]
            pulled.add(req.lower())
    assert not [r for r in pulled if r.startswith(("torch", "ultralytics", "minio"))], pulled


def test_published_ports_are_well_formed_and_unique(compose):
    seen: dict[tuple[str, int, str], str] = {}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            m = PORT.match(str(port))
            assert m, f"{name}: port {port!r} is not [ip:]host:container[/proto]"
            for key in ("host", "container"):
                assert 1 <= int(m[key]) <= 65535, f"{name}: {port}"
            key = (m["ip"] or "0.0.0.0", int(m["host"]), m["proto"] or "tcp")
            assert key not in seen, f"{name} and {seen.get(key)} both publish {port}"
            seen[key] = name
    assert seen[("0.0.0.0", 1883, "tcp")] == "mosquitto" and seen[("0.0.0.0", 8883, "tcp")] == "mosquitto"
    # beyond this host only the broker listens; S3, the MinIO console, Prometheus and Grafana stay on loopback
    public = {(ip, port) for ip, port, _ in seen if ip != "127.0.0.1"}
    assert public == {("0.0.0.0", 1883), ("0.0.0.0", 8883)}, public
    assert not [p for p in compose["services"]["minio"].get("ports", []) if str(p).endswith(":9000")]


def test_bind_mounts_exist_and_named_volumes_are_declared(compose, deployment):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for source, target in mounts(service):
            assert target.startswith("/"), f"{name}: {target}"
            if is_bind(source) and _generated(source):
                assert (deployment / _generated(source)).exists(), f"{name}: make-secrets.sh does not make {source}"
            elif is_bind(source):
                assert host_path(source).exists(), f"{name}: {source} is not in the repository"
                assert str(host_path(source)).startswith(str(REPO)), f"{name}: {source} is outside the repository"
            elif source:
                assert source in declared, f"{name}: named volume {source} is not declared"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"


@pytest.mark.parametrize("service", ["edge", "endpoint-1", "endpoint-2"])
def test_service_runs_an_edgeloop_subcommand_with_a_valid_config(compose, service):
    command = _edgeloop_services(compose)[service]
    args = build_parser().parse_args(command[1:])  # argparse exits on an unknown subcommand or flag
    assert args.command == ("edge" if service == "edge" else "endpoint")
    host_config = bind_source_for(compose["services"][service], args.config)
    assert host_config is not None, f"{service}: {args.config} is not mounted from the repository"
    load_config(CONFIG_MODELS[args.command], host_config)  # raises on a field the config class does not know


def test_every_edgeloop_command_exists_in_the_cli(compose):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    commands = list(_edgeloop_services(compose).values())
    for dockerfile in (REPO / "deploy/docker").glob("*.Dockerfile"):
        commands += [json.loads(m) for m in re.findall(r"^CMD\s+(\[.*\])\s*$", _instructions(dockerfile), re.M)]
    assert len(commands) >= 5
    for command in commands:
        assert command[0] == "edgeloop" and command[1] in sub.choices, command
        build_parser().parse_args(command[1:])


@pytest.mark.parametrize("service", ["endpoint-1", "endpoint-2"])
def test_endpoint_commands_run_in_an_image_without_the_edge_package(compose, service):
    """The endpoint image copies endpoint/ and pipelines/ only; building the CLI's parser imported edge.split, so
    every endpoint container died with ModuleNotFoundError before reading its config."""
    command = _edgeloop_services(compose)[service]
    code = ("import sys; sys.modules['edge'] = None  # as in the image: any import of edge fails\n"
            f"from pipelines.cli import main; sys.exit(main({command[1:]!r}))")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    # the container's config path is not on this machine: the config check answers, not an import
    assert run.returncode == 2 and "bad config" in run.stderr, run.stderr[-2000:]
    assert "No module named" not in run.stderr


def test_a_named_volume_a_service_writes_is_a_folder_its_image_gives_its_user(compose):
    """Docker copies the image's folder, and its owner, into a fresh named volume, and makes a mount point the image
    lacks root's: the learner (uid 10001) could not write edge-keys at /var/lib/edgeloop/keys."""
    checked = 0
    for name, service in compose["services"].items():
        dockerfile = (service.get("build") or {}).get("dockerfile")
        if not dockerfile:
            continue
        text = _instructions(REPO / dockerfile)
        users = re.findall(r"^USER\s+(\S+)", text, re.M)
        if not users or users[-1] in ("root", "0"):
            continue
        owned = [Path(p) for chown in re.findall(rf"chown\s+(?:-R\s+)?{users[-1]}:\S+\s+([^&\n]+)", text)
                 for p in chown.split()]
        made = {Path(p) for mkdir in re.findall(r"mkdir\s+-p\s+([^&\n]+)", text) for p in mkdir.split()}
        made |= {Path(p) for p in re.findall(r"--home-dir\s+(\S+)\s+--create-home", text)}
        recursive = re.search(rf"chown\s+-R\s+{users[-1]}:", text) is not None
        for volume in service.get("volumes", []):
            source, target = mounts({"volumes": [volume]})[0]
            if is_bind(source) or not source or str(volume).endswith(":ro"):
                continue
            target = Path(target)
            assert target in made, f"{name}: {dockerfile} does not make {target}, the mount point of {source}"
            assert target in owned or (recursive and any(target.is_relative_to(o) for o in owned)), \
                f"{name}: {dockerfile} does not give {target} to {users[-1]}"
            checked += 1
    assert checked >= 4  # edge-data, edge-keys and each endpoint's data


def _secret_file(compose: dict, service: str, path: str) -> str:
    """The repository path of the compose secret a service reads at ``path`` (/run/secrets/<target>)."""
    assert path.startswith("/run/secrets/"), f"{service}: {path} is not a compose secret"
    for entry in compose["services"][service].get("secrets", []):
        source, target = (entry, entry) if isinstance(entry, str) else (entry["source"], entry.get("target", ""))
        if f"/run/secrets/{target or source}" == path:
            return str(host_path(compose["secrets"][source]["file"]).relative_to(REPO))
    raise AssertionError(f"{service} has no secret mounted at {path}")


def test_credentials_come_from_make_secrets_and_line_up(compose, deployment):
    services = compose["services"]
    edge = _config_of(compose, "edge")
    logins = [(edge.ingest, "edge"), (edge.learner, "learner")]
    for role, user in logins:
        assert role.broker.host == "mosquitto" and role.broker.username == user and not role.broker.password
        assert _secret_file(compose, "edge", role.broker.password_file) == f"deploy/secrets/{user}.password"
        assert role.broker.port == 8883 and bind_source_for(services["edge"], role.broker.tls_ca_file) == \
            REPO / "deploy/mosquitto/certs/ca.crt"
        assert role.store.kind == "s3" and role.store.endpoint.split(":")[0] == "minio"
        assert role.store.access_key == services["minio"]["environment"]["MINIO_ROOT_USER"]
        assert _secret_file(compose, "edge", role.store.secret_key_file) == "deploy/secrets/minio-secret-key"
    # the MinIO root password compose reads from .env is the key the edge reads from its secret
    env = read_env_file(deployment / ".env")
    assert env["MINIO_ROOT_PASSWORD"] == (deployment / "deploy/secrets/minio-secret-key").read_text().strip()
    assert load_compose(env, strict=True)["services"]["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == \
        env["MINIO_ROOT_PASSWORD"]
    assert services["edge"]["depends_on"]["minio"]["condition"] == "service_healthy"
    ids = set()
    for name in ("endpoint-1", "endpoint-2"):
        config = _config_of(compose, name)
        # the ACL's %u patterns only confine an endpoint whose user name is its id
        assert config.broker.username == config.endpoint_id and not config.broker.password
        assert _secret_file(compose, name, config.broker.password_file) == \
            f"deploy/secrets/{config.endpoint_id}.password"
        assert config.broker.host == "mosquitto" and config.broker.port == 8883
        assert bind_source_for(services[name], config.broker.tls_ca_file) == REPO / "deploy/mosquitto/certs/ca.crt"
        assert config.uplink.spool_dir.startswith("/var/lib/edgeloop")
        assert bind_source_for(services[name], "/var/lib/edgeloop") is None, "spool belongs in a named volume"
        ids.add(config.endpoint_id)
    assert len(ids) == 2 and not ids & {"edge", "learner", "split", "apps"}
    for secret in compose["secrets"].values():
        assert (deployment / host_path(secret["file"]).relative_to(REPO)).is_file()


def test_compose_refuses_to_start_without_generated_secrets(deployment):
    assert required_variables() >= {"MINIO_ROOT_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
    with pytest.raises(MissingVariable):
        load_compose({}, strict=True)
    env = read_env_file(deployment / ".env")
    assert required_variables() <= set(env)
    grafana = load_compose(env, strict=True)["services"]["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] not in ("", "admin")
    again = deployment.parent / "deployment-again"
    again.mkdir(exist_ok=True)
    subprocess.run([str(REPO / "deploy/make-secrets.sh")], check=True, capture_output=True, timeout=60,
                   env={**os.environ, "EDGELOOP_SECRETS_ROOT": str(again)})
    assert read_env_file(again / ".env") != env  # per deployment: a second one gets its own secrets


def test_no_secret_is_committed():
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *GENERATED], cwd=REPO, capture_output=True,
                             text=True).stdout.split()
    assert sorted(ignored) == sorted(GENERATED), f"not git-ignored: {set(GENERATED) - set(ignored)}"
    assert not (REPO / "deploy/mosquitto/passwords.example").exists()

    def secrets_in(node, where: str):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("password", "secret_key") and value:
                    yield f"{where}.{key}"
                yield from secrets_in(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from secrets_in(value, f"{where}[{i}]")

    found = [hit for path in sorted((REPO / "deploy/config").glob("compose-*.yaml"))
             for hit in secrets_in(yaml.safe_load(path.read_text()), path.name)]
    assert not found, f"plaintext credentials in committed configs: {found}"
    text = COMPOSE_PATH.read_text()
    assert "MINIO_ROOT_PASSWORD: ${" in text and "GF_SECURITY_ADMIN_PASSWORD: ${" in text


def test_prometheus_scrapes_every_metrics_port(compose):
    prometheus = compose["services"]["prometheus"]
    config_path = bind_source_for(prometheus, "/etc/prometheus/prometheus.yml")
    scrape = yaml.safe_load(config_path.read_text())["scrape_configs"]
    targets = {t for job in scrape for static in job.get("static_configs", []) for t in static["targets"]}
    wanted = set()
    for name in _edgeloop_services(compose):
        config = _config_of(compose, name)
        # the edge service serves one port per role it runs (ingest, learner)
        ports = [getattr(config, role).metrics_port for role in config.roles] if hasattr(config, "roles") \
            else [config.metrics_port]
        assert all(ports), f"{name} serves no metrics on some role"
        wanted |= {f"{name}:{port}" for port in ports}
    assert targets == wanted


def test_grafana_provisioning_points_at_compose_services(compose):
    grafana = compose["services"]["grafana"]
    provisioning = bind_source_for(grafana, "/etc/grafana/provisioning")
    datasource = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())["datasources"][0]
    url = urlparse(datasource["url"])
    assert url.hostname in compose["services"] and url.port == 9090
    assert any(p.endswith(":9090") for p in compose["services"][url.hostname]["ports"])
    provider = yaml.safe_load((provisioning / "dashboards/edgeloop.yml").read_text())["providers"][0]
    dashboards = bind_source_for(grafana, provider["options"]["path"])
    assert dashboards is not None and (dashboards / "edgeloop.json").is_file()
    dashboard = json.loads((dashboards / "edgeloop.json").read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {datasource["uid"]}
