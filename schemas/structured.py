"""A binary-mode record in the CloudEvents JSON format (structured mode), built from the
record's own bytes: attributes from the `ce_*` headers as written, `data` the value as
Kafka holds it, spliced in unparsed.

For writers that only copy events out (replay into files): the SDK would parse the data
and serialise it again, the largest cost of such a copy, and could change its spelling.
Only for a record `schemas.decode` accepted; the result reads back field for field as
the SDK's own structured form of the decoded event (tests hold it to that).
"""

from __future__ import annotations

import orjson

from schemas.record import KafkaRecord


def structured_json(record: KafkaRecord) -> bytes:
    """`{"<attribute>": "<header text>", ..., "data": <value>}`, attributes in header
    order (as the SDK writes them), a repeated header's last value winning."""
    attributes: dict[str, str] = {}
    for name, raw in record.headers:
        lowered = name.lower()
        if lowered.startswith("ce_"):
            attributes[lowered[3:]] = raw.decode()
        elif lowered == "content-type":
            attributes["datacontenttype"] = raw.decode()
    head = orjson.dumps(attributes)
    if not record.value:
        return head
    return head[:-1] + b',"data":' + record.value + b"}"
