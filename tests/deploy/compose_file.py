"""Read docker-compose.yml as Compose does: variables interpolated, required ones checked, YAML merge keys applied."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_PATH = REPO / "docker-compose.yml"
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
PLACEHOLDER = "<set by deploy/make-secrets.sh>"


class MissingVariable(KeyError):
    """A ``${VAR:?message}`` whose variable is not set: Compose refuses to start."""


def interpolate(text: str, env: dict[str, str] | None = None, strict: bool = False) -> str:
    """``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``, ``${VAR}``, ``$VAR`` and ``$$`` as Compose reads them.

    A required variable (``:?``) that is missing raises when ``strict``, else reads as PLACEHOLDER.
    """
    env = env or {}

    def replace(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, operator, argument = m.group(1) or m.group(4), m.group(2) or "", m.group(3) or ""
        value = env.get(name)
        if operator.endswith("?"):
            if value:
                return value
            if strict:
                raise MissingVariable(f"{name}: {argument}")
            return PLACEHOLDER
        return value or argument

    return _VARIABLE.sub(replace, text)


def required_variables() -> set[str]:
    """The variables docker-compose.yml refuses to start without."""
    return {m.group(1) for m in _VARIABLE.finditer(COMPOSE_PATH.read_text()) if (m.group(2) or "").endswith("?")}


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of a .env file, as Compose reads the simple ones."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def load_compose(env: dict[str, str] | None = None, strict: bool = False) -> dict:
    """The compose file as Compose reads it with ``env`` (none: what a fresh checkout holds, secrets unset)."""
    return yaml.safe_load(interpolate(COMPOSE_PATH.read_text(), env, strict))


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
