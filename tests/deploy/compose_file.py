"""Read docker-compose.yml as Compose does: variables interpolated (defaults only), YAML merge keys applied."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_PATH = REPO / "docker-compose.yml"
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """``${VAR:-default}``, ``${VAR-default}``, ``${VAR}``, ``$VAR`` and ``$$`` as Compose reads them."""
    env = env or {}

    def replace(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(3)
        return env.get(name) or (m.group(2) or "")

    return _VARIABLE.sub(replace, text)


def load_compose(env: dict[str, str] | None = None) -> dict:
    """The compose file with no environment set: what a fresh checkout runs."""
    return yaml.safe_load(interpolate(COMPOSE_PATH.read_text(), env))


def mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of every volume of a service, short or long syntax."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out.append((volume.get("source", ""), volume["target"]))
        else:
            parts = volume.split(":")
            out.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
    return out


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def host_path(source: str) -> Path:
    return (REPO / source).resolve()


def bind_source_for(service: dict, target: str) -> Path | None:
    """The repository file bind-mounted at ``target`` in the service, if any."""
    for source, mounted_at in mounts(service):
        if mounted_at == target and is_bind(source):
            return host_path(source)
    return None
