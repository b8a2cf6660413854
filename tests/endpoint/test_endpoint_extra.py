"""The ``endpoint`` extra installs alone (as on a Raspberry Pi) and every endpoint module imports there."""

import subprocess
import sys

import pytest

from tests.source_copy import copy_sources


IMPORT_ALL = """
import importlib, pkgutil, sys
import endpoint
names = [m.name for m in pkgutil.walk_packages(endpoint.__path__, "endpoint.")]
for name in names:
    importlib.import_module(name)
heavy = sorted(m for m in ("torch", "ultralytics", "torchvision", "edge", "minio") if m in sys.modules)
assert not heavy, f"endpoint modules pulled in {heavy}"
for forbidden in ("torch", "ultralytics"):
    try:
        importlib.import_module(forbidden)
    except ImportError:
        pass
    else:
        raise AssertionError(f"{forbidden} is installed in the endpoint-only venv")
print("imported", len(names), "endpoint modules")
"""


@pytest.mark.integration
def test_endpoint_extra_installs_without_torch(tmp_path):
    venv = tmp_path / "pi"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    (tmp_path / "src").mkdir()
    src = copy_sources(tmp_path / "src")  # not the work tree: a stale build/ there would leak old modules in
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              f"{src}[endpoint]"], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    # run from elsewhere so the repo checkout is not on sys.path: only the installed package counts
    out = subprocess.run([str(py), "-c", IMPORT_ALL], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "imported" in out.stdout
