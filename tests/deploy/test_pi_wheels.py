"""Every dependency of the ``endpoint`` extra has a wheel for a Raspberry Pi (cp311, manylinux aarch64) on PyPI."""

from __future__ import annotations

import pytest

from pipelines.pi_wheels import check_pi_wheels, check_requirement, endpoint_requirements, format_table

pytestmark = pytest.mark.integration


def test_endpoint_requirements_come_from_pyproject():
    requirements = endpoint_requirements()
    names = {r.split(">")[0].split("=")[0].lower() for r in requirements}
    assert {"numpy", "onnxruntime", "paho-mqtt", "opencv-python-headless"} <= names
    assert not names & {"torch", "ultralytics", "edgeloop"}


def test_every_endpoint_dependency_has_a_pi_wheel():
    results = check_pi_wheels()
    table = format_table(results)
    print(table)
    assert [r for r in results if not r.ok] == [], table
    direct = results[:len(endpoint_requirements())]
    assert all("aarch64" in r.wheel or r.wheel.endswith("-none-any.whl") for r in direct), table
    assert any(r.detail == "dependency" for r in results), "the dependencies were not resolved"


def test_a_source_only_package_is_reported_missing(tmp_path):
    result = check_requirement("docopt==0.6.2", tmp_path)  # ships an sdist only
    assert not result.ok and not result.wheel and result.detail
