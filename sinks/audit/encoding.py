"""Audit records in Avro binary, encoded here, and the object container file they go in.

fastavro's writer walks the schema for every record (a fifth of the sink's CPU time,
plus a dict copy per record); the audit schema is fixed, so its binary encoding is a
few lines: zig-zag varints for ints and longs, a length then the bytes for strings and
bytes, the branch index before a union's value, arrays as one counted block then 0
(Avro 1.11 specification, "Binary Encoding"). `encode_body` writes every field of
`schemas/audit_record.avsc` but the last (`hash`), in schema order: hash version 3 is
the SHA-256 of exactly those bytes, so a record is encoded once and hashed once.

`ContainerWriter` writes a standard Avro object container file (header, then blocks
of pre-encoded records followed by the sync marker; codecs null, deflate, snappy as
fastavro writes them), so fastavro's reader, `audit verify`/`query` and any Avro tool
read it. tests/sinks/test_audit_encoding.py holds both to fastavro, byte for byte.
"""

from __future__ import annotations

import functools
import json
import os
import zlib
from datetime import UTC, datetime
from typing import IO, Any

from cramjam import snappy

from schemas import avro

MAGIC = b"Obj\x01"
SYNC_SIZE = 16
CODECS = ("null", "deflate", "snappy")
BLOCK_BYTES = 256 * 1024  # a block is written out once this much is encoded
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _varint(zigzagged: int) -> bytes:
    out = bytearray()
    while zigzagged >= 0x80:
        out.append((zigzagged & 0x7F) | 0x80)
        zigzagged >>= 7
    out.append(zigzagged)
    return bytes(out)


_CACHED = 4096  # entries of each cache below (cleared when full)
# the encoding of every long below this, precomputed: lengths, partitions, counts
_SMALL = 8192
_LONGS = tuple(_varint(n << 1) for n in range(_SMALL))
# 14 bits of a larger varint at a time: two bytes, both marked "more follows"
_FOURTEEN = tuple(bytes(((n & 0x7F) | 0x80, (n >> 7) | 0x80)) for n in range(1 << 14))
_TAIL = tuple(_varint(n) for n in range(1 << 14))


# the varint of a long's bits above the lowest 28: for a timestamp they change every few
# minutes (micros) or days (millis), so a record's time costs two table lookups and a
# dict lookup, not a loop (bounded, cleared when full)
_HIGH: dict[int, bytes] = {}


def long(n: int) -> bytes:
    """An Avro int or long."""
    if 0 <= n < _SMALL:
        return _LONGS[n]
    zigzagged = (n << 1) ^ (n >> 63)
    if zigzagged < 0x4000:
        return _TAIL[zigzagged]
    low = _FOURTEEN[zigzagged & 0x3FFF]
    if zigzagged < 0x1000_0000:  # offsets: 14 bits more
        return low + _TAIL[zigzagged >> 14]
    high = zigzagged >> 28
    above = _HIGH.get(high)
    if above is None:
        if len(_HIGH) >= _CACHED:
            _HIGH.clear()
        above = _HIGH[high] = _varint(high)
    return low + _FOURTEEN[(zigzagged >> 14) & 0x3FFF] + above


def string(text: str) -> bytes:
    body = text.encode()
    size = len(body)
    return (_LONGS[size] if size < _SMALL else long(size)) + body


def raw(data: bytes) -> bytes:
    """Avro bytes."""
    size = len(data)
    return (_LONGS[size] if size < _SMALL else long(size)) + data


def micros(moment: datetime | int) -> int:
    """A timestamp-micros value, as fastavro converts a datetime (an int as it is)."""
    if isinstance(moment, int):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_NULL = b"\x00"  # a union's branch 0 (null); also an empty array's end
_SOME = b"\x02"  # branch 1
# for an encoder that joins a record's pieces itself (`record.AuditEncoder.encode`):
# the union branches, and the encoded length of every size below `len(LENGTHS)`
NULL, SOME, LENGTHS = _NULL, _SOME, _LONGS

