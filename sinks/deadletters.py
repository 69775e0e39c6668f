"""Writes dead-lettered records to Kafka and makes sure they landed before a commit."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError, Producer

from schemas.record import KafkaRecord
from vcstream.kafka import producer_config
from vcstream.settings.kafka import KafkaSettings


class DeadLetterError(RuntimeError):
    """The dead-letter topic did not take a record: its source offset must not be committed."""


class DeadLetterWriter:
    """An idempotent producer to the dead-letter topic.

    `send` queues a record; `flush` waits until every queued record is acknowledged and
    raises `DeadLetterError` otherwise, so the caller commits only what is safe.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, flush_timeout: float = 60) -> None:
        self.topic = topic
        self.flush_timeout = flush_timeout
        self._producer = Producer(
            producer_config(kafka, **{"enable.idempotence": True, "linger.ms": 5})
        )
        self._errors: list[str] = []
        self._lock = threading.Lock()

    def send(self, record: KafkaRecord) -> None:
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        self._producer.produce(
            self.topic,
            value=record.value,
            key=record.key,
            headers=headers,
            on_delivery=self._on_delivery,
        )
        self._producer.poll(0)

    def _on_delivery(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            with self._lock:
                self._errors.append(str(error))

    async def flush(self) -> None:
        if len(self._producer) == 0 and not self._errors:
            # nothing queued or awaiting its report: skip the thread hop, which every
            # batch paid (most send nothing; at low rates batches are a record or two)
            return
        remaining = await asyncio.to_thread(self._producer.flush, self.flush_timeout)
        with self._lock:
            errors, self._errors = self._errors, []
        if remaining or errors:
            detail = errors[0] if errors else f"{remaining} records not acknowledged in time"
            raise DeadLetterError(f"dead-letter topic {self.topic}: {detail}")

    def close(self) -> None:
        self._producer.flush(self.flush_timeout)
