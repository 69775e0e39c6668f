"""A Faust GlobalTable whose changelog is a topic someone else writes (the producer's
compacted alarm-definitions topic), read in full at start and followed live."""

from __future__ import annotations

import faust


class TopicGlobalTable(faust.GlobalTable):
    def _changelog_topic_name(self) -> str:
        # faust-streaming 0.15's partition assignor looks the changelog up by the default
        # name `<app id>-<table>-changelog` even when a changelog topic is given, and the
        # leader's assignment then fails silently (the worker never gets partitions)
        if self._changelog_topic is not None:
            return str(self._changelog_topic.get_topic_name())
        return str(super()._changelog_topic_name())


def topic_global_table(app: faust.App, name: str, topic: str, partitions: int) -> TopicGlobalTable:
    """What `app.GlobalTable` builds, on the topic `topic` (raw keys and values)."""
    table = TopicGlobalTable(
        app,
        name=name,
        beacon=app.tables.beacon,
        partitions=partitions,
        changelog_topic=app.topic(
            topic, key_serializer="raw", value_serializer="raw", partitions=partitions
        ),
        schema=faust.Schema(key_serializer="raw", value_serializer="raw"),
        # apply each definition as it comes, and the multi-instance recovery-loop
        # workaround faust-streaming documents for global tables
        standby_buffer_size=1,
        recovery_buffer_size=1,
        is_global=True,
        # another group (the producer) writes the topic: follow every partition
        synchronize_all_active_partitions=True,
    )
    app.tables.add(table)
    return table
