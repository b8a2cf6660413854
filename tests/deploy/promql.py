"""PromQL as the dashboard uses it: which metric names a query reads, and every query of the dashboard."""

from __future__ import annotations

import re

from tests.deploy.compose_file import REPO

DASHBOARD = REPO / "deploy/grafana/dashboards/edgeloop.json"
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless",
             "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or label names."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = _LABEL_LISTS.sub(" ", expr)
    expr = re.sub(r"\b\d+(\.\d*)?([eE][+-]?\d+)?\b", " ", expr)
    names = set()
    for m in re.finditer(r"(?<![\w$])[A-Za-z_:][\w:]*", expr):
        if not re.match(r"\s*\(", expr[m.end():]) and m.group().lower() not in _KEYWORDS:
            names.add(m.group())
    return names


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target and every query variable."""
    out = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        out.append((f"${variable['name']}", re.sub(r"^label_values\(\s*(.*),\s*\w+\s*\)$", r"\1", query)))
    return out
