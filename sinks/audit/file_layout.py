"""Where the files backend puts a record, what its files are called, and reading one.

Layout: `<directory>/date=<YYYY-MM-DD>/vcenter=<uuid>/<topic>+<partition>+<first>-<last>.avro`
(`+` never occurs in a Kafka topic name), dated by the event's time. A file being
written is `….avro.tmp` (`TMP_SUFFIX`) until it is closed; `PENDING_PREFIX` marks the
half-renamed batches an older release left behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import fastavro

from schemas import avro
from sinks.audit.encoding import micros
from sinks.audit.record import AuditRecord

_NAME = re.compile(
    r"^(?P<topic>[A-Za-z0-9._-]+)\+(?P<partition>\d+)\+(?P<first>\d+)-(?P<last>\d+)\.avro$"
)
TMP_SUFFIX = ".tmp"
PENDING_PREFIX = ".pending-"  # written by releases before rotation; finished by open()
DAY = 86_400_000_000  # microseconds
EPOCH_DAY = date(1970, 1, 1)
_days: dict[int, str] = {}  # day number -> its date, as folders name it (bounded)
# a record's folder: (date, vCenter uuid)
Place = tuple[str, str]


@dataclass(frozen=True, order=True)
class AuditFile:
    topic: str
    partition: int
    first: int
    last: int
    path: Path

    @classmethod
    def parse(cls, path: Path) -> AuditFile | None:
        match = _NAME.match(path.name)
        if match is None:
            return None
        return cls(
            match["topic"], int(match["partition"]), int(match["first"]), int(match["last"]), path
        )

    @staticmethod
    def name(topic: str, partition: int, first: int, last: int) -> str:
        return f"{topic}+{partition}+{first:020d}-{last:020d}.avro"


def read_file(path: Path) -> Iterator[AuditRecord]:
    with path.open("rb") as stream:
        for record in fastavro.reader(stream, reader_schema=avro.load("audit_record")):
            assert isinstance(record, dict)
            yield record


def place_of(time_micros: int, vcenter: str) -> Place:
    """The (date, vCenter) folder of a record of this time and vCenter."""
    day = time_micros // DAY
    text = _days.get(day)
    if text is None:
        if len(_days) >= 4096:
            _days.clear()
        text = _days[day] = (EPOCH_DAY + timedelta(days=day)).isoformat()
    return text, vcenter or "unknown"


def record_place(record: AuditRecord) -> Place:
    return place_of(micros(record["time"]), record["vcenterUuid"])


def folder_of(root: Path, place: Place) -> Path:
    return root / f"date={place[0]}" / f"vcenter={place[1]}"


def day_start(place: Place) -> int:
    """The first microsecond of the place's date."""
    return (date.fromisoformat(place[0]) - EPOCH_DAY).days * DAY
