"""One transactional Kafka producer per vCenter: a batch of records commits whole or not.

Each vCenter has its own transactional.id (`<prefix>.<instance uuid>`), so a second
producer for the same vCenter fences the first (no duplicates from a zombie), and one
vCenter's aborted transaction never touches another's.

What the confluent-kafka transaction API says about an error decides what happens:
- retriable (broker away, timeout): the same step is tried again, with backoff;
- abortable: the transaction is aborted and the whole batch sent again;
- fatal (fenced, or the producer's state is lost): the outcome of the last commit is
  unknown, so the caller must re-read its checkpoint from Kafka before going on.

"Fenced" is ambiguous: librdkafka reports it both when another producer took the
transactional.id over and when the coordinator aborted our own transaction for outliving
transaction.timeout.ms (it bumps the epoch; a broker restart mid-transaction does this).
The coordinator's clock for a transaction starts after our begin_transaction, so a
transaction fenced while younger than the timeout can only have been taken over: that
stops the worker. An older one is treated as timed out: the worker starts over from its
checkpoint, and if a second producer does exist, it is that one's next, young
transaction that gets fenced and stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_when_event_set,
    wait_exponential,
)

from producer import metrics
from schemas.record import KafkaRecord
from vcstream.kafka import producer_config
from vcstream.settings.kafka import KafkaSettings

log = logging.getLogger(__name__)

# a record and the topic it goes to
Outgoing = tuple[str, KafkaRecord]


class Stopped(Exception):
    """Shutdown was asked for while a transaction was open; it was aborted."""


class TransactionStateUnknown(Exception):
    """The producer hit a fatal error; whether the last batch committed is unknown."""


class ProducerFenced(TransactionStateUnknown):
    """Another producer with this vCenter's transactional.id has taken over."""


class TransactionTimedOut(TransactionStateUnknown):
    """The coordinator aborted a transaction that outlived transaction.timeout.ms."""


# backoff between attempts of a step that failed retriably: doubling from the first, capped
FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0


class _Retry(Exception):
    """A retriable error: the same step runs again after a backoff."""


class _Abort(Exception):
    """An abortable error: the transaction is aborted and the whole batch sent again."""


_FENCED_CODES = {
    getattr(KafkaError, name)
    for name in ("_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH")
    if hasattr(KafkaError, name)
}


def writer_config(kafka: KafkaSettings, transactional_id: str, timeout_s: float) -> dict[str, Any]:
    """The transactional producer's librdkafka configuration (bench.producer_txn measures
    a bare transaction loop with exactly this)."""
    timeout_ms = int(timeout_s * 1000)
    return producer_config(
        kafka,
        **{
            "transactional.id": transactional_id,
            "enable.idempotence": True,
            "transaction.timeout.ms": timeout_ms,
            "message.timeout.ms": timeout_ms,
            "linger.ms": 5,
        },
    )


