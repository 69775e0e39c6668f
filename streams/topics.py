"""The topics the worker reads and writes, created before it starts.

Faust creates only its own internal topics; brokers usually refuse to auto-create the
rest (`auto.create.topics.enable=false`), so the worker creates the pipeline's topics
(one list, `vcstream.topics`) and the output topics of user processors, with the event
topics' layout.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka.admin import AdminClient, ConfigResource

from vcstream.kafka import TopicSpec, client_config, ensure_topics, list_topics
from vcstream.settings import Settings
from vcstream.topics import pipeline_topics


def topic_specs(settings: Settings, outputs: Iterable[str]) -> list[TopicSpec]:
    """The pipeline's topics, then `outputs` not among them with the event topics' layout."""
    specs = pipeline_topics(settings)
    known = {spec.name for spec in specs}
    raw = settings.producer.raw_topic
    for name in sorted(set(outputs) - known):
        specs.append(
            TopicSpec(name, raw.partitions, raw.replication_factor, retention=raw.retention)
        )
    return specs


def every_topic(settings: Settings) -> list[TopicSpec]:
    """Every topic these settings use, the outputs of routes and discovered processors too:
    what `vcstream topics create` makes and the Strimzi topic list holds (a test compares),
    so a platform that creates topics ahead (Strimzi) misses none the worker writes."""
    from streams.discovery import processors_for
    from streams.pipeline import Pipeline

    pipeline = Pipeline(settings, processors_for(settings.streams, settings.topics.events))
    return topic_specs(settings, pipeline.output_topics + pipeline.input_topics)


def prepare_topics(settings: Settings, outputs: Iterable[str], timeout: float = 30) -> None:
    ensure_topics(settings.kafka, topic_specs(settings, outputs), timeout=timeout)


def partition_count(settings: Settings, topic: str, timeout: float = 30) -> int:
    admin = AdminClient(client_config(settings.kafka))
    metadata = list_topics(admin, timeout, topic).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise RuntimeError(f"topic {topic} does not exist or has no partitions")
    return len(metadata.partitions)


def message_limits(
    settings: Settings, topics: Iterable[str], timeout: float = 30
) -> dict[str, int]:
    """Each topic's `max.message.bytes`: the broker refuses a larger record batch, and
    with it every record batched with it (streams.oversize keeps such records out)."""
    admin = AdminClient(client_config(settings.kafka))
    resources = [ConfigResource(ConfigResource.Type.TOPIC, topic) for topic in sorted(set(topics))]
    limits: dict[str, int] = {}
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        entry = future.result(timeout).get("max.message.bytes")
        if entry is not None and entry.value is not None:
            limits[resource.name] = int(entry.value)
    return limits
