"""Every topic the pipeline uses, with the layout the code expects.

One list, used by `vcstream topics create` (the compose topic-init job, the Kubernetes
manifests' test) and by each role at start, so a topic is never created two ways.
"""

from __future__ import annotations

from vcstream.kafka import TopicSpec
from vcstream.settings import Settings

# The dead-letter topic's record size limit, Kafka's default made explicit: every stage
# cuts its dead letters to fit it (schemas.deadletter.DEFAULT_MAX_BYTES, the same number,
# which a test holds equal) and configures its dead-letter producer to send that much.
DEAD_LETTER_MAX_MESSAGE_BYTES = 1_048_576


def pipeline_topics(settings: Settings) -> list[TopicSpec]:
    names = settings.topics
    raw = settings.producer.raw_topic
    replicas = raw.replication_factor

    def event_topic(name: str) -> TopicSpec:
        return TopicSpec(name, raw.partitions, replicas, retention=raw.retention)

    return [
        event_topic(names.events),
        # compacted: only the newest checkpoint / definition per key matters
        TopicSpec(names.checkpoints, 1, replicas, compacted=True),
        TopicSpec(names.alarm_definitions, 1, replicas, compacted=True),
        event_topic(names.alarms),
        event_topic(names.audit),
        # dead letters wait for a human: kept until deleted
        TopicSpec(
            names.dead_letter,
            1,
            replicas,
            retention=-1,
            extra={"max.message.bytes": str(DEAD_LETTER_MAX_MESSAGE_BYTES)},
        ),
        gateway_topic(settings),
    ]


def gateway_topic(settings: Settings) -> TopicSpec:
    """Events posted to the gateway's webhook: laid out and kept like the raw topic."""
    raw = settings.producer.raw_topic
    return TopicSpec(
        settings.gateway.topic,
        settings.gateway.partitions,
        raw.replication_factor,
        retention=raw.retention,
    )
