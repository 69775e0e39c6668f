"""Faust's aiokafka transport, reading with isolation level read_committed.

The producer writes events inside Kafka transactions; a consumer reading uncommitted
data would process events of aborted transactions, which the producer then writes
again. faust-streaming reads committed data only in its `exactly_once` mode, which
vcstream does not use (open bugs), so this transport sets the isolation level itself.
Brokers are addressed as `vcstream-kafka://host:port`.
"""

from __future__ import annotations

from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

SCHEME = "vcstream-kafka"


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka takes the level in its constructor only and hands it to its fetcher
        # at start(); Faust builds the consumer without exposing the argument
        consumer._isolation_level = "read_committed"
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ReadCommittedConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


drivers.TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")


def broker_urls(faust_broker: str) -> str:
    """`kafka://a;kafka://b` (vcstream.kafka.faust_broker_options) on this transport."""
    return ";".join(
        SCHEME + "://" + url.split("://", 1)[-1] for url in faust_broker.split(";") if url
    )
