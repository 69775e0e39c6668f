"""The PromQL of a Grafana dashboard, ready to evaluate against a real Prometheus.

Grafana fills in `$__rate_interval`, `$vcenter` and the like before it queries; here
they get values that select everything over a short window, so a test can run each
panel's query and check it returns data. `metric_names` lists the metrics an
expression reads, so a test can check each one is exported by the code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devenv.process import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "vcstream.json"

# Grafana's built-in interval variables, sized for a Prometheus scraping every second
BUILTIN_VALUES = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*$")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on"}


@dataclass(frozen=True)
class DashboardQuery:
    where: str  # the panel title or template variable it belongs to
    expr: str  # as written in the dashboard
    promql: str  # with Grafana's variables filled in


def substitute(expr: str, variables: dict[str, str]) -> str:
    """`expr` with every Grafana variable replaced; an unknown one is an error naming it."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name in BUILTIN_VALUES:
            return BUILTIN_VALUES[name]
        if name not in variables:
            raise ValueError(f"{expr!r} uses ${name}, which the dashboard does not define")
        return variables[name]

    return _VARIABLE.sub(value, expr)


def metric_names(promql: str) -> set[str]:
    """Metric names a PromQL expression selects (function names, labels, keywords excluded)."""
    text = _STRING.sub('""', promql)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _LABEL_LIST.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))  # rows hold their panels when collapsed
    return found


def _template_query(variable: dict[str, Any]) -> str | None:
    query = variable.get("query")
    if isinstance(query, dict):
        query = query.get("query")
    if not isinstance(query, str) or not query.strip():
        return None
    match = _LABEL_VALUES.match(query)
    if match:
        # what Grafana asks for label_values(m, l): the values of l among m's series
        return f"count by ({match.group(2)}) ({match.group(1)})"
    return query


def dashboard_queries(path: Path = DASHBOARD) -> list[DashboardQuery]:
    """Every PromQL expression in the dashboard: panel targets and template-variable queries."""
    board = json.loads(path.read_text())
    variables: dict[str, str] = {}
    queries: list[DashboardQuery] = []
    for variable in board.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable.get("type") == "datasource":
            continue
        # `All` of a multi-value variable is a regex matching every value
        variables[name] = variable.get("allValue") or ".*"
        expr = _template_query(variable)
        if variable.get("type") == "query" and expr is not None:
            queries.append(DashboardQuery(f"variable {name}", expr, substitute(expr, variables)))
    for panel in _panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                where = f"panel {panel.get('title', panel.get('id'))!r}"
                queries.append(DashboardQuery(where, expr, substitute(expr, variables)))
    return queries
