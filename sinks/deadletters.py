"""Writes dead-lettered records to Kafka and makes sure they landed before a commit."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from schemas.deadletter import DEFAULT_MAX_BYTES, fit
from schemas.record import KafkaRecord
from vcstream.kafka import producer_config
from vcstream.logging import redact
from vcstream.observability import Flag
from vcstream.settings.kafka import KafkaSettings

log = logging.getLogger(__name__)


class DeadLetterError(RuntimeError):
    """The dead-letter topic did not take a record: its source offset must not be committed."""


class DeadLetterWriter:
    """An idempotent producer to the dead-letter topic.

    `send` queues a record, cut to fit a topic of `max_bytes` (`schemas.deadletter.fit`:
    an oversize record is dead-lettered like any other, never refused for its size);
    `flush` waits until every queued record is acknowledged and raises `DeadLetterError`
    otherwise, so the caller commits only what is safe. `health` is down from a failure
    until a later flush succeeds: a stage that cannot dead-letter says so on /healthz.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        flush_timeout: float = 60,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.topic = topic
        self.flush_timeout = flush_timeout
        self.max_bytes = max_bytes
        self.health = Flag(None)
        self._producer = Producer(
            producer_config(
                kafka,
                **{
                    "enable.idempotence": True,
                    "linger.ms": 5,
                    # the client's own limit (1,000,000 by default) below the topic's
                    # would refuse what the topic takes
                    "message.max.bytes": max_bytes,
                },
            )
        )
        self._errors: list[str] = []
        self._lock = threading.Lock()

    def send(self, record: KafkaRecord) -> None:
        letter = fit(record, self.max_bytes)
        headers: list[tuple[str, str | bytes | None]] = list(letter.headers)
        try:
            self._producer.produce(
                self.topic,
                value=letter.value,
                key=letter.key,
                headers=headers,
                on_delivery=self._on_delivery,
            )
        except (KafkaException, BufferError) as exc:  # refused before it was queued
            raise self._failed(str(exc)) from None
        self._producer.poll(0)

    def poll(self) -> None:
        """Serve delivery reports and librdkafka's log lines while nothing is flushed."""
        self._producer.poll(0)

    def _on_delivery(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            detail = str(error)
            if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                detail += (
                    f" (dead letters are cut to fit {self.max_bytes} bytes: the topic's "
                    f"max.message.bytes must be at least {self.max_bytes})"
                )
            with self._lock:
                self._errors.append(detail)

    async def flush(self) -> None:
        if len(self._producer) == 0 and not self._errors:
            # nothing queued or awaiting its report: skip the thread hop, which every
            # batch paid (most send nothing; at low rates batches are a record or two)
            return
        remaining = await asyncio.to_thread(self._producer.flush, self.flush_timeout)
        with self._lock:
            errors, self._errors = self._errors, []
        if remaining or errors:
            raise self._failed(
                errors[0] if errors else f"{remaining} records not acknowledged in time"
            )
        self.health.ok()

    def _failed(self, detail: str) -> DeadLetterError:
        reason = redact(f"dead-letter topic {self.topic}: {detail}")
        self.health.down(reason)
        return DeadLetterError(reason)

    def close(self) -> None:
        self._producer.flush(self.flush_timeout)