# what repeats from record to record (topic, type, source, vCenter, the header names,
# the batch's recordedAt) is encoded once: bounded, cleared when full
_texts: dict[str, bytes] = {}
_names: dict[tuple[str, ...], bytes] = {}
_moments: dict[datetime, bytes] = {}


def cached_string(text: str) -> bytes:
    """`string`, kept for a text that repeats (a topic, a type, a source)."""
    found = _texts.get(text)
    if found is None:
        if len(_texts) >= _CACHED:
            _texts.clear()
        found = _texts[text] = string(text)
    return found


def _header_names(names: list[str]) -> bytes:
    key = tuple(names)
    found = _names.get(key)
    if found is None:
        if len(_names) >= _CACHED:
            _names.clear()
        encoded = long(len(names)) + b"".join([string(name) for name in names]) + _NULL
        found = _names[key] = encoded if names else _NULL
    return found


def moment(when: datetime | int) -> bytes:
    """A timestamp-micros field, encoded (cached: a batch's `recordedAt` repeats)."""
    if isinstance(when, int):
        return long(when)
    found = _moments.get(when)
    if found is None:
        if len(_moments) >= _CACHED:
            _moments.clear()
        found = _moments[when] = long(micros(when))
    return found


def encode_body(r: dict[str, Any]) -> bytes:
    """Every field of an audit record but `hash`, in Avro binary (schema order).

    TypeError for a record of another shape (a field missing or of the wrong type)."""
    try:
        return encode_record_head(r) + string(r["prevHash"])
    except (KeyError, AttributeError) as exc:
        raise TypeError(f"not an audit record: {exc!r}") from None


def encode_record_head(r: dict[str, Any]) -> bytes:
    """`encode_head` of a record dict: every field before `prevHash`."""
    try:
        return encode_head(
            r["topic"], r["partition"], r["offset"], r["hashVersion"], r["timestamp"],
            r["key"], encode_headers(r["headerNames"], r["headerValues"]), r["value"],
            r["id"], r["type"],
            r["source"], r["subject"], micros(r["time"]), r["vcenterUuid"], r["entity"],
            r["entityName"], r["event"], moment(r["recordedAt"]),
        )  # fmt: skip
    except (KeyError, AttributeError) as exc:
        raise TypeError(f"not an audit record: {exc!r}") from None


def encode_head(
    topic: str,
    partition: int,
    offset: int,
    hash_version: int,
    timestamp: int | None,
    key: bytes | None,
    headers: bytes,
    value: bytes | None,
    ident: str,
    type_: str,
    source: str,
    subject: str | None,
    time_micros: int,
    vcenter: str,
    entity: str | None,
    entity_name: str | None,
    event: str,
    recorded_at: bytes,
    lengths: tuple[bytes, ...] = _LONGS,
) -> bytes:
    """Every field up to `prevHash` (excluded), from the fields themselves: a caller that
    has them at hand (a replay) builds no record dict. `headers` (`encode_headers`) and
    `recorded_at` (`moment`: the same for a whole batch) are encoded already.

    The common record first: every length and small number from `_LONGS`, the repeating
    texts cached, few calls per field (each call was a measurable share of the sink); a
    length past the table (IndexError) takes the general path below."""
    identifier = ident.encode()
    try:
        parts = [
            _texts.get(topic) or cached_string(topic),
            long(partition),  # never an index: a negative one would count from the end
            long(offset),
            long(hash_version),
            _NULL if timestamp is None else _SOME + long(timestamp),
            _NULL if key is None else _SOME + lengths[len(key)] + key,
            headers,
            _NULL if value is None else _SOME + lengths[len(value)],
            b"" if value is None else value,
            lengths[len(identifier)],
            identifier,
        ]
    except IndexError:
        parts = [
            string(topic),
            long(partition),
            long(offset),
            long(hash_version),
            _NULL if timestamp is None else _SOME + long(timestamp),
            _NULL if key is None else _SOME + raw(key),
            headers,
            _NULL if value is None else _SOME + raw(value),
            string(ident),
        ]
    parts += (
        _texts.get(type_) or cached_string(type_),
        _texts.get(source) or cached_string(source),
        _NULL if subject is None else _SOME + (_texts.get(subject) or cached_string(subject)),
        long(time_micros),
        _texts.get(vcenter) or cached_string(vcenter),
        _NULL if entity is None else _SOME + string(entity),
        _NULL if entity_name is None else _SOME + string(entity_name),
        string(event),
        recorded_at,
    )
    return b"".join(parts)


