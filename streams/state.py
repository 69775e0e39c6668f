"""State for processors: Faust tables, declared by a processor module, made by the app.

    from datetime import timedelta
    from schemas.codec import with_changes
    from streams.api import data_of, processor
    from streams.state import Table

    power_ons = Table("power-ons-per-host", default=int).tumbling(timedelta(hours=1))

    @processor(output="vcenter.busy-hosts", types=["*.VmPoweredOnEvent.v0"], tables=[power_ons])
    def busy_hosts(event):
        host = data_of(event)["Host"]["Name"]
        power_ons[host] += 1
        if power_ons[host].current() == 100:
            return with_changes(event, type="com.example.HostBusy.v0")
        return None

The worker's faust.App is built after discovery (the configuration says which processors
run, and so which tables exist), so a declaration here is a spec: when the app is built,
each spec of a processor that runs becomes a real `app.Table` (windowed as declared), and
every operation on the spec is Faust's own on that table, with Faust's semantics (a
windowed table's `[key]` is a WindowSet with `.current()`, `.delta()`, `+=`). A table's
changelog topic is `<appId>-<name>-changelog`; its state comes back from there after a
restart or a rebalance. `streams.testing` binds the same specs to in-memory tables.

A `Table` is co-partitioned with the processor's input: one changelog partition per input
partition, a write going to the partition of the record being processed, so a worker
holds the state of the partitions it reads. Records are keyed by vCenter + entity: keep a
table's state per entity, or per something all of whose records share a key (an event
id). A `GlobalTable` is held whole by every worker, for state that one entity's events
write and others' read (a host's maintenance mode, read by alarms on its VMs); a write
reaches the other workers through its changelog, a moment later.

Write a new value rather than changing one in place: a value changed in place is changed
in this worker's memory only, and its changelog never hears of it. Delivery is at least
once: a record read again after a crash (its offset not yet committed) runs the
processor again, on state that may already hold its first run; where a repeat matters,
keep what was counted (the built-in processors keep the event ids or the offset).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Literal

from schemas.record import KafkaRecord

Seconds = float | int | timedelta

_record: ContextVar[KafkaRecord | None] = ContextVar("vcstream_current_record", default=None)


class StateError(RuntimeError):
    """A table used where it cannot be, or declared twice."""


def current_record() -> KafkaRecord:
    """The Kafka record being processed: its key, topic, partition, offset and timestamp.

    vcstream's `faust.current_event().message`, for a processor (which sees the event,
    not the record) and the same in `streams.testing`.
    """
    record = _record.get()
    if record is None:
        raise StateError("no record is being processed (current_record() outside a processor)")
    return record


class processing:  # a context manager, named as the function it replaced
    """`current_record()` is this record meanwhile.

    A class, not `@contextmanager`: the worker enters it for every record, and a
    generator-based context manager cost twice as much."""

    __slots__ = ("_record", "_token")

    def __init__(self, record: KafkaRecord) -> None:
        self._record = record

    def __enter__(self) -> None:
        self._token = _record.set(self._record)

    def __exit__(self, *_: object) -> None:
        _record.reset(self._token)


@contextmanager
def faust_current_event(event: Any) -> Iterator[None]:
    """Faust's `current_event()` is this event meanwhile, outside the agent that read it.

    Faust sends a table write to the changelog partition of its current event and
    reads a windowed table's time from it; an alarm event released from the timer that
    waits for definitions has none (faust-streaming 0.15 keeps it in a context variable
    its streams set, `faust.streams._current_event`).
    """
    from faust.streams import _current_event

    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def seconds(value: Seconds) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(frozen=True)
class Window:
    kind: Literal["tumbling", "hopping"]
    size: float
    step: float
    expires: float


class Table:
    """A Faust `Table` a processor declares (`app.Table(name, default=...)`)."""

    is_global: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        *,
        default: Callable[[], Any] | None = None,
        help: str = "",
        window: Window | None = None,
    ) -> None:
        if not name:
            raise ValueError("a table needs a name")
        self.name = name
        self.default = default
        self.help = help
        self.window = window
        self._backing: Any = None

    def tumbling(self, size: Seconds, expires: Seconds | None = None) -> Table:
        """Faust's `.tumbling(size, expires)`. A window is in record time (the Kafka
        timestamp); it is dropped `expires` after it by the wall clock (default: two
        sizes; Faust's default keeps every window forever), its changelog likewise."""
        length = seconds(size)
        kept = seconds(expires) if expires is not None else 2 * length
        return self._windowed(Window("tumbling", length, length, kept))

    def hopping(self, size: Seconds, step: Seconds, expires: Seconds | None = None) -> Table:
        """Faust's `.hopping(size, step, expires)` (default expiry: two sizes)."""
        length = seconds(size)
        kept = seconds(expires) if expires is not None else 2 * length
        return self._windowed(Window("hopping", length, seconds(step), kept))

    def _windowed(self, window: Window) -> Table:
        if self.is_global:
            raise StateError("a GlobalTable has no windows")
        if window.size < 1 or window.step < 1 or window.size != int(window.size):
            # Faust lays windows out on whole seconds (it truncates sizes to ints)
            raise ValueError(f"table {self.name}: window sizes are whole seconds, at least 1")
        return type(self)(self.name, default=self.default, help=self.help, window=window)

    def bind(self, backing: Any) -> None:
        """Hand every operation to this table from now on (the app, `streams.testing`)."""
        self._backing = backing

    @property
    def bound(self) -> Any:
        if self._backing is None:
            raise StateError(
                f"table {self.name!r} has no state behind it: name it in its processor's "
                "tables=[...], and run the processor in the worker or with streams.testing"
            )
        return self._backing

    def __getitem__(self, key: Any) -> Any:
        return self.bound[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.bound[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.bound[key]

    def __contains__(self, key: Any) -> bool:
        return key in self.bound

    def __iter__(self) -> Iterator[Any]:
        return iter(self.bound)

    def __len__(self) -> int:
        return len(self.bound)

    def __bool__(self) -> bool:
        return True  # a declaration, whether or not it holds anything yet

    def __getattr__(self, name: str) -> Any:
        # get, pop, items, setdefault, relative_to_now, ...: Faust's, on the bound table
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.bound, name)

    def __repr__(self) -> str:
        window = f", {self.window.kind} {self.window.size:g}s" if self.window else ""
        return f"<{type(self).__name__} {self.name}{window}>"


class GlobalTable(Table):
    """A Faust `GlobalTable` a processor declares: every worker holds all of it."""

    is_global = True


def tables_by_input(processors: Sequence[Any], events_topic: str) -> dict[str, list[Table]]:
    """The tables of these processors by the input topic they are co-partitioned with.

    One name is one table: two declarations of a name, or one table used by processors
    of two input topics, are refused before anything starts.
    """
    found: dict[str, tuple[Table, str]] = {}
    for item in processors:
        topic = getattr(item, "topic", None) or events_topic
        for spec in item.tables:
            other = found.get(spec.name)
            if other is not None and other[0] is not spec:
                raise StateError(f"two tables are named {spec.name!r}")
            if other is not None and not spec.is_global and other[1] != topic:
                raise StateError(
                    f"table {spec.name!r} is used by processors of two input topics "
                    f"({other[1]}, {topic}): it can be co-partitioned with one only"
                )
            found[spec.name] = (spec, topic)
    by_topic: dict[str, list[Table]] = {}
    for spec, topic in found.values():
        by_topic.setdefault(topic, []).append(spec)
    return by_topic


def create_faust_tables(
    app: Any, by_topic: Mapping[str, list[Table]], partitions: Mapping[str, int]
) -> list[Any]:
    """Each spec as a table of this faust.App, bound; `partitions`: of each input topic."""
    created = []
    for topic, specs in by_topic.items():
        for spec in specs:
            table = _faust_table(app, spec, partitions[topic])
            spec.bind(table)
            created.append(table)
    return created


def _faust_table(app: Any, spec: Table, partitions: int) -> Any:
    if spec.is_global:
        # One partition, written by the producer's partitioner (a write comes from events
        # of any input partition), read whole by every worker: the multi-instance
        # recovery-loop workaround faust-streaming documents for a GlobalTable.
        return app.GlobalTable(
            spec.name,
            default=spec.default,
            partitions=1,
            use_partitioner=True,
            recovery_buffer_size=1,
            help=spec.help,
        )
    table = app.Table(spec.name, default=spec.default, partitions=partitions, help=spec.help)
    return windowed(table, spec.window)


def windowed(table: Any, window: Window | None) -> Any:
    """A Faust table as its spec declares it: itself, or its window wrapper."""
    if window is None:
        return table
    if window.kind == "tumbling":
        return table.tumbling(window.size, expires=window.expires)
    return table.hopping(window.size, window.step, expires=window.expires)
