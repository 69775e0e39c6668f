"""An idempotent producer the gateway's requests await: a request's answer waits for
Kafka's acknowledgement of each of its records, and says which were written if not all.

`message.timeout.ms` is the request's ack timeout, so librdkafka settles every record
(delivered or failed) within it: a failed record is never retried behind the request's
back, and a sender's retry after a 503 cannot meet a late copy of its first attempt
(except for a record whose acknowledgement was lost in flight: it is reported as
`unknown`, and keeps its id, so the duplicate is detectable).

A transactional producer would make a request all-or-nothing even against a broker dying
mid-request, but commits one transaction at a time per producer and needs a
transactional id per replica; the written/unknown lists give the sender the same
knowledge without either.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from confluent_kafka import KafkaError, KafkaException, Producer

from schemas.record import KafkaRecord
from vcstream.kafka import producer_config
from vcstream.settings.kafka import KafkaSettings

log = logging.getLogger(__name__)

PROBE_SECONDS = 5  # while Kafka is down, how often the poll thread asks whether it is back


@dataclass
class NotAcknowledged(Exception):
    """Kafka did not acknowledge every record of a request."""

    reason: str
    written: list[int] = field(default_factory=list)  # indexes of the records written
    unknown: list[int] = field(default_factory=list)  # sent, acknowledgement lost

    def __str__(self) -> str:
        return self.reason


class EventWriter:
    """Writes a request's records and resolves when Kafka has settled each one."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        ack_timeout: timedelta,
        on_state: Callable[[str | None], None] = lambda _: None,
    ) -> None:
        self.topic = topic
        self._timeout = ack_timeout.total_seconds()
        self._on_state = on_state
        self._producer = Producer(
            producer_config(
                kafka,
                **{
                    "enable.idempotence": True,  # implies acks=all and ordered retries
                    "message.timeout.ms": int(self._timeout * 1000),
                    "linger.ms": 5,
                    "client.id": "vcstream-gateway",
                    "error_cb": self._on_error,
                },
            ),
            logger=logging.getLogger("librdkafka"),
        )
        self._down = False
        self._stop = threading.Event()
        # callbacks are served by poll(); one thread polls so no request has to
        self._poller = threading.Thread(target=self._poll, name="gateway-producer", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        probed = 0.0
        while not self._stop.is_set():
            try:
                self._producer.poll(0.1)
                if self._down and time.monotonic() - probed > PROBE_SECONDS:
                    # an idle gateway writes nothing that could tell it Kafka is back
                    probed = time.monotonic()
                    self._producer.list_topics(self.topic, timeout=2)
                    self._set_state(None)
            except KafkaException:
                pass  # still unavailable
            except Exception:  # a refused login raised by error_cb: log, keep serving
                log.exception("producer callback failed")

    def _set_state(self, problem: str | None) -> None:
        self._down = problem is not None
        self._on_state(problem)

    def _on_error(self, error: KafkaError) -> None:
        # not _TRANSPORT: librdkafka reports a broker closing an idle connection as one
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._set_state(f"kafka unavailable: {error.str()}")
        log.warning("kafka: %s", error.str())

    async def write(self, records: Sequence[KafkaRecord]) -> None:
        """Return once Kafka acknowledged every record; NotAcknowledged otherwise."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[KafkaError | None]] = []

        def settle(future: asyncio.Future[KafkaError | None], error: KafkaError | None) -> None:
            if not future.done():
                future.set_result(error)

        refused: str | None = None
        for record in records:
            future: asyncio.Future[KafkaError | None] = loop.create_future()

            def on_delivery(
                error: KafkaError | None,
                _: object,
                future: asyncio.Future[KafkaError | None] = future,
            ) -> None:
                loop.call_soon_threadsafe(settle, future, error)

            headers: list[tuple[str, str | bytes | None]] = list(record.headers)
            try:
                self._producer.produce(
                    self.topic,
                    value=record.value,
                    key=record.key,
                    headers=headers,
                    on_delivery=on_delivery,
                )
            except BufferError:  # librdkafka's queue is full: Kafka is not keeping up
                refused = "the gateway's Kafka queue is full"
                break
            except KafkaException as exc:  # e.g. larger than the client's message.max.bytes
                refused = f"Kafka refused event {len(futures)}: {exc.args[0].str()}"
                break
            futures.append(future)
        # every record produced settles within message.timeout.ms; the margin is for
        # the callback's way back, never for Kafka
        done, _ = await asyncio.wait(futures, timeout=self._timeout + 5) if futures else ((), ())
        written, unknown = [], []
        first_error: str | None = refused
        for index, future in enumerate(futures):
            if future not in done:
                unknown.append(index)
                continue
            error = future.result()
            if error is None:
                written.append(index)
            else:
                if error.code() == KafkaError._MSG_TIMED_OUT:
                    # a timed-out record may have reached the log (its ack was lost)
                    unknown.append(index)
                first_error = first_error or error.str()
        if len(written) == len(records):
            if self._down:
                self._set_state(None)
            return
        raise NotAcknowledged(
            f"Kafka did not acknowledge the events: {first_error or 'timeout'}", written, unknown
        )

    def close(self, timeout: float = 10) -> None:
        self._producer.flush(timeout)
        self._stop.set()
        self._poller.join()
