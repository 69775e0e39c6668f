"""Unit-test a processor without Kafka.

    from streams.testing import vsphere_event, run
    from streams.processors.vm_power import vm_power

    event = vsphere_event("VmPoweredOnEvent", {"Vm": {"Name": "web01", ...}})
    [out] = run(vm_power, event)
    assert out.get_data()["powerState"] == "poweredOn"

`run` goes through the same path the worker does: the processor's type/subject/data
filter, derived ids, and encoding to a Kafka record and back, so an event the wire
format cannot carry fails here, not in production.

A stateful processor (`streams.state`) runs on in-memory Faust tables: Faust's own Table
and window classes, with a list for a changelog. `Runner` keeps them across calls and
restarts from that changelog, as the worker does from Kafka's:

    runner = Runner(drop_duplicates)
    assert len(runner.run(event, event)) == 1     # the repeat is dropped
    runner.restart()                              # tables rebuilt from their changelog
    assert runner.run(event) == []                # still known after the restart
    runner.restart(redeliver=1)                   # the last record read again, same offset

Each event becomes a record as the producer writes it: keyed by vCenter + entity, in the
partition the key hashes to (of `partitions`), at the next offset, with the event's time
as its Kafka timestamp (or `at`). A co-partitioned table shows each record the state of
its own partition only, as a worker holding some partitions would see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

from cloudevents.core.v1.event import CloudEvent

import schemas
from schemas.codec import vsphere_cloudevent
from schemas.record import KafkaRecord
from schemas.vsphere import VCenterIdentity, record_key
from streams.api import AnyProcessor, Inline, Processor, data_of
from streams.partitioner import KeyPartitioner
from streams.state import Table, faust_current_event, processing, tables_by_input, windowed

TEST_VCENTER = VCenterIdentity(
    instance_uuid="00000000-0000-0000-0000-0000000000vc",
    source="https://vcenter.test/sdk",
    api_version="8.0.3.0",
    name="test",
)
EVENTS_TOPIC = "vcenter.events"
_keys = iter(range(1, 1 << 31))


def vsphere_event(
    class_name: str,
    data: dict[str, Any] | None = None,
    vcenter: VCenterIdentity = TEST_VCENTER,
) -> CloudEvent:
    """A CloudEvent as the producer writes it; `Key` and `CreatedTime` filled if absent."""
    body: dict[str, Any] = {"Key": next(_keys), "CreatedTime": datetime.now(UTC).isoformat()}
    body.update(data or {})
    return vsphere_cloudevent(body, class_name, vcenter)


def run(item: AnyProcessor, *events: CloudEvent) -> list[CloudEvent]:
    """What the processor emits for these events, in order (events it does not select
    are skipped, as the worker would; an inline processor passes them on). Exceptions
    propagate: the worker dead-letters them. Tables start empty."""
    return Runner(item).run(*events)


class Runner:
    """Processors run on records as the worker runs them, their tables in memory.

    Inline processors run first, in the order given, each on what the one before passed
    on; `run` returns what goes on from them (dropped events missing, marked ones marked,
    added ones added) or, with processors that have an output topic, what those write.
    """

    def __init__(self, *items: AnyProcessor, partitions: int = 2) -> None:
        self.inline = [item for item in items if isinstance(item, Inline)]
        self.processors = [item for item in items if isinstance(item, Processor)]
        self.partitions = partitions
        self.records: list[KafkaRecord] = []  # every record read, in order
        self._specs = [
            spec for group in tables_by_input(items, EVENTS_TOPIC).values() for spec in group
        ]
        self._partitioner = KeyPartitioner()
        self._next_offset = [0] * partitions
        self._changelog: dict[str, list[tuple[int, bytes, bytes | None]]] = {}
        self._tables: dict[tuple[str, int], Any] = {}
        self._app: Any = None

    def run(self, *events: CloudEvent, at: datetime | None = None) -> list[CloudEvent]:
        """Each event as the next record of its partition; `at`: the records' timestamp."""
        outputs: list[CloudEvent] = []
        for event in events:
            record = self._record_of(event, at)
            self.records.append(record)
            outputs += self._process(record)
        return outputs

    def restart(self, redeliver: int = 0) -> list[CloudEvent]:
        """As after a crash: the tables rebuilt from their changelog, nothing else kept;
        then the last `redeliver` records read again (their offsets not yet committed),
        with what they make now."""
        self._tables.clear()
        outputs: list[CloudEvent] = []
        for record in self.records[len(self.records) - redeliver :] if redeliver else []:
            outputs += self._process(record)
        return outputs

    def changelog(self, table: str) -> list[tuple[int, Any, Any]]:
        """(partition, key, value) of every write to a table, as Faust's JSON reads back."""
        from faust.serializers import codecs

        return [
            (partition, codecs.loads("json", key), codecs.loads("json", value) if value else None)
            for partition, key, value in self._changelog.get(table, [])
        ]

    def _record_of(self, event: CloudEvent, at: datetime | None) -> KafkaRecord:
        instance = TEST_VCENTER.instance_uuid
        if event.get_source() != TEST_VCENTER.source:
            instance = event.get_source()  # stands in for the instance UUID
        key = record_key(instance, data_of(event))
        encoded = schemas.encode(event, key)
        every = list(range(self.partitions))
        partition = self._partitioner(key, every, every)
        offset = self._next_offset[partition]
        self._next_offset[partition] += 1
        moment = at or event.get_time() or datetime.now(UTC)
        return KafkaRecord(
            encoded.value,
            encoded.key,
            encoded.headers,
            EVENTS_TOPIC,
            partition,
            offset,
            int(moment.timestamp() * 1000),
        )

    def _process(self, record: KafkaRecord) -> list[CloudEvent]:
        event = schemas.decode(record)
        partition = record.partition or 0
        for spec in self._specs:
            spec.bind(self._table(spec, 0 if spec.is_global else partition))
        current = _RecordEvent(record)  # referenced here: Faust holds it weakly
        with processing(record), faust_current_event(current) if self._specs else nullcontext():
            going_on = self._inline(event)
            if not self.processors:
                return [_round_trip(out, record.key) for out in going_on]
            outputs = []
            for each in going_on:
                for item in self.processors:
                    if item.selector.matches(each):
                        outputs += [_round_trip(out, record.key) for out in item(each)]
            return outputs

    def _inline(self, event: CloudEvent) -> list[CloudEvent]:
        current: CloudEvent | None = event
        added: list[CloudEvent] = []
        for item in self.inline:
            if current is None:
                break
            if item.selector.matches(current):
                current, extra = item(current)
                added += extra
        return ([current] if current is not None else []) + added

    def _table(self, spec: Table, partition: int) -> Any:
        found = self._tables.get((spec.name, partition))
        if found is None:
            if self._app is None:
                import faust

                # never started: it only hosts the tables (Faust's wants an app)
                self._app = faust.App("vcstream-testing", store="memory://", autodiscover=False)
            log = self._changelog.setdefault(spec.name, [])
            table = _memory_table_class()(
                self._app, name=spec.name, default=spec.default, help=spec.help
            )
            table.changes = log
            table.record_partition = partition
            table.apply_changelog_batch(_recovery(log, partition))  # as Faust's recovery
            found = self._tables[(spec.name, partition)] = windowed(table, spec.window)
        return found


