"""Counting what a replay did, per partition, in a form that survives an interruption.

The checksum is a multiset hash: the sum, modulo 2**256, of SHA-256 over
"<partition>:<offset>:<id>" of every record written. A sum does not depend on the order
in which partitions interleave, can be carried across a Ctrl-C as one number, and two
replays of the same range give the same value, whether or not one was interrupted.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from replay.batch import Counted

MODULUS = 2**256
MAX_LISTED_UNDECODABLE = 100


def record_digest(partition: int, offset: int, event_id: str) -> int:
    text = f"{partition}:{offset}:{event_id}".encode()
    return int.from_bytes(hashlib.sha256(text).digest(), "big")


def checksum_hex(value: int) -> str:
    return f"{value % MODULUS:064x}"


@dataclass
class PartitionTally:
    """What happened to the records of one partition.

    read = written + filtered + skipped + dead_lettered: every record in range is
    accounted for (skipped: undecodable; dead_lettered: a sink gave up on it).
    `next_offset` is where the replay continues; `checksum` covers written records.
    """

    partition: int
    next_offset: int
    first_offset: int | None = None
    last_offset: int | None = None
    read: int = 0
    written: int = 0
    skipped: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    first_time_ms: int | None = None
    last_time_ms: int | None = None
    checksum: int = 0
    undecodable: list[dict[str, Any]] = field(default_factory=list)

    def saw(self, offset: int, timestamp_ms: int | None) -> None:
        self.read += 1
        if self.first_offset is None:
            self.first_offset = offset
        self.last_offset = offset
        if timestamp_ms is not None:
            if self.first_time_ms is None or timestamp_ms < self.first_time_ms:
                self.first_time_ms = timestamp_ms
            if self.last_time_ms is None or timestamp_ms > self.last_time_ms:
                self.last_time_ms = timestamp_ms

    def wrote(self, offset: int, event_id: str) -> None:
        self.written += 1
        self.checksum = (self.checksum + record_digest(self.partition, offset, event_id)) % MODULUS

    def skip(self, offset: int, reason: str) -> None:
        """An undecodable record: counted, and listed (up to a bound) with the reason."""
        self.skipped += 1
        if len(self.undecodable) < MAX_LISTED_UNDECODABLE:
            self.undecodable.append({"offset": offset, "reason": reason})

    def filter_out(self) -> None:
        self.filtered += 1

    def dead_letter(self) -> None:
        self.dead_lettered += 1

    def add(self, counted: Counted) -> None:
        """A written batch's counts for this partition (`replay.batch`), in one step."""
        self.read += counted.read
        if self.first_offset is None:
            self.first_offset = counted.first_offset
        self.last_offset = counted.last_offset
        for time_ms in (counted.first_time_ms, counted.last_time_ms):
            if time_ms is not None:
                if self.first_time_ms is None or time_ms < self.first_time_ms:
                    self.first_time_ms = time_ms
                if self.last_time_ms is None or time_ms > self.last_time_ms:
                    self.last_time_ms = time_ms
        self.written += counted.written
        self.filtered += counted.filtered
        self.dead_lettered += counted.dead_lettered
        for offset, reason in counted.undecodable:
            self.skip(offset, reason)
        self.checksum = (self.checksum + counted.checksum) % MODULUS
        self.next_offset = counted.last_offset + 1

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["checksum"] = checksum_hex(self.checksum)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartitionTally:
        values = dict(data)
        values["checksum"] = int(str(values["checksum"]), 16)
        return cls(**values)


def combined_checksum(tallies: list[PartitionTally]) -> str:
    return checksum_hex(sum(t.checksum for t in tallies))
