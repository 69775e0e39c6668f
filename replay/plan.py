"""Turn a ReplaySpec into exact offsets per partition, or say precisely why not.

The plan is fixed when the replay starts: the end of an open range is the last stable
offset at that moment (read_committed), so a replay terminates even on a live topic, and
a resumed replay covers exactly the range the interrupted one set out to cover.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from replay.errors import ReplayUsageError
from replay.spec import ReplaySpec
from vcstream.kafka import client_config, list_topics
from vcstream.settings.kafka import KafkaSettings

# librdkafka 2.16 drops its bootstrap connection once the first metadata answer names the
# brokers; a request that was on it is sent again when the connection suppression ends,
# half of reconnect.backoff.ms (100 ms by default) later: ~50 ms of the plan's first
# request in 3 runs of 5, the plan being ~100 ms of every replay's start-up. The plan's
# client makes a few requests and is gone: a short backoff costs it nothing. A user's
# clientProperties win.
PLAN_CLIENT_SETTINGS: dict[str, str] = {"reconnect.backoff.ms": "10"}


def plan_client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """`client_config` for the AdminClient that makes a plan."""
    ours = {
        name: value
        for name, value in PLAN_CLIENT_SETTINGS.items()
        if name not in kafka.client_properties
    }
    return client_config(kafka, **ours)


@dataclass(frozen=True)
class PartitionRange:
    """One partition's part of a replay: offsets [start, stop), at most `limit` records."""

    partition: int
    start: int
    stop: int
    limit: int | None = None

    @property
    def empty(self) -> bool:
        return self.start >= self.stop or self.limit == 0


@dataclass(frozen=True)
class Plan:
    topic: str
    ranges: tuple[PartitionRange, ...]

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "ranges": [asdict(r) for r in self.ranges]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(str(data["topic"]), tuple(PartitionRange(**r) for r in data["ranges"]))

    @property
    def expected_records(self) -> int:
        """An upper bound: transaction markers occupy offsets without being records."""
        total = 0
        for r in self.ranges:
            span = max(0, r.stop - r.start)
            total += span if r.limit is None else min(span, r.limit)
        return total


@dataclass(frozen=True)
class Retained:
    """What a partition holds now (read_committed): offsets [low, high) and their times."""

    partition: int
    low: int
    high: int
    first_time_ms: int | None  # the timestamp of the record at `low`
    last_time_ms: int | None  # the largest timestamp in the partition

    def describe(self) -> str:
        if self.high <= self.low:
            return f"partition {self.partition}: empty (next offset {self.high})"
        times = ""
        if self.first_time_ms is not None and self.last_time_ms is not None:
            times = f", times {_iso(self.first_time_ms)} .. {_iso(self.last_time_ms)}"
        return f"partition {self.partition}: offsets {self.low}..{self.high - 1}{times}"


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class OffsetOracle:
    """ListOffsets queries against the broker, read_committed, for one topic."""

    def __init__(self, admin: AdminClient, topic: str, timeout: float = 30) -> None:
        self.admin = admin
        self.topic = topic
        self.timeout = timeout

    def partitions(self) -> list[int]:
        metadata = list_topics(self.admin, self.timeout, self.topic)
        described = metadata.topics.get(self.topic)
        if described is None or described.error is not None:
            # asked for one topic, the broker answers with that one only (and its error):
            # the hint lists the cluster's topics, and never the missing one
            every = list_topics(self.admin, self.timeout).topics
            others = sorted(t for t in every if not t.startswith("__") and t != self.topic)
            hint = f"; topics here: {', '.join(others[:20])}" if others else ""
            raise ReplayUsageError(f"topic {self.topic} does not exist{hint}")
        return sorted(described.partitions)

    def query(self, partitions: list[int], spec: OffsetSpec) -> dict[int, tuple[int, int]]:
        """partition -> (offset, timestamp_ms) for one kind of ListOffsets request."""
        [answers] = self.queries(partitions, [spec])
        return answers

    def queries(
        self, partitions: list[int], specs: list[OffsetSpec]
    ) -> list[dict[int, tuple[int, int]]]:
        """`query` for each of `specs`, the requests all sent before any answer is
        awaited: one round trip to the broker instead of one per kind."""
        sent = [
            self.admin.list_offsets(
                {TopicPartition(self.topic, p): spec for p in partitions},
                isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=self.timeout,
            )
            for spec in specs
        ]
        return [self._answers(futures) for futures in sent]

    def _answers(self, futures: dict[TopicPartition, Future[Any]]) -> dict[int, tuple[int, int]]:
        answers: dict[int, tuple[int, int]] = {}
        for tp, future in futures.items():
            try:
                info = future.result()
            except KafkaException as exc:
                raise RuntimeError(
                    f"cannot list offsets of {self.topic}[{tp.partition}]: {exc.args[0].str()}"
                ) from None
            answers[tp.partition] = (info.offset, info.timestamp)
        return answers

    def retained(self, partitions: list[int]) -> dict[int, Retained]:
        # the four kinds at once: asked one after the other, each waited for the one
        # before (the max-timestamp lookup alone took 5-40 ms: the broker reads its indexes)
        low, high, first, last = self.queries(
            partitions,
            [
                OffsetSpec.earliest(),  # type: ignore[no-untyped-call]
                OffsetSpec.latest(),  # type: ignore[no-untyped-call]
                OffsetSpec.for_timestamp(0),
                OffsetSpec.max_timestamp(),  # type: ignore[no-untyped-call]
            ],
        )
        result = {}
        for p in partitions:
            has_records = high[p][0] > low[p][0]
            result[p] = Retained(
                p,
                low[p][0],
                high[p][0],
                first[p][1] if has_records and first[p][1] >= 0 else None,
                last[p][1] if has_records and last[p][1] >= 0 else None,
            )
        return result


