"""The Prometheus metrics the code exports, found by importing every module of the roles
that uses prometheus_client and reading the default registry (not a hand-kept list)."""

from __future__ import annotations

import importlib
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("vcstream", "producer", "streams", "sinks", "replay", "gateway")

# what each family type puts on the wire (prometheus_client's naming, OpenMetrics' suffixes)
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


def metric_modules() -> list[str]:
    """Modules of the roles that define metrics (they import prometheus_client)."""
    names = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "prometheus_client" in path.read_text(errors="replace"):
                module = path.relative_to(REPO).with_suffix("").parts
                names.append(".".join(part for part in module if part != "__init__"))
    return names


def exported_families() -> dict[str, str]:
    """Family name → type of every vcstream_* metric the roles define."""
    for module in metric_modules():
        importlib.import_module(module)
    text = generate_latest(REGISTRY).decode()
    return {
        family.name: family.type
        for family in text_string_to_metric_families(text)
        if family.name.startswith("vcstream_")
    }


def exported_sample_names() -> set[str]:
    """Every series name a scrape of the roles can show (`_total`, `_bucket`, ...)."""
    return {
        name + suffix
        for name, kind in exported_families().items()
        for suffix in SUFFIXES.get(kind, ("",))
    }
