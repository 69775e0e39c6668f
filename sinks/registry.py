"""Sink kinds by name, and the defaults that depend on the rest of the configuration.

    sink = create_sink("audit", settings)          # a `sinks.base.Sink`, not started
    topics = source_topics("audit", settings)      # what the sink reads by default
    topic = dead_letter_topic("audit", settings)   # where its dead letters go

Connectors are imported lazily, so running one sink never loads another's libraries.
"""

from __future__ import annotations

import importlib

from sinks.base import Sink
from sinks.kinds import CONNECTORS, SINK_KINDS
from vcstream.settings import Settings
from vcstream.settings.sinks import SinkCommonSettings

_FACTORIES = CONNECTORS


class SinkNotConfigured(ValueError):
    """The configuration has no section for this sink, or the kind is unknown."""


def sink_settings(kind: str, settings: Settings) -> SinkCommonSettings:
    if kind not in _FACTORIES:
        raise SinkNotConfigured(f"unknown sink {kind!r}; choose one of {', '.join(SINK_KINDS)}")
    section: SinkCommonSettings | None = getattr(settings.sinks, kind)
    if section is None:
        raise SinkNotConfigured(f"sinks.{kind} is not configured")
    return section


def create_sink(kind: str, settings: Settings) -> Sink:
    """A connector of `kind` built from `settings.sinks.<kind>`; call `start()` before use."""
    section = sink_settings(kind, settings)
    module_name, class_name = _FACTORIES[kind]
    cls: type[Sink] = getattr(importlib.import_module(module_name), class_name)
    return cls(section)


def source_topics(kind: str, settings: Settings) -> list[str]:
    section = sink_settings(kind, settings)
    if section.topics:
        return list(section.topics)
    defaults = {
        # raw events and enriched alarms, as VEBA plus vsphere-alarm-server deliver them,
        # and the gateway's webhook events, as VEBA forwards its webhook's: the same under
        # ./dev run, compose and Kubernetes
        "knative": [settings.topics.events, settings.topics.alarms, settings.gateway.topic],
        "slack": [settings.topics.alarms],
        "audit": [settings.topics.audit],
    }
    return defaults[kind]


def dead_letter_topic(kind: str, settings: Settings) -> str:
    return sink_settings(kind, settings).delivery.dead_letter_topic or settings.topics.dead_letter


def group_id(kind: str, settings: Settings) -> str:
    return sink_settings(kind, settings).group_id or f"vcstream-sink-{kind}"
