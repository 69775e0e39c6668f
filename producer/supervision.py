"""What every source's worker (a vCenter, a Horizon server) does around its own loop.

Each source runs on a thread of its own and survives whatever fails, the same way:
its own errors (unreachable, refusing) are the subclass's to recover from; the outcome
of a commit unknown, or Kafka unavailable, restarts the transactional writer and makes
the position be read again from the checkpoint topic, which is the truth; a fenced
producer, a corrupt checkpoint or a bug stop this source alone (`failure`), and the
producer's app decides what that means for the process.
"""

from __future__ import annotations

import logging
import threading
from typing import ClassVar, Generic, TypeVar

from confluent_kafka import KafkaException

from producer.compacted import TopicReadTimeout
from producer.writer import ProducerFenced, Stopped, TransactionalWriter, TransactionStateUnknown
from vcstream.observability import Flag
from vcstream.settings import Settings

log = logging.getLogger(__name__)

PositionT = TypeVar("PositionT")


class SourceWorker(threading.Thread, Generic[PositionT]):
    """A source's loop, supervised.

    A subclass gives `_step` (one turn of its loop), `source_errors` and
    `_source_failed` (its source unreachable or refusing: back off or reconnect), and
    `_close_source`. The position in memory (`_position`) only advances after a commit;
    None means "read it from the checkpoint topic"."""

    kind: ClassVar[str]  # how logs name the source: "vCenter", "Horizon"
    source_errors: ClassVar[tuple[type[Exception], ...]]

    def __init__(
        self,
        thread_name: str,
        label: str,
        settings: Settings,
        stop: threading.Event,
        source_flag: Flag,
    ) -> None:
        super().__init__(name=thread_name, daemon=True)
        self.label = label
        self.settings = settings
        self.stop = stop
        self.failure: BaseException | None = None
        self.source_flag = source_flag
        self.kafka_flag = Flag("starting")
        self._writer: TransactionalWriter | None = None
        self._position: PositionT | None = None

    def _step(self) -> None:
        raise NotImplementedError

    def _source_failed(self, exc: Exception) -> None:
        raise NotImplementedError

    def _close_source(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    self._step()
                except self.source_errors as exc:
                    self._source_failed(exc)
                except TransactionStateUnknown as exc:
                    if isinstance(exc, ProducerFenced):
                        raise
                    log.warning("%s; re-reading the checkpoint", exc)
                    self._restart_writer()
                except (KafkaException, TopicReadTimeout) as exc:
                    self.kafka_flag.down(f"Kafka: {exc}")
                    log.warning("%s %s: Kafka unavailable: %s", self.kind, self.label, exc)
                    self._restart_writer()
                    self.stop.wait(1)
        except Stopped as exc:
            if not self.stop.is_set():  # only a shutdown may stop a worker quietly
                self.failure = exc
                log.error("%s %s: stopped unexpectedly", self.kind, self.label)
        except BaseException as exc:  # fenced, corrupt checkpoint, a bug: this source stops
            self.failure = exc
            self.source_flag.down(f"stopped: {exc}")
            log.error("%s %s: stopped: %s", self.kind, self.label, exc, exc_info=True)
        finally:
            if self._writer is not None:
                self._writer.close()
            self._close_source()

    def _restart_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        self._position = None

    def _kafka_state(self, problem: str | None) -> None:
        if problem is None:
            self.kafka_flag.ok()
        else:
            self.kafka_flag.down(problem)
