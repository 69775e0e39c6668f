"""`replay.batch`: a batch checked by its records' layouts gives each record the verdict,
the JSON line and the counts that `CloudEventView.check`, `as_json_line` and
`PartitionTally` give it one record at a time, also for records that differ from a
known layout in one byte."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import astuple, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat

from replay.batch import BatchChecker
from replay.tally import PartitionTally
from replay.targets.base import ReplayItem
from replay.targets.jsonlines import as_json_line
from schemas import InvalidRecord, KafkaRecord, decode
from schemas.cloudevent import CloudEventView
from schemas.codec import encode_vsphere
from tests.replay.helpers import CLASSES, EPOCH, VCENTER, RecordMessage, event_data

GOLDEN = sorted((Path(__file__).parents[1] / "schemas" / "golden").glob("*.json"))


def golden() -> list[KafkaRecord]:
    made = []
    for path in GOLDEN:
        document = json.loads(path.read_text())
        made.append(encode_vsphere(document["data"], document["class"], VCENTER))
    return made


def base(key: int) -> KafkaRecord:
    return encode_vsphere(
        event_data(key, EPOCH + timedelta(seconds=key)), CLASSES[key % 3], VCENTER
    )


def header_set(record: KafkaRecord, name: str, value: bytes | None) -> list[Any]:
    """The record's headers with `name`'s value replaced where it stands."""
    return [(k, value if k == name else v) for k, v in record.headers]


def variants(record: KafkaRecord) -> Iterable[tuple[KafkaRecord, list[Any] | None]]:
    """Records one change away from `record` (a known layout by then): each with the raw
    headers a consumer would see (None: the record's own)."""
    headers = record.headers

    def with_headers(new: list[tuple[str, bytes]]) -> KafkaRecord:
        return replace(record, headers=new)

    for name, value in [
        ("ce_id", b""),
        ("ce_id", b"\xff\xfe"),
        ("ce_id", 'a"b\\c \u00e9\u2603\n'.encode()),
        ("ce_time", b"2026-13-01T00:00:00Z"),
        ("ce_time", b"2026-01-01T00:00:00"),
        ("ce_time", b"2026-01-01T00:00:00.123456+02:00"),
        ("ce_time", b"20260101T000000Z"),  # isoparse's, not RFC 3339's
        ("ce_time", b"2026-02-30T00:00:00Z"),
        ("ce_time", b"yesterday"),
        # the times a known second and zone meet with odd rests (`ZonedTimes`)
        ("ce_time", b"2026-01-01T00:00:00.5+05:30"),
        ("ce_time", b"2026-01-01T00:00:00+05:30"),
        ("ce_time", b"2026-01-01T00:00:00.123456"),
        ("ce_time", b"2026-01-01T00:00:00.123456789Z"),
        ("ce_time", b"2026-01-01T00:00:00.Z"),
        ("ce_time", "2026-01-01T00:00:00.\u0661Z".encode()),
        ("ce_time", b"2026-01-01T00:00:00z"),
        ("ce_time", b"2026-01-01T00:00:00+24:00"),
        ("ce_time", b"2026-01-01T00:00:00ZZ"),
        ("ce_time", b"2026-12-31T23:59:60Z"),
        ("ce_time", b"2026-01-01T24:00:00Z"),
        ("ce_specversion", b"0.3"),
        ("ce_subject", b""),
        ("ce_subject", b'Other "quoted"'),
        ("content-type", b"application/json; charset=utf-8"),
        ("content-type", b"text/plain"),
        ("ce_source", b"\xc3"),
    ]:
        yield with_headers(header_set(record, name, value)), None
    yield (
        replace(record, headers=header_set(record, "ce_id", b"")),
        header_set(record, "ce_id", None),
    )
    yield record, [(k, None if k == "ce_subject" else v) for k, v in headers]  # empty
    values: tuple[bytes | None, ...] = (b"", None, b"{x", b'{"a": 1} more', b"42", b'"t"', b"[]")
    for data in values:
        yield replace(record, value=data), None
    yield replace(record, key=None), None
    yield replace(record, key=b"\xffkey"), None
    yield replace(record, timestamp_ms=None), None
    yield replace(record, timestamp_ms=0), None
    yield with_headers([h for h in headers if h[0] != "ce_time"]), None
    yield with_headers([h for h in headers if h[0] != "ce_type"]), None
    yield with_headers(list(reversed(headers))), None  # id and time elsewhere
    yield with_headers([*headers, ("ce_id", b"second-id")]), None  # last wins
    yield with_headers([*headers, ("CE_TIME", b"2030-01-01T00:00:00Z")]), None
    yield with_headers([*headers, ("traceparent", b"00-abc-01")]), None
    yield with_headers([*headers, ("traceparent", b"\xff")]), None
    yield with_headers([*headers, ("ce_Bad-Name", b"x")]), None
    yield with_headers([*headers, ("ce_data", b"x")]), None


def reference(
    records: list[KafkaRecord], wanted: Callable[[str], bool]
) -> tuple[dict[int, dict[str, Any]], bytes]:
    """One record at a time, the way replay counted before `replay.batch`."""
    tallies: dict[int, PartitionTally] = {}
    lines = []
    for record in records:
        assert record.partition is not None and record.offset is not None
        tally = tallies.setdefault(record.partition, PartitionTally(record.partition, 0))
        tally.saw(record.offset, record.timestamp_ms)
        tally.next_offset = record.offset + 1
        view = CloudEventView(record)
        try:
            view.check()
        except InvalidRecord as exc:
            tally.skip(record.offset, str(exc))
            continue
        if not wanted(view.type):
            tally.filter_out()
            continue
        tally.wrote(record.offset, view.id)
        lines.append(as_json_line(ReplayItem(view)))
    return {p: t.to_json() for p, t in tallies.items()}, b"".join(lines)


def batched(
    checker: BatchChecker, messages: list[RecordMessage]
) -> tuple[dict[int, dict[str, Any]], bytes]:
    tallies: dict[int, PartitionTally] = {}
    lines = []
    for start in range(0, len(messages), 7):  # several batches: layouts carry over
        checked = checker.check(messages[start : start + 7])
        lines.append(checked.lines)
        for partition, counted in checked.counted.items():
            tallies.setdefault(partition, PartitionTally(partition, 0)).add(counted)
    return {p: t.to_json() for p, t in tallies.items()}, b"".join(lines)


def placed(
    made: Iterable[tuple[KafkaRecord, list[Any] | None]],
) -> tuple[list[KafkaRecord], list[RecordMessage]]:
    """Records on two partitions with increasing offsets, and their messages."""
    records, messages = [], []
    next_offset = [0, 0]
    for index, (record, raw_headers) in enumerate(made):
        partition = index % 2
        where = replace(
            record, topic="vcenter.events", partition=partition, offset=next_offset[partition]
        )
        next_offset[partition] += 1
        records.append(where)
        messages.append(RecordMessage(where, raw_headers))
    return records, messages


def every_case() -> list[tuple[KafkaRecord, list[Any] | None]]:
    known = [*golden(), *(base(key) for key in range(6))]
    stamped = [replace(r, timestamp_ms=1_767_225_600_000 + i) for i, r in enumerate(known)]
    made: list[tuple[KafkaRecord, list[Any] | None]] = [(r, None) for r in stamped]
    for record in stamped:
        made.extend(variants(record))
        made.append((record, None))  # its layout again, after every variant
    return made


@pytest.mark.parametrize(
    "wanted",
    [lambda t: True, lambda t: "PoweredOn" in t, lambda t: False],
    ids=["all", "one-type", "none"],
)
def test_a_batch_gives_each_record_the_verdict_line_and_counts_of_the_record_by_record_way(
    wanted: Callable[[str], bool],
) -> None:
    _, messages = placed(every_case())
    records = [KafkaRecord.from_confluent(message) for message in messages]  # as read
    expected_tallies, expected_lines = reference(records, wanted)
    checker = BatchChecker("vcenter.events", wanted, lines=True)
    tallies, lines = batched(checker, messages)
    assert lines == expected_lines
    assert tallies == expected_tallies
    skipped = sum(t["skipped"] for t in tallies.values())
    assert skipped > 30  # the variants did provoke refusals, each with its reason
    assert checker.slow_checks < len(records)


def test_records_of_known_layouts_are_checked_without_the_slow_way() -> None:
    records = [
        replace(base(key), topic="t", partition=0, offset=key, timestamp_ms=key * 10)
        for key in range(300)
    ]
    checker = BatchChecker("t", lambda t: True, lines=True)
    tallies, lines = batched(checker, [RecordMessage(r) for r in records])
    assert checker.slow_checks == len(CLASSES)  # the first of each event type
    assert (tallies, lines) == reference(records, lambda t: True)


def test_a_line_holds_the_sdks_structured_event_field_for_field() -> None:
    stamped = [
        replace(r, topic="t", partition=0, offset=i, timestamp_ms=1_767_225_600_000)
        for i, r in enumerate([*golden(), *golden()])
    ]
    checker = BatchChecker("t", lambda t: True, lines=True)
    lines = checker.check([RecordMessage(r) for r in stamped]).lines.splitlines()
    assert checker.slow_checks == len(GOLDEN)  # the second half took the layouts
    for record, line in zip(stamped, lines, strict=True):
        written = json.loads(line)
        sdk = json.loads(JSONFormat().write(decode(record)))
        assert written["event"] == sdk
        assert list(written["event"]) == list(sdk)
        assert written["timestamp"] == "2026-01-01T00:00:00.000Z"
        assert record.value is not None and record.value in line  # data as Kafka held it


def test_items_and_dead_letters_count_as_record_by_record() -> None:
    records = [
        replace(base(key), topic="t", partition=key % 2, offset=key // 2, timestamp_ms=key)
        for key in range(40)
    ]
    checker = BatchChecker("t", lambda t: "PoweredOff" not in t, lines=False)
    checked = checker.check([RecordMessage(r) for r in records])
    assert [item.position for item in checked.items] == [
        (r.partition, r.offset) for r in records if CLASSES[1] not in r.cloudevent().type
    ]
    # the items read the messages in place (a ConsumedRecord): the same fields
    assert all(
        astuple(item.record) == astuple(r)
        for item, r in zip(
            checked.items,
            [r for r in records if CLASSES[1] not in r.cloudevent().type],
            strict=True,
        )
    )
    rejected = {checked.items[0].position, checked.items[5].position}
    checked.dead_lettered(rejected)

    expected: dict[int, PartitionTally] = {p: PartitionTally(p, 0) for p in (0, 1)}
    for record in records:
        assert record.partition is not None and record.offset is not None
        tally = expected[record.partition]
        tally.saw(record.offset, record.timestamp_ms)
        tally.next_offset = record.offset + 1
        view = record.cloudevent()
        if CLASSES[1] in view.type:
            tally.filter_out()
        elif (record.partition, record.offset) in rejected:
            tally.dead_letter()
        else:
            tally.wrote(record.offset, view.id)
    counted = {p: PartitionTally(p, 0) for p in (0, 1)}
    for partition, count in checked.counted.items():
        counted[partition].add(count)
    assert {p: t.to_json() for p, t in counted.items()} == {
        p: t.to_json() for p, t in expected.items()
    }


def test_the_layouts_kept_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import replay.batch

    monkeypatch.setattr(replay.batch, "MAX_LAYOUTS", 5)
    checker = BatchChecker("t", lambda t: True, lines=True)
    records = []
    for key in range(12):  # a subject of its own each: 12 layouts
        record = base(key)
        record = replace(
            record,
            headers=header_set(record, "ce_subject", f"s{key}".encode()),
            topic="t",
            partition=0,
            offset=key,
            timestamp_ms=key,
        )
        records.append(record)
    tallies, lines = batched(checker, [RecordMessage(r) for r in records])
    assert checker.layouts_kept() <= 5
    assert (tallies, lines) == reference(records, lambda t: True)


def test_a_time_of_the_sdks_but_not_rfc_3339_is_accepted_as_check_accepts_it() -> None:
    record = replace(base(1), topic="t", partition=0, offset=0, timestamp_ms=5)
    odd = replace(
        record, offset=1, headers=header_set(record, "ce_time", b"2026-01-01T00:00:00.1234567Z")
    )
    checker = BatchChecker("t", lambda t: True, lines=True)
    tallies, lines = batched(checker, [RecordMessage(record), RecordMessage(odd)])
    assert (tallies, lines) == reference([record, odd], lambda t: True)


def test_what_a_known_layout_reads_is_what_the_view_reads_and_makes_the_same_audit_record() -> None:
    from datetime import UTC, datetime

    from sinks.audit.record import audit_record

    _, messages = placed(every_case())
    checker = BatchChecker("vcenter.events", lambda t: True, lines=False)
    items = [item for start in range(0, len(messages), 7) for item in
             checker.check(messages[start : start + 7]).items]  # fmt: skip
    now = datetime(2026, 3, 1, tzinfo=UTC)
    read = [item for item in items if item.attributes is not None]
    assert len(read) > len(items) // 2  # most came by a known layout
    for item in read:
        fresh = CloudEventView(item.record)  # nothing read yet
        assert item.attributes == fresh.attributes
        assert item.data == fresh.data()
        known = audit_record(item, now, item.attributes, item.time, item.data)
        assert known == audit_record(ReplayItem(fresh), now)


def test_replay_into_audit_files_encodes_each_record_as_the_audit_sink_would(
    tmp_path: Path,
) -> None:
    """`AuditFilesTarget` encodes from what the check read, not from a record dict: the
    same bytes, for records of a known layout and for every variant."""
    from datetime import UTC, datetime

    from replay.targets.auditfiles import AuditFilesTarget
    from sinks.audit.record import audit_record, batch_tail, head_of
    from vcstream.settings.sinks import AuditSinkSettings

    target = AuditFilesTarget(AuditSinkSettings(files={"directory": str(tmp_path)}))
    _, messages = placed(every_case())
    checker = BatchChecker("vcenter.events", lambda t: True, lines=False)
    items = [item for start in range(0, len(messages), 7) for item in
             checker.check(messages[start : start + 7]).items]  # fmt: skip
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert sum(item.message is not None for item in items) > len(items) // 2
    for item in items:
        record = audit_record(ReplayItem(CloudEventView(item.record)), now)
        assert target.encode(item, now, batch_tail(now)) == (record["partition"], head_of(record))


def test_a_record_without_a_timestamp_is_encoded_alike_by_the_sink_and_the_replay(
    tmp_path: Path,
) -> None:
    """A message whose timestamp is absent (confluent-kafka: kind 0, -1) is stored with
    `timestamp` null by the record dict, the audit sink and a replay into audit files
    alike: the same bytes, whichever of them encodes it."""
    from datetime import UTC, datetime

    from replay.targets.auditfiles import AuditFilesTarget
    from schemas.cloudevent import LayoutCheck
    from schemas.record import ConsumedRecord
    from sinks.audit.encoding import long, string
    from sinks.audit.record import audit_record, batch_tail, head_of
    from sinks.audit.sink import AuditSink
    from sinks.base import SinkEvent
    from vcstream.settings.sinks import AuditSinkSettings

    settings = AuditSinkSettings(files={"directory": str(tmp_path)})
    target, sink = AuditFilesTarget(settings), AuditSink(settings)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    made = [replace(base(key), timestamp_ms=1_767_225_600_000 + key) for key in range(0, 12, 3)]
    records, messages = placed([(record, None) for record in made])  # one event class
    checker = BatchChecker("vcenter.events", lambda t: True, lines=False)
    learned = checker.check(messages[:1]).items  # the slow way learns the layout
    assert learned and learned[0].layout is None
    check = LayoutCheck().check
    check(CloudEventView(ConsumedRecord(messages[0])))
    fast = 0
    for record, message in zip(records[1:], messages[1:], strict=True):
        [stamped] = checker.check([message]).items
        assert stamped.layout is not None and stamped.time is not None
        unstamped = RecordMessage(replace(record, timestamp_ms=None))
        assert unstamped.timestamp() == (0, -1)
        expected = head_of(audit_record(SinkEvent(None, replace(record, timestamp_ms=None)), now))
        assert record.partition is not None and record.offset is not None
        null_timestamp = b"%b%b%b%b\x00" % (
            string("vcenter.events"),
            long(record.partition),
            long(record.offset),
            long(3),
        )
        assert expected[3].startswith(null_timestamp)
        # the replay's item, as its check reads a record of a known layout
        item = ReplayItem.read(
            unstamped, stamped.layout, stamped.id or "", stamped.time_text or "",
            stamped.time, stamped.data,
        )  # fmt: skip
        assert target.encode(item, now, batch_tail(now)) == (record.partition, expected)
        event = SinkEvent(None, ConsumedRecord(unstamped))
        event.layout = check(event.view)
        fast += event.layout is not None
        assert sink._head(event, now, batch_tail(now)) == expected
    assert fast == len(records) - 1  # the sink's encoder, not its record dict


def test_times_with_nine_fraction_digits_stay_on_the_known_layout() -> None:
    """Go writes RFC 3339 with up to nine digits (time.RFC3339Nano), which the stdlib
    does not parse: such records are still checked by their layout, not the slow way."""
    records = []
    for index in range(20):
        record = base(3 * index)  # one event class: one layout
        moment = b"2026-01-01T00:00:%02d.123456789Z" % index
        records.append(
            replace(
                record,
                headers=header_set(record, "ce_time", moment),
                topic="t",
                partition=0,
                offset=index,
                timestamp_ms=index,
            )
        )
    checker = BatchChecker("t", lambda t: True, lines=True)
    tallies, lines = batched(checker, [RecordMessage(r) for r in records])
    assert checker.slow_checks == 1
    assert (tallies, lines) == reference(records, lambda t: True)
