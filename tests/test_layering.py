"""Arrows point one way: pipelines → edge → endpoint; the endpoint never imports torch or ultralytics."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "endpoint": {"edge", "pipelines", "torch", "torchvision", "ultralytics"},
    "edge": {"pipelines"},
}
# The edge may use the wire contract and the model files (detector, NMS, split halves), nothing else of the endpoint.
EDGE_MAY_IMPORT = ("endpoint.wire", "endpoint.model")
# One named exception: the synthetic scenario is a frame source on the endpoint and, on the edge, the generator of
# bootstrap and held-out data, so both sides draw the same distribution. It imports only numpy and OpenCV.
EDGE_MAY_ALSO_IMPORT = {"endpoint.sources.scenario"}


def imported_roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, lazy imports inside functions included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            # `from endpoint.wire import protocol` imports the module endpoint.wire.protocol
            names |= {f"{node.module}.{alias.name}" for alias in node.names if _module_file(f"{node.module}.{alias.name}")}
    return names


def _module_file(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _edge_allowed(name: str) -> bool:
    if name in ("endpoint", *EDGE_MAY_IMPORT) or name in EDGE_MAY_ALSO_IMPORT:
        return True
    return any(name.startswith(room + ".") for room in EDGE_MAY_IMPORT)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_the_wrong_way(package):
    offenders = {str(path.relative_to(REPO)): sorted(imported_roots(path) & FORBIDDEN[package])
                 for path in sorted((REPO / package).rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_edge_imports_only_wire_and_model_of_the_endpoint():
    """Checked through the endpoint too: what the edge imports may itself import only the allowed rooms."""
    todo = [(str(path.relative_to(REPO)), name) for path in sorted((REPO / "edge").rglob("*.py"))
            for name in imported_modules(path) if name.split(".")[0] == "endpoint"]
    seen, offenders = set(), []
    while todo:
        importer, name = todo.pop()
        if not _edge_allowed(name):
            offenders.append(f"{importer} imports {name}")
        if name in seen or _module_file(name) is None:
            continue
        seen.add(name)
        todo += [(name, n) for n in imported_modules(_module_file(name)) if n.split(".")[0] == "endpoint"]
    assert offenders == []
    assert EDGE_MAY_ALSO_IMPORT <= seen, "an exception nothing needs any more: remove it"


def test_the_check_sees_a_forbidden_import(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from endpoint.uplink import spool\n    import endpoint.split.client\n")
    assert {"endpoint.uplink.spool", "endpoint.split.client"} <= imported_modules(path)
    assert not _edge_allowed("endpoint.uplink.spool") and not _edge_allowed("endpoint.sources.streams")
    assert _edge_allowed("endpoint.wire.protocol") and _edge_allowed("endpoint.sources.scenario")