class _RecordEvent:
    """What Faust's table code reads of its current event: the record's message."""

    def __init__(self, record: KafkaRecord) -> None:
        self.message = SimpleNamespace(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            timestamp=(record.timestamp_ms or 0) / 1000,
        )


@cache
def _memory_table_class() -> type:
    import faust
    from faust.serializers import codecs

    class MemoryTable(faust.Table[Any, Any]):
        """Faust's Table, its changelog a list: what Faust would send, serialized as it
        would be (a value JSON cannot carry fails here too)."""

        changes: list[tuple[int, bytes, bytes | None]]
        record_partition: int  # this table holds one partition's state

        def partition_for_key(self, key: Any) -> int:
            return self.record_partition

        def send_changelog(
            self,
            partition: int | None,
            key: Any,
            value: Any,
            key_serializer: Any = None,
            value_serializer: Any = None,
        ) -> Any:
            raw_key = codecs.dumps(key_serializer or self.key_serializer, key)
            raw_value = None
            if value is not None:
                raw_value = codecs.dumps(value_serializer or self.value_serializer, value)
            self.changes.append((self.record_partition, raw_key, raw_value))
            return SimpleNamespace(message=SimpleNamespace(partition=self.record_partition))

    return MemoryTable


def _recovery(log: Sequence[tuple[int, bytes, bytes | None]], partition: int) -> list[Any]:
    from faust.serializers import codecs

    return [
        SimpleNamespace(
            key=codecs.loads("json", key),
            value=codecs.loads("json", value) if value is not None else None,
            message=SimpleNamespace(value=value, partition=partition),
        )
        for written_to, key, value in log
        if written_to == partition
    ]


def _round_trip(event: CloudEvent, key: bytes | None) -> CloudEvent:
    return schemas.decode(schemas.encode(event, key))
