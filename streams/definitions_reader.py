"""Every worker's own copy of the alarm definitions, read from the producer's topic.

The producer keeps one record per alarm on a compacted topic, written in transactions.
Every worker needs all of them, whatever partitions of the events it is given, so this
reads every partition of that topic outside the consumer group, from its start and then
as it grows: a rebalance does not touch it, and no second copy of the topic is kept.
(A Faust GlobalTable cannot use the topic as its changelog: its recovery waits for the
last offset of each partition, which on a transactional topic is a commit marker that no
consumer ever receives.)

The consumer runs in a thread of its own and hands each batch to the event loop, which
owns the table. `loaded` is set once every partition has been read to its end (librdkafka's
partition EOF, which counts transaction markers), so the worker can hold alarm events
until the table is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from vcstream.kafka import client_config
from vcstream.settings import Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
BATCH = 500

Update = tuple[bytes, bytes | None]  # key, value (None: the alarm was removed)


class DefinitionsReader:
    def __init__(
        self,
        settings: Settings,
        partitions: int,
        failed: Callable[[BaseException], None] = lambda error: None,
    ) -> None:
        self.topic = settings.topics.alarm_definitions
        self.table: dict[bytes, bytes] = {}
        self.loaded = asyncio.Event()
        self._partitions = partitions
        self._config = client_config(
            settings.kafka,
            **{
                # no group: nothing is committed, every worker reads everything
                "group.id": f"{settings.streams.app_id}-alarm-definitions",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            },
        )
        self._failed = failed  # called on the event loop if reading stops for good
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(loop,), name="alarm-definitions", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        consumer = Consumer(self._config)
        partitions = [
            TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self._partitions)
        ]
        consumer.assign(partitions)
        at_end: set[int] = set()
        try:
            while not self._stop.is_set():
                messages = consumer.consume(BATCH, POLL_SECONDS)
                updates = _updates(messages, at_end)
                first_load_done = len(at_end) == self._partitions and not self.loaded.is_set()
                if updates or first_load_done:
                    self._hand_over(loop, updates, first_load_done)
        except Exception as exc:
            # without the definitions every alarm would wait for ever: the worker stops
            log.error("reading alarm definitions from %s failed: %s", self.topic, exc)
            with contextlib.suppress(RuntimeError):  # a closed loop: the worker is gone
                loop.call_soon_threadsafe(self._failed, exc)
        finally:
            consumer.close()

    def _hand_over(
        self, loop: asyncio.AbstractEventLoop, updates: list[Update], done: bool
    ) -> None:
        try:
            loop.call_soon_threadsafe(self._apply, updates, done)
        except RuntimeError:
            self._stop.set()  # the loop is closed: the worker is gone

    def _apply(self, updates: Sequence[Update], done: bool) -> None:
        for key, value in updates:
            if value:
                self.table[key] = value
            else:
                self.table.pop(key, None)  # tombstone: the alarm was removed
        if done and not self.loaded.is_set():
            log.info("alarm definitions loaded: %d from %s", len(self.table), self.topic)
            self.loaded.set()


def _updates(messages: list[Message], at_end: set[int]) -> list[Update]:
    updates: list[Update] = []
    for message in messages:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition() or 0)
            else:
                log.warning("alarm definitions: %s", error)
            continue
        key = message.key()
        if key is None:
            continue  # not a definition: the topic is keyed by alarm
        updates.append((key if isinstance(key, bytes) else key.encode(), message.value()))
    return updates
