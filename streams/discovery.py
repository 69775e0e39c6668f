"""Finding processors: every module of `streams.processors` and of the configured packages
is imported, and each module-level `Processor` or `Inline` in it is registered; the
built-in inline processors the configuration switches on come first."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from types import ModuleType

from streams.api import AnyProcessor, Inline, Processor
from streams.state import StateError, tables_by_input
from vcstream.settings.streams import ProcessorsSettings, StreamsSettings

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


def builtin(settings: StreamsSettings) -> list[Inline]:
    """The built-in inline processors switched on, in the order they run: repeats are
    dropped before anything counts them, alarms silenced before they count to a storm."""
    from streams.processors.dedup import duplicates
    from streams.processors.maintenance import maintenance
    from streams.processors.storm import alarm_storm

    found = []
    if settings.duplicates.enabled:
        found.append(duplicates(settings.duplicates))
    if settings.maintenance.enabled:
        found.append(maintenance(settings.maintenance))
    if settings.alarm_storm.enabled:
        found.append(alarm_storm(settings.alarm_storm))
    for item in found:
        log.info("inline processor %s (built in)", item.name)
    return found


def processors_for(settings: StreamsSettings, events_topic: str) -> list[AnyProcessor]:
    """Every processor the worker runs: the built-in ones switched on, then those found."""
    found: list[AnyProcessor] = [*builtin(settings), *discover(settings.processors)]
    names: dict[str, AnyProcessor] = {}
    for item in found:
        if item.name in names:
            raise DiscoveryError(f"a processor is named {item.name!r} like a built-in one")
        names[item.name] = item
    try:
        tables_by_input(found, events_topic)
    except StateError as exc:
        raise DiscoveryError(str(exc)) from None
    return found


def discover(settings: ProcessorsSettings) -> list[AnyProcessor]:
    found: dict[str, AnyProcessor] = {}
    seen: set[str] = set()
    for package_name in [BUILTIN_PACKAGE, *settings.packages]:
        for module in _modules(package_name):
            for value in vars(module).values():
                if not isinstance(value, Processor | Inline):
                    continue
                seen.add(value.name)
                if value.name in settings.disabled:
                    continue
                other = found.get(value.name)
                if other is not None and other is not value:
                    raise DiscoveryError(
                        f"two processors are named {value.name!r} "
                        f"({other.function.__module__} and {value.function.__module__})"
                    )
                found[value.name] = value
    # a misspelt name would leave the processor running without a word
    unknown = sorted(set(settings.disabled) - seen)
    if unknown:
        raise DiscoveryError(
            f"streams.processors.disabled names no processor: {', '.join(unknown)} "
            f"(found: {', '.join(sorted(seen)) or 'none'}; the built-in duplicates, "
            "maintenance and alarmStorm are switched off by their own `enabled`)"
        )
    for item in found.values():
        if isinstance(item, Processor):
            log.info("processor %s -> %s", item.name, item.output)
        else:
            log.info("inline processor %s", item.name)
    return list(found.values())
