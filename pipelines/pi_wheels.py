"""Check that every ``endpoint`` dependency installs on a Raspberry Pi from binary wheels (cp311, manylinux aarch64).

A Pi that has to build onnxruntime or OpenCV from source never finishes, so each
requirement, and what it depends on, must have a wheel. ``python -m pipelines.pi_wheels`` prints a table.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
# Raspberry Pi OS 64-bit (Bookworm): Python 3.11, glibc 2.36, aarch64.
PI_PYTHON_VERSION = "3.11"
PI_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class WheelCheck:
    """One requirement: ``wheel`` is the file pip chose, empty when none fits; ``detail`` says why."""

    requirement: str
    ok: bool
    wheel: str = ""
    detail: str = ""


def endpoint_requirements(pyproject: Path = REPO / "pyproject.toml", include_base: bool = True) -> list[str]:
    """The ``endpoint`` extra's requirements, after the base dependencies a Pi also installs."""
    project = tomllib.loads(pyproject.read_text())["project"]
    base = list(project.get("dependencies", [])) if include_base else []
    extra = [r for r in project["optional-dependencies"]["endpoint"] if not _canonical(r).startswith("edgeloop")]
    return base + extra


def pip_download_command(requirement: str, dest: Path, *, no_deps: bool = True) -> list[str]:
    """The ``pip download`` that only accepts wheels a Pi can install."""
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:"]
    for platform in PI_PLATFORMS:
        cmd += ["--platform", platform]
    cmd += ["--python-version", PI_PYTHON_VERSION, "--implementation", "cp", "-d", str(dest)]
    if no_deps:
        cmd.append("--no-deps")
    return cmd + [requirement]


def check_requirement(requirement: str, dest: Path, timeout_s: float = 120.0) -> WheelCheck:
    """Download, into the empty folder ``dest``, the wheel pip would pick for the Pi; ok when there is one."""
    try:
        proc = subprocess.run(pip_download_command(requirement, dest), capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return WheelCheck(requirement, False, detail=f"pip download took over {timeout_s:.0f} s")
    log.debug("pip download %s: exit %d", requirement, proc.returncode)
    if proc.returncode != 0:
        return WheelCheck(requirement, False, detail=_pip_error(proc.stderr))
    wheels = sorted(p.name for p in dest.glob("*.whl"))
    return WheelCheck(requirement, bool(wheels), wheel=wheels[0] if wheels else "",
                      detail="" if wheels else "pip chose no wheel")


def check_dependencies(requirements: list[str], dest: Path, timeout_s: float = 300.0) -> list[WheelCheck]:
    """Resolve all requirements together with their dependencies; one row per dependency pulled in."""
    cmd = pip_download_command(requirements[0], dest, no_deps=False) + requirements[1:]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return [WheelCheck("(dependencies)", False, detail=f"pip download took over {timeout_s:.0f} s")]
    if proc.returncode != 0:
        return [WheelCheck("(dependencies)", False, detail=_pip_error(proc.stderr))]
    direct = {_canonical(r) for r in requirements}
    rows = []
    for wheel in sorted(dest.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        if _canonical(name) not in direct:
            rows.append(WheelCheck(f"{name}=={version}", True, wheel=wheel.name, detail="dependency"))
    return rows


def check_pi_wheels(requirements: list[str] | None = None, *, dependencies: bool = True,
                    workers: int = 4) -> list[WheelCheck]:
    """Check each requirement (default: base + ``endpoint`` extra), then, if asked, what they depend on."""
    requirements = requirements if requirements is not None else endpoint_requirements()
    with tempfile.TemporaryDirectory(prefix="edgeloop-pi-wheels-") as tmp:
        # One folder per requirement, so parallel pips never see each other's files.
        dirs = [Path(tmp) / f"{i:02d}" for i in range(len(requirements))]
        for d in dirs:
            d.mkdir()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(check_requirement, requirements, dirs))
        if dependencies and requirements and all(r.ok for r in results):
            (Path(tmp) / "deps").mkdir()
            results += check_dependencies(requirements, Path(tmp) / "deps")
    return results


def format_table(results: list[WheelCheck]) -> str:
    """A plain-text table: requirement, ok/missing, the wheel or why not."""
    rows = [("requirement", "status", "wheel / reason")]
    rows += [(r.requirement, "ok" if r.ok else "MISSING", r.wheel or r.detail) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def _canonical(requirement: str) -> str:
    match = _NAME.match(requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else requirement.lower()


def _pip_error(stderr: str) -> str:
    errors = [line.strip() for line in stderr.splitlines() if line.startswith("ERROR")]
    return errors[0] if errors else (stderr.strip().splitlines() or ["pip download failed"])[-1]


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit 1 if any requirement has no Pi wheel."""
    requirements = list(argv) if argv else None
    results = check_pi_wheels(requirements)
    print(f"Raspberry Pi wheels (cp{PI_PYTHON_VERSION.replace('.', '')}, {', '.join(PI_PLATFORMS)}):")
    print(format_table(results))
    missing = [r.requirement for r in results if not r.ok]
    if missing:
        print(f"{len(missing)} without a wheel: {', '.join(missing)}")
    return 1 if missing else 0


if __name__ == "__main__":
    from pipelines.logs import configure_logging

    configure_logging(level=logging.WARNING)
    sys.exit(main(sys.argv[1:]))
