"""The streams worker's own per-event work without Kafka or Faust: decode, inline
processors, enrichment and outputs (routes, processors, encoding) over bench.streams'
records, in CPU microseconds per event, with and without the example processor.

    .venv/bin/python -m bench.streams_pipeline [--events 20000] [--rounds 5]

The part of the worker's cost that is vcstream's own code, apart from Faust's stream and
aiokafka's fetch and produce (bench.streams measures the whole worker beside those).
The best of `--rounds` passes over the same records (CPU time of this process, so other
processes on the machine count less than in a wall rate). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

from bench.streams import definitions, event
from schemas.record import KafkaRecord
from streams.definitions import DefinitionIndex
from streams.enrich import enriched
from streams.pipeline import Output, Pipeline
from streams.processors.vm_power import vm_power
from streams.reading import sdk_event
from vcstream.settings import Settings

PARTITIONS = 6


def measure(example: bool, events: int, rounds: int) -> dict[str, Any]:
    settings = Settings.model_validate({})
    topic = settings.topics.events
    pipeline = Pipeline(settings, [vm_power] if example else [])
    index = DefinitionIndex(dict(definitions()))
    suffix = pipeline.enrichment.type_suffix
    records = [
        KafkaRecord(value, key, list(headers), topic, number % PARTITIONS, number)
        for number, (value, key, headers) in ((n, event(n)) for n in range(1, events + 1))
    ]

    def one(record: KafkaRecord) -> int:
        decoded = pipeline.decode(record)
        if isinstance(decoded, Output):
            return 1
        inlined = pipeline.inline(decoded, record, topic)
        current = inlined.event
        ref = pipeline.alarm_to_enrich(current, topic)
        if ref is not None and current is not None:
            definition = index.lookup(ref)
            if definition is not None:
                current = enriched(sdk_event(current), definition, suffix)
        return len(pipeline.outputs(current, record, topic, inlined=inlined))

    best, outputs = float("inf"), 0
    for _ in range(rounds):
        began = time.process_time()
        outputs = sum(one(record) for record in records)
        best = min(best, time.process_time() - began)
    return {
        "example_processor": example,
        "cpu_us_per_event": round(best / events * 1e6, 1),
        "events_per_cpu_s": round(events / best),
        "outputs_per_event": round(outputs / events, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    runs = [measure(example, args.events, args.rounds) for example in (True, False)]
    result = {
        "benchmark": "streams_pipeline",
        "events": args.events,
        "runs": runs,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
