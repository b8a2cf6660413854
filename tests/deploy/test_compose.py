"""docker-compose.yml: schema, images and Dockerfiles, ports, mounts, and that each service runs a real
``edgeloop`` subcommand with a config that validates. No Docker engine is needed."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tomllib
from urllib.parse import urlparse

import pytest
import yaml

from edge.ingest_config import load_ingest_config
from endpoint.config import load_endpoint_config
from pipelines.cli import build_parser
from tests.deploy.compose_file import (COMPOSE_PATH, REPO, bind_source_for, host_path, is_bind, load_compose,
                                       mounts)

CONFIG_LOADERS = {"endpoint": load_endpoint_config, "edge": load_ingest_config}
PORT = re.compile(r"^(?:(?P<ip>[0-9.]+):)?(?P<host>\d+):(?P<container>\d+)(?:/(?P<proto>tcp|udp))?$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


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
    return CONFIG_LOADERS[command[1]](path)


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


def test_docker_compose_config_accepts_it():
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    out = subprocess.run([docker, "compose", "-f", str(COMPOSE_PATH), "config", "-q"], capture_output=True,
                         text=True, cwd=REPO, timeout=60)
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
    seen = {}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            m = PORT.match(str(port))
            assert m, f"{name}: port {port!r} is not [ip:]host:container[/proto]"
            for key in ("host", "container"):
                assert 1 <= int(m[key]) <= 65535, f"{name}: {port}"
            key = (m["ip"] or "0.0.0.0", int(m["host"]), m["proto"] or "tcp")
            assert key not in seen, f"{name} and {seen.get(key)} both publish {port}"
            seen[key] = name
    assert seen[("0.0.0.0", 1883, "tcp")] == "mosquitto"


def test_bind_mounts_exist_and_named_volumes_are_declared(compose):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for source, target in mounts(service):
            assert target.startswith("/"), f"{name}: {target}"
            if is_bind(source):
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
    CONFIG_LOADERS[args.command](host_config)  # raises on a field the config class does not know


def test_every_edgeloop_command_exists_in_the_cli(compose):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    commands = list(_edgeloop_services(compose).values())
    for dockerfile in (REPO / "deploy/docker").glob("*.Dockerfile"):
        commands += [json.loads(m) for m in re.findall(r"^CMD\s+(\[.*\])\s*$", _instructions(dockerfile), re.M)]
    assert len(commands) >= 5
    for command in commands:
        assert command[0] == "edgeloop" and command[1] in sub.choices, command
        build_parser().parse_args(command[1:])


def test_credentials_and_hosts_line_up(compose):
    services = compose["services"]
    edge = _config_of(compose, "edge")
    assert edge.broker_host == "mosquitto" and edge.username == "edge" and edge.password
    assert edge.store.kind == "s3" and edge.store.endpoint.split(":")[0] == "minio"
    minio_env = services["minio"]["environment"]
    assert (edge.store.access_key, edge.store.secret_key) == (minio_env["MINIO_ROOT_USER"],
                                                              minio_env["MINIO_ROOT_PASSWORD"])
    assert services["edge"]["depends_on"]["minio"]["condition"] == "service_healthy"
    ids = set()
    for name in ("endpoint-1", "endpoint-2"):
        config = _config_of(compose, name)
        # the ACL's %u patterns only confine an endpoint whose user name is its id
        assert config.broker.username == config.endpoint_id and config.broker.password
        assert config.broker.host == "mosquitto" and config.broker.port == edge.broker_port
        assert config.uplink.spool_dir.startswith("/var/lib/edgeloop")
        assert bind_source_for(services[name], "/var/lib/edgeloop") is None, "spool belongs in a named volume"
        ids.add(config.endpoint_id)
    assert len(ids) == 2 and "edge" not in ids


def test_prometheus_scrapes_every_metrics_port(compose):
    prometheus = compose["services"]["prometheus"]
    config_path = bind_source_for(prometheus, "/etc/prometheus/prometheus.yml")
    scrape = yaml.safe_load(config_path.read_text())["scrape_configs"]
    targets = {t for job in scrape for static in job.get("static_configs", []) for t in static["targets"]}
    wanted = set()
    for name in _edgeloop_services(compose):
        port = _config_of(compose, name).metrics_port
        assert port, f"{name} serves no metrics"
        wanted.add(f"{name}:{port}")
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
