"""The streams worker's ceilings, run by bench.streams beside the worker: a bare Faust
agent and a bare confluent-kafka loop, each forwarding every record of a topic to
another as the bytes (key, value, headers) it read, until stopped.

    .venv/bin/python -m bench.streams_bare faust|confluent --bootstrap HOST:PORT \
        --input TOPIC --output TOPIC --group GROUP [--compression lz4]

The Faust agent uses the worker's producer settings (acks=all, the same linger and
batch size, compression) and Faust's own acks and commits; it sends with the producer's
`send()`, as the worker does, so the difference is what the worker does per record.
The confluent loop consumes in batches, produces each record and commits every second.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from typing import Any


def faust_agent(args: argparse.Namespace) -> None:
    import faust

    from streams.app import PRODUCER_LINGER, PRODUCER_MAX_BATCH_BYTES

    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=args.datadir,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=PRODUCER_LINGER,
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        producer_compression_type=None if args.compression == "none" else args.compression,
    )
    source = app.topic(args.input, key_serializer="raw", value_serializer="raw")
    output = args.output

    @app.agent(source)
    async def forward(stream: Any) -> None:
        send = app.producer.send
        async for event in stream.events():
            message = event.message
            headers = list(message.headers or ())  # aiokafka takes a list
            await send(output, message.key, message.value, None, None, headers)

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            # Faust's terminal spinner would set the root logger to DEBUG whatever the
            # level asked for: every debug line of aiokafka's per-record send was then
            # formatted and dropped (~6% of this agent's CPU). The worker does the same
            # (streams.app), so the ceiling is Faust's, not its spinner's.
            return None

    worker = Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def confluent_loop(args: argparse.Namespace) -> None:
    from confluent_kafka import Consumer, KafkaException, Producer

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.queue.backoff.ms": 10,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "linger.ms": 50,
            "compression.type": args.compression,
        }
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    consumer.subscribe([args.input])
    committed = time.monotonic()
    while not stopping:
        for message in consumer.consume(1000, 0.5):
            if message.error():
                raise KafkaException(message.error())
            while True:
                try:
                    producer.produce(
                        args.output,
                        value=message.value(),
                        key=message.key(),
                        headers=message.headers(),
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
        if time.monotonic() - committed >= 1:
            producer.flush()  # outputs first, then the offsets that made them
            consumer.commit(asynchronous=False)
            committed = time.monotonic()
    producer.flush(30)
    consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["faust", "confluent"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--compression", default="lz4")
    parser.add_argument("--datadir", default=".cache/bench-faust")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.kind == "faust":
        asyncio.set_event_loop(asyncio.new_event_loop())
        faust_agent(args)
    else:
        confluent_loop(args)


if __name__ == "__main__":
    main()