def encode_head_parts(
    topic: str,
    partition: int,
    offset: int,
    hash_version: bytes,
    timestamp: int | None,
    key: bytes,
    headers: tuple[bytes, bytes, bytes, bytes, bytes],
    value: bytes,
    ident: bytes,
    described: bytes,
    time_micros: int,
    placed: bytes,
    entity_name: str | None,
    tail: bytes,
) -> bytes:
    """`encode_head` for a caller that encoded what repeats once (per header layout, per
    key, per batch: `record.AuditEncoder`), in the same field order: `hash_version`
    (`long`), `key` (the union, encoded), `headers` (the header arrays in five pieces,
    joined here: `headers_around` with the two values spliced in), `value` as it is,
    `ident` (the `id` field, encoded), `described` (`type`, `source` and `subject`
    encoded), `placed` (`vcenterUuid` and `entity` encoded), `tail` (`event` and
    `recordedAt` encoded). The same bytes as `encode_head` (tests/sinks/
    test_audit_encoding.py), at about half its cost: one join, one text looked up."""
    size = len(value)
    before, first, between, second, after = headers
    return b"".join(
        (
            _texts.get(topic) or cached_string(topic),
            long(partition),
            long(offset),
            hash_version,
            _NULL if timestamp is None else _SOME + long(timestamp),
            key,
            before,
            first,
            between,
            second,
            after,
            _SOME,
            _LONGS[size] if size < _SMALL else long(size),
            value,
            ident,
            described,
            long(time_micros),
            placed,
            _NULL if entity_name is None else _SOME + string(entity_name),
            tail,
        )
    )


def encode_optional(text: str | None) -> bytes:
    """An optional string (a union of null and string), encoded."""
    return _NULL if text is None else _SOME + string(text)


def encode_optional_bytes(data: bytes | None) -> bytes:
    """Optional bytes (a union of null and bytes), encoded."""
    return _NULL if data is None else _SOME + raw(data)


def encode_headers(
    names: list[str], values: list[bytes], lengths: tuple[bytes, ...] = _LONGS
) -> bytes:
    """The `headerNames` and `headerValues` arrays."""
    try:
        if not values:
            return _header_names(names) + _NULL
        parts = [_header_names(names), lengths[len(values)]]
        parts += [part for data in values for part in (lengths[len(data)], data)]
        parts.append(_NULL)
        return b"".join(parts)
    except IndexError:  # a value or a count past the table
        return _header_names(names) + _array([raw(data) for data in values])


def headers_around(
    names: list[str], values: list[bytes], first_at: int, second_at: int
) -> tuple[bytes, bytes, bytes]:
    """`encode_headers` cut around the values at two positions (first_at < second_at):
    what comes before the first, between the two, after the second. With each of the
    two as `raw(value)` in its place, it is `encode_headers` of the whole."""
    before = [_header_names(names), long(len(values)), *map(raw, values[:first_at])]
    between = map(raw, values[first_at + 1 : second_at])
    after = [*map(raw, values[second_at + 1 :]), _NULL]
    return b"".join(before), b"".join(between), b"".join(after)


def _array(items: list[bytes]) -> bytes:
    return long(len(items)) + b"".join(items) + _NULL if items else _NULL


def encode_hash(hash_hex: str) -> bytes:
    """The last field, appended to `encode_body` to make the whole record."""
    return string(hash_hex)


# -- the object container file ----------------------------------------------------------