def resolve(spec: ReplaySpec, oracle: OffsetOracle) -> Plan:
    """Exact per-partition ranges for `spec`; ReplayUsageError states what is available."""
    partitions = spec.selected_partitions(oracle.partitions())
    retained = oracle.retained(partitions)
    available = "; ".join(retained[p].describe() for p in partitions)

    starts = _starts(spec, oracle, retained, partitions, available)
    stops = _stops(spec, oracle, retained, partitions, starts, available)
    ranges = tuple(
        PartitionRange(p, starts[p], max(starts[p], stops[p]), spec.count) for p in partitions
    )
    return Plan(spec.topic, ranges)


def _starts(
    spec: ReplaySpec,
    oracle: OffsetOracle,
    retained: dict[int, Retained],
    partitions: list[int],
    available: str,
) -> dict[int, int]:
    if spec.from_beginning:
        return {p: retained[p].low for p in partitions}
    if spec.from_time is not None:
        return _starts_at_time(spec.from_time, oracle, retained, partitions, available)
    starts = {}
    for p in partitions:
        offset = spec.from_offset_for(p)
        if offset is None:
            raise ReplayUsageError(f"--from-offset gives no offset for partition {p}; {available}")
        _check_offset("--from-offset", offset, retained[p])
        starts[p] = offset
    return starts


def _check_offset(option: str, offset: int, held: Retained) -> None:
    if held.high <= held.low:
        raise ReplayUsageError(f"{option} {offset}: {held.describe()}")
    if offset < held.low:
        raise ReplayUsageError(
            f"{option} {offset} is no longer retained (deleted by retention); {held.describe()}"
        )
    if offset >= held.high:
        raise ReplayUsageError(f"{option} {offset} is beyond the last offset; {held.describe()}")


def _starts_at_time(
    moment: datetime,
    oracle: OffsetOracle,
    retained: dict[int, Retained],
    partitions: list[int],
    available: str,
) -> dict[int, int]:
    at = oracle.query(partitions, OffsetSpec.for_timestamp(_ms(moment)))
    firsts = [retained[p].first_time_ms for p in partitions]
    known = [t for t in firsts if t is not None]
    when = moment.isoformat().replace("+00:00", "Z")
    if not known:
        raise ReplayUsageError(f"--from-time {when}: nothing is retained; {available}")
    if _ms(moment) < min(known):
        raise ReplayUsageError(
            f"--from-time {when} is before the earliest retained record "
            f"({_iso(min(known))}): records from then are not (or no longer) in the topic; "
            f"use --from-beginning to replay all that is retained; {available}"
        )
    for p in partitions:
        held = retained[p]
        # a partition whose head was deleted may have lost records of the asked window
        if held.low > 0 and held.first_time_ms is not None and _ms(moment) < held.first_time_ms:
            raise ReplayUsageError(
                f"--from-time {when}: partition {p} no longer retains records that old; {available}"
            )
    starts = {p: (at[p][0] if at[p][0] >= 0 else retained[p].high) for p in partitions}
    if all(starts[p] >= retained[p].high for p in partitions):
        raise ReplayUsageError(f"--from-time {when} is after the last record; {available}")
    return starts


def _stops(
    spec: ReplaySpec,
    oracle: OffsetOracle,
    retained: dict[int, Retained],
    partitions: list[int],
    starts: dict[int, int],
    available: str,
) -> dict[int, int]:
    if spec.to_time is not None:
        at = oracle.query(partitions, OffsetSpec.for_timestamp(_ms(spec.to_time)))
        return {p: (at[p][0] if at[p][0] >= 0 else retained[p].high) for p in partitions}
    stops = {}
    for p in partitions:
        last = spec.to_offset_for(p)
        if last is None:
            stops[p] = retained[p].high
            continue
        _check_offset("--to-offset", last, retained[p])
        if last < starts[p]:
            raise ReplayUsageError(
                f"--to-offset {last} is before the start offset {starts[p]} of partition {p}"
            )
        stops[p] = last + 1
    return stops