class TransactionalWriter:
    def __init__(
        self,
        kafka: KafkaSettings,
        transactional_id: str,
        transaction_timeout: timedelta,
        vcenter: str,
        stop: threading.Event,
        on_kafka_state: Callable[[str | None], None] = lambda _: None,
    ) -> None:
        self._kafka = kafka
        self._transactional_id = transactional_id
        self._timeout_s = transaction_timeout.total_seconds()
        self._vcenter = vcenter
        self._stop = stop
        self._on_kafka_state = on_kafka_state
        self._producer: Producer | None = None
        self._began: float | None = None  # monotonic time of the open transaction's begin
        self._committed = metrics.TRANSACTIONS_COMMITTED.labels(vcenter)

    def start(self) -> None:
        """Create the producer and initialise transactions (fencing any predecessor).

        This aborts whatever transaction a killed predecessor left open, so the
        checkpoint read after it is the committed truth.
        """
        self.close()
        self._began = None
        self._producer = Producer(
            writer_config(self._kafka, self._transactional_id, self._timeout_s),
            logger=logging.getLogger("librdkafka"),
        )
        self._retry(lambda: self._call(lambda p: p.init_transactions(self._timeout_s)))
        self._on_kafka_state(None)

    def commit(self, records: Sequence[Outgoing]) -> None:
        """Write `records` in one transaction; return only once it is committed."""
        self._retry(lambda: self._attempt(records), also=_Abort)
        self._committed.inc()
        self._on_kafka_state(None)

    def _attempt(self, records: Sequence[Outgoing]) -> None:
        self._began = time.monotonic()
        self._retry(lambda: self._call(lambda p: p.begin_transaction()))
        try:
            for topic, record in records:
                self._produce(topic, record)
            self._retry(lambda: self._call(lambda p: p.commit_transaction(self._timeout_s)))
        except _Abort:
            metrics.TRANSACTIONS_ABORTED.labels(self._vcenter).inc()
            self._retry(lambda: self._call(lambda p: p.abort_transaction(self._timeout_s)))
            raise
        except Stopped:
            self._abort_quietly()
            raise

    def _produce(self, topic: str, record: KafkaRecord) -> None:
        producer = self._require()
        while True:
            try:
                producer.produce(
                    topic, value=record.value, key=record.key, headers=list(record.headers)
                )
                return
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
            except KafkaException as exc:
                self._raise_for(exc)

    def _abort_quietly(self) -> None:
        """On shutdown: abort if the broker answers soon; a restart re-reads the truth."""
        try:
            self._require().abort_transaction(5)
            metrics.TRANSACTIONS_ABORTED.labels(self._vcenter).inc()
        except KafkaException as exc:
            log.info("vCenter %s: open transaction left to time out: %s", self._vcenter, exc)

    def _retry(self, step: Callable[[], None], also: type[Exception] | None = None) -> None:
        """Run `step` until it stops raising _Retry (and `also`), with exponential backoff.

        Raises Stopped when shutdown is asked for meanwhile.
        """
        kinds: tuple[type[Exception], ...] = (_Retry,) if also is None else (_Retry, also)
        # the first attempt outside tenacity: a transaction nests three retried steps, and
        # tenacity's ~130 calls per step were a third of a quiet producer's commit CPU
        try:
            self._unless_stopped(step)
            return
        except (_Retry, _Abort) as exc:
            if self._stop.is_set():  # as below: shutdown outranks the error
                raise Stopped() from None
            if not isinstance(exc, kinds):
                raise
        self._pause(FIRST_BACKOFF_S)
        retrying = Retrying(
            retry=retry_if_exception_type(kinds),
            # continues the backoff the first attempt began: 0.2 s, 0.4 s, 0.8 s, ... 5 s
            wait=wait_exponential(multiplier=2 * FIRST_BACKOFF_S, max=MAX_BACKOFF_S),
            stop=stop_when_event_set(self._stop),
            sleep=self._pause,
            reraise=True,
        )
        try:
            retrying(self._unless_stopped, step)
        except (_Retry, _Abort):
            if self._stop.is_set():  # gave up because of shutdown, not of the error
                raise Stopped() from None
            raise

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a shutdown cuts the backoff short

    def _unless_stopped(self, step: Callable[[], None]) -> None:
        if self._stop.is_set():
            raise Stopped()
        step()

    def _call(self, step: Callable[[Producer], None]) -> None:
        try:
            step(self._require())
        except KafkaException as exc:
            self._raise_for(exc)

    def _raise_for(self, exc: KafkaException) -> None:
        """Raise what the caller should do about a transaction API error.

        A retriable error during commit means "not known yet": commit is called again,
        never the batch re-sent, which is what the API asks for.
        """
        error: KafkaError = exc.args[0]
        reason = error.str()
        if error.code() in _FENCED_CODES and self._outlived_timeout():
            self._on_kafka_state(f"transaction timed out: {reason}")
            raise TransactionTimedOut(
                f"vCenter {self._vcenter}: the transaction outlived transaction.timeout.ms "
                f"({self._timeout_s:g}s) and the coordinator aborted it: {reason}"
            ) from None
        if error.code() in _FENCED_CODES:
            self._on_kafka_state(f"fenced: {reason}")
            raise ProducerFenced(
                f"vCenter {self._vcenter}: another producer uses transactional.id "
                f"{self._transactional_id}: {reason}"
            ) from None
        if error.fatal():
            self._on_kafka_state(f"producer failed: {reason}")
            raise TransactionStateUnknown(f"vCenter {self._vcenter}: {reason}") from None
        self._on_kafka_state(f"Kafka error: {reason}")
        log.warning("vCenter %s: Kafka transaction error, retrying: %s", self._vcenter, reason)
        if error.txn_requires_abort():
            raise _Abort() from exc
        if error.retriable():
            raise _Retry() from exc
        raise TransactionStateUnknown(f"vCenter {self._vcenter}: {reason}") from None

    def _outlived_timeout(self) -> bool:
        return self._began is not None and time.monotonic() - self._began >= self._timeout_s

    def _require(self) -> Producer:
        if self._producer is None:
            raise TransactionStateUnknown(f"vCenter {self._vcenter}: producer not started")
        return self._producer

    def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                producer.flush(1)
            except KafkaException as exc:  # a failed producer has nothing left to send
                log.debug("vCenter %s: closing the producer: %s", self._vcenter, exc)
