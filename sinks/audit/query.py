"""`vcstream audit query`: stored events matching time, type, entity and vCenter filters.

- `since`/`until`: the event's time (inclusive, exclusive);
- `type`: a glob on the CloudEvent type (`*VmPowered*`) or the exact type;
- `entity`: the moref (`vm-42`), `<Type>:<moref>`, or the entity's name;
- `vcenter`: the vCenter's instance UUID, its SDK URL, or its host name.
"""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import orjson
from psycopg import sql

from sinks.audit.file_layout import read_file
from sinks.audit.files import AuditFiles
from sinks.audit.postgres import AuditTable
from sinks.audit.record import AuditRecord, event_json


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    type: str | None = None
    entity: str | None = None
    vcenter: str | None = None

    def matches(self, record: AuditRecord) -> bool:
        time = record["time"].astimezone(UTC)
        if self.since is not None and time < self.since:
            return False
        if self.until is not None and time >= self.until:
            return False
        if self.type is not None and not fnmatch.fnmatchcase(record["type"], self.type):
            return False
        if self.entity is not None and self.entity not in _entity_names(record):
            return False
        return self.vcenter is None or self.vcenter in _vcenter_names(record)

    def dates(self) -> tuple[str, str]:
        """The range of `date=` folders that can hold matches."""
        low = self.since.astimezone(UTC).date().isoformat() if self.since else "0000-00-00"
        high = self.until.astimezone(UTC).date().isoformat() if self.until else "9999-99-99"
        return low, high


def _entity_names(record: AuditRecord) -> set[str]:
    entity = record.get("entity") or ""
    names = {entity, entity.partition(":")[2]}
    if record.get("entityName"):
        names.add(record["entityName"])
    return names - {""}


def _vcenter_names(record: AuditRecord) -> set[str]:
    host = urlsplit(record["source"]).hostname or ""
    return {record["vcenterUuid"], record["source"], host} - {""}


def query_files(store: AuditFiles, query: AuditQuery) -> Iterator[AuditRecord]:
    low, high = query.dates()
    for audit_file in store.files():
        date = audit_file.path.parent.parent.name.removeprefix("date=")
        if not low <= date <= high:
            continue
        yield from (r for r in read_file(audit_file.path) if query.matches(r))


async def query_table(table: AuditTable, query: AuditQuery) -> AsyncIterator[AuditRecord]:
    clauses: list[sql.Composable] = []
    params: list[object] = []
    if query.since is not None:
        clauses.append(sql.SQL("time >= %s"))
        params.append(query.since)
    if query.until is not None:
        clauses.append(sql.SQL("time < %s"))
        params.append(query.until)
    if query.type is not None:
        clauses.append(sql.SQL("type LIKE %s"))
        params.append(_glob_to_like(query.type))
    if query.entity is not None:
        clauses.append(sql.SQL("(entity = %s OR entity LIKE %s OR entity_name = %s)"))
        params += [query.entity, "%:" + _escape_like(query.entity), query.entity]
    if query.vcenter is not None:
        clauses.append(sql.SQL("(vcenter_uuid = %s OR source = %s OR source LIKE %s)"))
        params += [query.vcenter, query.vcenter, f"%://{_escape_like(query.vcenter)}%"]
    where = sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("TRUE")
    order = sql.SQL('time, topic, partition, "offset"')
    async for record in table.rows(where, params, order):
        if query.matches(record):  # the SQL narrows; the same rule as for files decides
            yield record


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _glob_to_like(glob: str) -> str:
    return _escape_like(glob).replace("*", "%").replace("?", "_")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_json_line(record: AuditRecord) -> bytes:
    """One stored record as the JSON line replay writes: where it was read, then the
    event in structured mode, its data the value's bytes as Kafka held them."""
    timestamp = record.get("timestamp")
    where = {
        "topic": record["topic"],
        "partition": record["partition"],
        "offset": record["offset"],
        "timestamp": None
        if timestamp is None
        else _iso(datetime.fromtimestamp(timestamp / 1000, UTC)),
        "key": None
        if record.get("key") is None
        else bytes(record["key"]).decode("utf-8", errors="replace"),
        "hashVersion": record.get("hashVersion") or 1,
    }
    return orjson.dumps(where)[:-1] + b',"event":' + event_json(record) + b"}\n"
