"""The raw ReadNextEvents body as pyVmomi's GzipReader would read it."""

from __future__ import annotations

import gzip
import zlib

import pytest

from producer.soap_raw import decoded_body

XML = b'<?xml version="1.0"?><Envelope>' + b"<returnval/>" * 50 + b"</Envelope>"


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (XML, None),
        (XML, "identity"),
        (gzip.compress(XML), "gzip"),
        (gzip.compress(XML), "GZIP"),
        (zlib.compress(XML), "deflate"),  # zlib-wrapped, as most servers send "deflate"
        (raw_deflate(XML), "deflate"),
    ],
    # gzip's header holds the time it ran: ids made from the bytes would differ between
    # two collections (pytest-xdist's workers refuse to start on that)
    ids=["plain", "identity", "gzip", "GZIP", "zlib-deflate", "raw-deflate"],
)
def test_bodies_read_back_whatever_the_encoding(body: bytes, encoding: str | None) -> None:
    assert decoded_body(body, encoding) == XML


def test_a_corrupt_compressed_body_raises() -> None:
    with pytest.raises(zlib.error):
        decoded_body(b"not gzip at all", "gzip")
