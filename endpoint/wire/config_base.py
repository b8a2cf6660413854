"""One strict base for every config, and one YAML loader whose errors name the file and the bad field."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger(__name__)

MAX_CONFIG_BYTES = 1024 * 1024  # a config is a page of YAML; anything larger is the wrong file


class StrictConfig(BaseModel):
    """Base of every config: an unknown field is an error, so a typo fails at load, not at use."""

    model_config = ConfigDict(extra="forbid")


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def load_config(model: type[ConfigT], path: str | Path, section: str | None = None) -> ConfigT:
    """Read ``path`` as YAML into ``model``; with ``section``, a top-level mapping of that name is read if present.

    A bad field raises pydantic's ValidationError titled with the model and the file; bad YAML raises ValueError.
    """
    path = Path(path)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size} bytes is not a config (at most {MAX_CONFIG_BYTES})")
    try:
        with path.open(encoding="utf-8") as f:  # a stream, so YAML errors name the file
            raw = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a config is a mapping of fields, got {type(raw).__name__}")
    in_section = section is not None and isinstance(raw.get(section), dict)
    if in_section:
        raw = raw[section]
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        title = f"{model.__name__} in {path}" + (f" (section {section!r})" if in_section else "")
        raise ValidationError.from_exception_data(title, exc.errors(include_url=False)) from None


def load_command_config(model: type[ConfigT], path: str | Path, command: str,
                        section: str | None = None) -> ConfigT | None:
    """``load_config`` for a command's ``--config``: a missing or bad file is logged in one line, and None."""
    try:
        return load_config(model, path, section)
    except (OSError, ValueError, ValidationError) as exc:  # ValidationError is a ValueError; named for the reader
        log.error("%s: bad config %s: %s", command, path, exc)
        return None


__all__ = ["MAX_CONFIG_BYTES", "StrictConfig", "load_command_config", "load_config"]
