"""Replay into audit files (`--to audit` with `backend: files`), straight into the store.

The audit sink's path (`replay.targets.sink`: an event loop, the sinks runtime's
delivery, a thread per store call) made every batch durable before the replay saved
its position, so each partition's file was closed, fsynced, renamed and sealed after
every batch: three fsyncs per partition per 2,000 records, and files of a few hundred
records. Here the store is written in the replay's writer thread and each partition
keeps one open file across batches. Durability comes at checkpoints: every
`CHECKPOINT_SECONDS` (or the store's `rotateInterval` if shorter), and when the replay
ends or stops, the open files are closed (fsync, rename, seal) and only then does the
replay save its position (and commit under `--group`): see `ReplayTarget.sync`.

After a kill -9, what the last checkpoint saved is in visible files; the open files of
the run are `.tmp` files that the store's recovery deletes on the next start, and
`--resume` reads again from the saved position. A file that rotated by size between
two checkpoints holds records beyond the saved position: the store skips records at or
below its head, so they are neither written twice nor counted twice (the replay's
counts come from the saved position, not from the store).

Records are stored exactly as the audit sink stores them (`sinks.audit.record`): the
same files, chains, seals and verification. A store that no longer holds a
partition's head (`ChainBroken`: a file deleted or changed under the replay) stops the
replay with that error; nothing is dead-lettered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from replay.batch import Layout
from replay.targets.base import Position, ReplayItem, ReplayTarget
from sinks.audit.anchors import Anchor
from sinks.audit.encoding import (
    encode_head_parts,
    encode_optional,
    encode_optional_bytes,
    headers_around,
    long,
    micros,
    moment,
    raw,
    string,
)
from sinks.audit.files import AuditFiles
from sinks.audit.record import HASH_VERSION, Head, audit_record, entity_name, head_of, split_key
from sinks.audit.store import open_store
from sinks.delivery import type_matcher
from vcstream.settings.sinks import AuditSinkSettings

# the longest a replay runs past its saved position: what a kill -9 makes it read again
CHECKPOINT_SECONDS = 5.0
MAX_KEYS = 4096  # record keys whose encoding is kept (`AuditFilesTarget._keys`)
_HASH_VERSION = long(HASH_VERSION)
_EVENT = string("")  # `event`: empty since version 2 (the event is the headers + value)


class _Encoded:
    """A layout's share of its records' audit encoding (`Layout.derived`): the header
    arrays up to the first of ce_id/ce_time and that one's position, between the two
    and the second one's position, after them; `type`, `source` and `subject`."""

    __slots__ = ("after", "before", "between", "described", "first_at", "second_at")

    def __init__(self, layout: Layout, headers: list[tuple[str, bytes | None]]) -> None:
        names = [name for name, _ in headers]
        values = [b"" if value is None else value for _, value in headers]  # as KafkaRecord
        first_at, second_at = sorted((names.index("ce_id"), names.index("ce_time")))
        self.before, self.between, self.after = headers_around(names, values, first_at, second_at)
        self.first_at, self.second_at = first_at, second_at
        attributes = layout.attributes
        self.described = b"".join(
            (
                string(attributes.get("type", "")),
                string(attributes.get("source", "")),
                encode_optional(attributes.get("subject")),
            )
        )


# a record key's share of the encoding: the `key` field, vCenter uuid, the `vcenterUuid`
# and `entity` fields, the entity (`<Type>:<moref>`) whose name the data may give
_Key = tuple[bytes, str, bytes, str | None]


class AuditFilesTarget(ReplayTarget):
    def __init__(self, settings: AuditSinkSettings, recover: bool = True) -> None:
        store = open_store(settings)
        assert isinstance(store, AuditFiles), "the files backend only"
        self.store = store
        self.name = f"audit ({self.store.dest})"
        self.batch_records = settings.batch.max_records
        self.checkpoint_seconds = min(CHECKPOINT_SECONDS, store.rotate_interval)
        self._types = type_matcher(settings.types)
        self._heads: dict[int, Anchor] = {}
        self._topic = ""  # the replay's one topic, known from its first record
        self._topic_encoded = b""
        self._keys: dict[bytes | None, _Key] = {}
        self._synced_at = time.monotonic()
        if recover:  # under --workers the coordinator recovered once, before any worker
            self.store.recover()

    def accepts(self, event_type: str) -> bool:
        return self._types.fullmatch(event_type) is not None

    def write(self, items: Sequence[ReplayItem]) -> set[Position]:
        now = datetime.now(UTC)
        recorded = moment(now)
        by_partition: dict[int, list[Head]] = {}
        for item in items:
            head = self.encode(item, now, recorded)
            by_partition.setdefault(head[0], []).append(head[1])
        for partition, heads in by_partition.items():
            topic = self._topic
            prev = self._heads.get(partition)
            if prev is None:  # where an earlier (interrupted) replay left the chain
                prev = self.store.head_blocking(topic, partition)
            self._heads[partition] = self.store.append_heads(topic, partition, heads, prev)
        return set()

    def encode(self, item: ReplayItem, now: datetime, recorded: bytes) -> tuple[int, Head]:
        """(partition, the record encoded up to its `prevHash`): the fields of
        `sinks.audit.record.audit_record`, from what the replay's check read of the
        message, what repeats encoded once per layout, key and batch
        (tests/replay/test_batch.py holds the two to the same bytes); `recorded` is
        `now` encoded."""
        message, layout, when = item.message, item.layout, item.time
        if message is None or layout is None or when is None:
            # checked the slow way: the record read from its view
            record = audit_record(item, now)
            self._read_topic(record["topic"])
            return record["partition"], head_of(record)
        headers: list[tuple[str, bytes | None]] = message.headers()
        encoded = layout.derived
        if encoded is None:
            encoded = layout.derived = _Encoded(layout, headers)
        self._read_topic(message.topic())
        partition: int = message.partition()  # type: ignore[assignment]
        key = message.key()
        known = self._keys.get(key)
        if known is None:
            known = self._key(key)
        key_field, vcenter, placed, entity = known
        when = when.astimezone(UTC)  # the check made sure it has a zone
        first, second = headers[encoded.first_at][1], headers[encoded.second_at][1]
        value: bytes = message.value()  # type: ignore[assignment]  # checked: not empty
        ident = (item.id or "").encode()
        head = encode_head_parts(
            self._topic_encoded, partition, message.offset(), _HASH_VERSION,  # type: ignore[arg-type]
            message.timestamp()[1], key_field,
            b"".join((encoded.before, raw(first or b""), encoded.between,
                      raw(second or b""), encoded.after)),
            value, ident, encoded.described, micros(when), placed,
            entity_name(entity, item.data) if entity else None, _EVENT + recorded,
        )  # fmt: skip
        return partition, Head(message.offset(), when, vcenter, head)  # type: ignore[arg-type]

    def _read_topic(self, topic: str | None) -> None:
        if topic != self._topic:
            assert topic is not None  # set on every consumed message
            self._topic, self._topic_encoded = topic, string(topic)

    def _key(self, key: bytes | None) -> _Key:
        vcenter, entity = split_key(key)
        if len(self._keys) >= MAX_KEYS:
            self._keys.clear()
        known = self._keys[key] = (
            encode_optional_bytes(key),
            vcenter,
            string(vcenter) + encode_optional(entity),
            entity,
        )
        return known

    def sync(self, force: bool = False) -> bool:
        if not force and time.monotonic() - self._synced_at < self.checkpoint_seconds:
            return False
        self.store.rotate_blocking()
        self._synced_at = time.monotonic()
        return True

    def close(self) -> None:
        self.store.rotate_blocking()
