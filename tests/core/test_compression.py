"""Every producer compresses with `kafka.compression`: the producer role, the streams
worker's outputs and dead letters. Checked on the broker's own log segments, whose
record batches name their codec."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from devenv.kafka import LocalKafka
from schemas.record import KafkaRecord
from sinks.deadletters import DeadLetterWriter
from streams.faust_kafka import faust_broker_options
from tests.streams.helpers import StreamsWorker, consume, produce, streams_config
from tests.streams.test_worker import vsphere
from vcstream.kafka import client_config, producer_config
from vcstream.settings.kafka import KafkaSettings

CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def codecs_on_disk(broker: LocalKafka, topic: str) -> set[str]:
    """The codec of every data batch Kafka holds for a topic, read from its log segments
    (record batch v2: attributes' low 3 bits after baseOffset, length, epoch, magic, crc;
    bit 5 marks a control batch, a transaction marker)."""
    segments = sorted((broker.workdir / "data").glob(f"{topic}-*/*.log"))
    assert segments, f"no log segment of {topic}"
    codecs = set()
    for segment in segments:
        data = segment.read_bytes()
        position = 0
        while position + 23 <= len(data):
            length = struct.unpack_from(">i", data, position + 8)[0]
            if length <= 0:
                break  # the preallocated rest of the segment
            attributes = struct.unpack_from(">h", data, position + 21)[0]
            if not attributes & 0x20:
                codecs.add(CODECS[attributes & 0x07])
            position += 12 + length
    return codecs


def test_producers_take_the_codec_and_consumers_none() -> None:
    kafka = KafkaSettings(compression="zstd")
    assert producer_config(kafka)["compression.type"] == "zstd"
    assert "compression.type" not in client_config(kafka)  # a consumer would warn of it
    assert faust_broker_options(kafka)["producer_compression_type"] == "zstd"
    assert producer_config(KafkaSettings())["compression.type"] == "lz4"
    assert (
        faust_broker_options(KafkaSettings(compression="none"))["producer_compression_type"] is None
    )


def test_a_codec_in_client_properties_wins() -> None:
    kafka = KafkaSettings.model_validate(
        {"compression": "zstd", "clientProperties": {"compression.type": "gzip"}}
    )
    assert producer_config(kafka)["compression.type"] == "gzip"
    assert faust_broker_options(kafka)["producer_compression_type"] == "gzip"


@pytest.mark.integration
def test_worker_outputs_and_dead_letters_are_compressed_on_the_broker(
    kafka: LocalKafka, topic_name, tmp_path: Path
):
    broker = kafka  # the test's own topics: their segments hold only what it wrote
    config = streams_config(
        tmp_path,
        broker.bootstrap_servers,
        topic_name,
        extra={"kafka": {"bootstrapServers": broker.bootstrap_servers, "compression": "zstd"}},
    )
    worker = StreamsWorker(config)
    settings = worker.settings
    try:
        worker.start()
        produce(settings, settings.topics.events, [vsphere("VmPoweredOnEvent") for _ in range(20)])
        consume(settings, settings.topics.audit, 20, timeout=60)
    finally:
        worker.stop()
    letters = DeadLetterWriter(settings.kafka, settings.topics.dead_letter)
    try:
        # (librdkafka sends a batch as is when compressing would not make it smaller)
        for _ in range(10):
            letters.send(KafkaRecord(b"{not json " * 100, b"k", [("ce_type", b"t")]))
        asyncio.run(letters.flush())
    finally:
        letters.close()

    assert codecs_on_disk(broker, settings.topics.audit) == {"zstd"}
    assert codecs_on_disk(broker, settings.topics.dead_letter) == {"zstd"}
