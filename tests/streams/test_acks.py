"""Acks reach Faust in offset order, and never from an earlier consumer generation."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.acks import OrderedAcks


@dataclass
class Message:
    tp: str
    offset: int
    generation_id: int | None


@dataclass
class Source:
    message: Message
    acked: list[int] = field(default_factory=list)

    def ack(self) -> None:
        self.acked.append(self.message.offset)


class Generation:
    def __init__(self) -> None:
        self.value = 1

    def __call__(self) -> int:
        return self.value


def test_acks_wait_for_the_earliest_unfinished_event() -> None:
    acks = OrderedAcks(Generation())
    sources = [Source(Message("p0", offset, 1)) for offset in range(3)]
    entries = [acks.track(source) for source in sources]
    acks.finish(entries[2])
    acks.finish(entries[1])
    assert [s.acked for s in sources] == [[], [], []]
    acks.finish(entries[0])
    assert [s.acked for s in sources] == [[0], [1], [2]]


def test_event_of_an_earlier_generation_is_never_acked_after_a_rebalance() -> None:
    generation = Generation()
    acks = OrderedAcks(generation)
    old = Source(Message("p0", 51, 1))
    old_entry = acks.track(old)  # still buffered when the partition was reassigned
    generation.value = 2
    assert acks.is_stale(old)
    reread = [Source(Message("p0", offset, 2)) for offset in (46, 47)]
    entries = [acks.track(source) for source in reread]
    acks.finish(old_entry)
    for entry in entries:
        acks.finish(entry)
    assert old.acked == []
    assert [s.acked for s in reread] == [[46], [47]]
    assert acks.in_flight() == 0


def test_forgotten_partition_acks_nothing_of_what_was_in_flight() -> None:
    acks = OrderedAcks(Generation())
    source = Source(Message("p1", 7, 1))
    entry = acks.track(source)
    acks.forget(["p1"])
    acks.finish(entry)
    assert source.acked == []
