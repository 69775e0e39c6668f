"""The input topics' schema hands records to the agents as the bytes Kafka holds."""

from __future__ import annotations

import asyncio

import faust
from faust.types import TP
from faust.types.tuples import Message

from streams.app import RecordBytes


def message(key: bytes | None, value: bytes | None) -> Message:
    headers = [("ce_id", b"1")]
    return Message("t", 0, 7, 1.5, 0, headers, key, value, None, tp=TP("t", 0))


def test_a_record_decodes_to_its_own_key_value_and_headers_through_fausts_decode(tmp_path):
    # Faust's own decode of a topic's message (Schema.compile) goes through the hooks
    # RecordBytes overrides: an upgrade that stopped calling them fails here
    app = faust.App("record-bytes", datadir=str(tmp_path), autodiscover=False)
    for key, value in [(b"vc/vm-1", b'{"Key": 1}'), (None, b"{}"), (b"k", b"")]:
        sent = message(key, value)
        event = asyncio.run(RecordBytes().decode(app, sent, propagate=True))
        assert event.key is key and event.value is value
        assert event.message is sent