def _header(schema_json: str, codec: str, sync: bytes) -> bytes:
    meta = {"avro.schema": schema_json.encode(), "avro.codec": codec.encode()}
    entries = [string(name) + raw(value) for name, value in meta.items()]
    return MAGIC + long(len(entries)) + b"".join(entries) + _NULL + sync


def _compress(codec: str, block: bytes) -> bytes:
    if codec == "snappy":  # raw snappy, then the CRC-32 of the uncompressed block
        crc = (zlib.crc32(block) & 0xFFFFFFFF).to_bytes(4, "big")
        return bytes(snappy.compress_raw(block)) + crc
    if codec == "deflate":  # raw deflate (RFC 1951), no zlib header
        packer = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        return packer.compress(block) + packer.flush()
    return block


def _read_long(stream: IO[bytes]) -> int:
    shift = result = 0
    while True:
        byte = stream.read(1)
        if not byte:
            raise ValueError("an Avro file ends inside its header")
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7


def read_header(stream: IO[bytes]) -> tuple[dict[str, bytes], bytes]:
    """(metadata, sync marker) of an object container file, from its start."""
    if stream.read(4) != MAGIC:
        raise ValueError("not an Avro object container file")
    meta: dict[str, bytes] = {}
    while count := _read_long(stream):
        if count < 0:  # a block given with its size in bytes
            count = -count
            _read_long(stream)
        for _ in range(count):
            name = stream.read(_read_long(stream)).decode()
            meta[name] = stream.read(_read_long(stream))
    sync = stream.read(SYNC_SIZE)
    if len(sync) != SYNC_SIZE:
        raise ValueError("an Avro file ends inside its header")
    return meta, sync


class ContainerWriter:
    """Encoded records into an Avro object container file, a block at a time.

    `add` keeps records in memory until `BLOCK_BYTES` are pending; `flush` writes them
    out as one block (so memory stays bounded by one block per open file)."""

    def __init__(
        self, stream: IO[bytes], codec: str, *, sync: bytes | None = None, header: bool = True
    ) -> None:
        if codec not in CODECS:
            raise ValueError(f"Avro codec {codec!r}: expected one of {', '.join(CODECS)}")
        self.stream = stream
        self.codec = codec
        self.sync = sync or os.urandom(SYNC_SIZE)
        # the pending records' bytes, in order: a record may come in several parts
        # (`files.AuditFiles.append_heads` adds its head and hash fields apart)
        self.parts: list[bytes] = []
        self.count = 0  # records pending
        self.pending = 0  # bytes encoded, not yet written (before compression)
        if header:
            stream.write(_header(_schema_json(), codec, self.sync))

    @classmethod
    def resume(cls, stream: IO[bytes]) -> ContainerWriter:
        """Append to an existing file (its header's codec and sync marker); the stream
        is read from its start and left at its end."""
        stream.seek(0)
        meta, sync = read_header(stream)
        stream.seek(0, os.SEEK_END)
        codec = meta.get("avro.codec", b"null").decode()
        return cls(stream, codec, sync=sync, header=False)

    def add(self, encoded: bytes) -> None:
        self.hold(encoded)
        if self.pending >= BLOCK_BYTES:
            self.flush()

    def hold(self, encoded: bytes) -> None:
        """`add` without writing a block out: the caller flushes (`files.AuditFiles`
        does once `BLOCK_BYTES` are pending, and notes the file's size then)."""
        self.parts.append(encoded)
        self.count += 1
        self.pending += len(encoded)

    def flush(self) -> None:
        """Write what is pending as one block (nothing if nothing is)."""
        if not self.count:
            return
        data = _compress(self.codec, b"".join(self.parts))
        self.stream.write(long(self.count) + long(len(data)) + data + self.sync)
        self.parts = []
        self.count = 0
        self.pending = 0


@functools.cache
def _schema_json() -> str:
    """The schema as written in the repository, compact (fastavro's parsed form carries
    keys of its own)."""
    text = (avro.SCHEMA_DIR / "audit_record.avsc").read_text()
    return json.dumps(json.loads(text), separators=(",", ":"))
