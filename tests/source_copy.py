"""A copy of the package sources to build or install from: a stale ``build/`` in the work tree cannot leak in."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "endpoint", "edge", "pipelines")


def copy_sources(dest: Path) -> Path:
    """Copy what the wheel is built from into ``dest``; return it."""
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, dest / name)
    return dest
