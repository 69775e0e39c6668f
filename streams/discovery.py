"""Finding user processors: every module of `streams.processors` and of the configured
packages is imported, and each module-level `Processor` in it is registered."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from types import ModuleType

from streams.api import Processor
from vcstream.settings.streams import ProcessorsSettings

log = logging.getLogger(__name__)

BUILTIN_PACKAGE = "streams.processors"


class DiscoveryError(Exception):
    """A configured package cannot be imported, or two processors share a name."""


def _modules(package_name: str) -> list[ModuleType]:
    try:
        package = importlib.import_module(package_name)
    except ImportError as exc:
        raise DiscoveryError(
            f"processor package {package_name!r} cannot be imported: {exc}"
        ) from None
    modules = [package]
    path = getattr(package, "__path__", None)
    if path is None:
        return modules
    for info in sorted(pkgutil.walk_packages(path, prefix=package_name + "."), key=str):
        try:
            modules.append(importlib.import_module(info.name))
        except Exception as exc:  # a broken user module names itself, not a traceback
            raise DiscoveryError(f"processor module {info.name} failed to import: {exc!r}") from exc
    return modules


def discover(settings: ProcessorsSettings) -> list[Processor]:
    found: dict[str, Processor] = {}
    for package_name in [BUILTIN_PACKAGE, *settings.packages]:
        for module in _modules(package_name):
            for value in vars(module).values():
                if not isinstance(value, Processor) or value.name in settings.disabled:
                    continue
                other = found.get(value.name)
                if other is not None and other is not value:
                    raise DiscoveryError(
                        f"two processors are named {value.name!r} "
                        f"({other.function.__module__} and {value.function.__module__})"
                    )
                found[value.name] = value
    for item in found.values():
        log.info("processor %s -> %s", item.name, item.output)
    return list(found.values())
