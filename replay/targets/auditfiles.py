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

from replay.targets.base import Message, Position, ReplayItem, ReplayTarget
from sinks.audit.anchors import Anchor
from sinks.audit.encoding import encode_head, headers_around, micros, moment, raw
from sinks.audit.files import AuditFiles
from sinks.audit.record import (
    HASH_VERSION,
    Head,
    audit_record,
    entity_name,
    head_of,
    split_key,
)
from sinks.audit.store import open_store
from sinks.delivery import type_matcher
from vcstream.settings.sinks import AuditSinkSettings

# the longest a replay runs past its saved position: what a kill -9 makes it read again
CHECKPOINT_SECONDS = 5.0
MAX_LAYOUTS = 4096  # header layouts whose encoding is kept (`AuditFilesTarget._headers`)
# (the layout, its encoding up to the first of ce_id/ce_time, that one's position, the
# encoding between the two, the second one's position, the encoding after it)
_LayoutParts = tuple[object, bytes, int, bytes, int, bytes]


def _layout_parts(layout: object, headers: list[tuple[str, bytes | None]]) -> _LayoutParts:
    names = [name for name, _ in headers]
    values = [b"" if value is None else value for _, value in headers]  # as KafkaRecord
    first_at, second_at = sorted((names.index("ce_id"), names.index("ce_time")))
    before, between, after = headers_around(names, values, first_at, second_at)
    return layout, before, first_at, between, second_at, after


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
        self._layouts: dict[int, _LayoutParts] = {}
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
        message (tests/replay/test_batch.py holds the two to the same bytes); `recorded`
        is `now` encoded."""
        message, attributes, moment_ = item.message, item.attributes, item.time
        layout = item.layout
        if message is None or attributes is None or moment_ is None or layout is None:
            # checked the slow way: the record read from its view
            record = audit_record(item, now)
            self._topic = record["topic"]
            return record["partition"], head_of(record)
        partition: int = message.partition()  # type: ignore[assignment]
        offset: int = message.offset()  # type: ignore[assignment]
        key = message.key()
        vcenter, entity = split_key(key)
        when = moment_.astimezone(UTC)  # the check made sure it has a zone
        encoded = encode_head(
            self._topic_of(message), partition, offset, HASH_VERSION, message.timestamp()[1],
            key, self._headers(layout, message.headers()), message.value(),
            attributes.get("id", ""), attributes.get("type", ""),
            attributes.get("source", ""), attributes.get("subject"), micros(when), vcenter,
            entity, entity_name(entity, item.data) if entity else None, "", recorded,
        )  # fmt: skip
        return partition, Head(offset, when, vcenter, encoded)

    def _headers(self, layout: object, headers: list[tuple[str, bytes | None]]) -> bytes:
        """The header arrays encoded: a layout's are the same but for the values of
        `ce_id` and `ce_time`, so the rest is encoded once per layout."""
        known = self._layouts.get(id(layout))
        if known is None or known[0] is not layout:  # an id can be reused once freed
            if len(self._layouts) >= MAX_LAYOUTS:
                self._layouts.clear()
            known = self._layouts[id(layout)] = _layout_parts(layout, headers)
        _, pre, first_at, mid, second_at, post = known
        return b"".join(
            (pre, raw(headers[first_at][1] or b""), mid, raw(headers[second_at][1] or b""), post)
        )

    def _topic_of(self, message: Message) -> str:
        topic = message.topic()
        assert topic is not None  # set on every consumed message
        self._topic = topic
        return topic

    def sync(self, force: bool = False) -> bool:
        if not force and time.monotonic() - self._synced_at < self.checkpoint_seconds:
            return False
        self.store.rotate_blocking()
        self._synced_at = time.monotonic()
        return True

    def close(self) -> None:
        self.store.rotate_blocking()
