"""ReadNextEvents with the SOAP response kept as bytes, for `schemas.vmodl_soap`.

pyVmomi offers no public hook for a response's raw XML: `SoapStubAdapter.InvokeMethod`
reads and deserialises in one go. So this sends the request the way InvokeMethod does,
through the same stub (its serialiser, connection pool, session cookie and vmodl
version: `SerializeRequest`, `GetConnection`/`ReturnConnection`/`DropConnections`,
`cookie`, `versionId`, `path`, `version`), keeps the body, and reads it with
`schemas.vmodl_soap.read_events`; what that declines, and every fault, goes to pyVmomi's
own `SoapResponseDeserializer` on the same bytes, so errors are pyVmomi's as before.

Those stub members are not a documented API: pyproject.toml pins pyvmomi to the
minor versions this was checked against, `supported()` refuses any other stub (the
collector then calls ReadNextEvents as usual), and tests/producer/test_collector.py
holds both ways equal on vcsim.
"""

from __future__ import annotations

import inspect
import io
import zlib
from functools import cache
from http.client import HTTPException
from http.cookies import SimpleCookie
from importlib.metadata import version
from typing import Any

from pyVmomi import SoapAdapter
from pyVmomi import vim as _vim

from schemas.vmodl_soap import read_events

vim: Any = _vim
# the pyVmomi releases whose SoapStubAdapter this mirrors (InvokeMethod, 9.1.x)
CHECKED_PYVMOMI = ("9.1.",)
_STUB_MEMBERS = ("SerializeRequest", "GetConnection", "ReturnConnection", "DropConnections")
_STUB_FIELDS = ("cookie", "versionId", "path", "version")


def supported(stub: Any) -> bool:
    """Whether `stub` is the SoapStubAdapter of a pyVmomi release this mirrors."""
    version = _pyvmomi_version()
    return (
        type(stub) is SoapAdapter.SoapStubAdapter
        and version.startswith(CHECKED_PYVMOMI)
        and all(callable(getattr(stub, name, None)) for name in _STUB_MEMBERS)
        and all(hasattr(stub, name) for name in _STUB_FIELDS)
    )


@cache
def _pyvmomi_version() -> str:
    return version("pyvmomi")


def decoded_body(body: bytes, content_encoding: str | None) -> bytes:
    """The body as pyVmomi's GzipReader reads it (no stub here asks for compression, but
    a server may compress anyway): gzip, zlib or raw deflate."""
    encoding = (content_encoding or "identity").lower()
    if encoding == "gzip":
        return zlib.decompress(body, zlib.MAX_WBITS + 16)
    if encoding == "deflate":
        zlib_header = (
            len(body) >= 2 and (body[0] & 0x0F) == 8 and (body[0] * 256 + body[1]) % 31 == 0
        )
        return zlib.decompress(body, zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
    return body


class RawEventReader:
    """Reads an EventHistoryCollector's next page, fast where `read_events` follows it."""

    def __init__(self, collector: Any) -> None:
        self._collector = collector
        self._stub = collector._stub
        # the method's type info, as `collector.ReadNextEvents` passes it to the stub
        self._info = inspect.getattr_static(type(collector), "ReadNextEvents").info
        # the request for a page size: the same bytes every time (same collector, count)
        self._requests: dict[int, bytes] = {}
        self.fast_pages = 0  # pages read without pyVmomi's objects
        self.slow_pages = 0

    def read(self, max_count: int, keep: Any = None) -> list[Any]:
        """Events as `schemas.vmodl_json.GoEvent`, or pyVmomi's events for a page the fast
        reader declines or `keep(events)` refuses (events it must see as objects)."""
        status, body = self._post(max_count)
        if status == 200:
            events = read_events(body, self._stub.version)
            if events is not None and (keep is None or keep(events)):
                self.fast_pages += 1
                return list(events)
        self.slow_pages += 1
        return list(self._deserialize(status, body) or [])

    def _post(self, max_count: int) -> tuple[int, bytes]:
        """SoapStubAdapter.InvokeMethod up to the response's body (9.1.1, SoapAdapter.py)."""
        stub = self._stub
        headers = {
            "Cookie": stub.cookie,
            "SOAPAction": stub.versionId,
            "Content-Type": f"text/xml; charset={SoapAdapter.XML_ENCODING}",
            "User-Agent": f"pyvmomi {_pyvmomi_version()} vcstream",
        }
        custom = getattr(stub, "_customHeaders", None)
        if custom:
            headers.update(custom)
        if getattr(stub, "_acceptCompressedResponses", False):
            headers["Accept-Encoding"] = "gzip, deflate"
        request = self._requests.get(max_count)
        if request is None:
            request = stub.SerializeRequest(self._collector, self._info, [max_count])
            self._requests[max_count] = request
        for modifier in getattr(stub, "requestModifierList", []):
            request = modifier(request)
        conn = stub.GetConnection()
        try:
            conn.request("POST", stub.path, request, headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, HTTPException):
            conn.close()
            stub.DropConnections()
            raise
        cookie = response.getheader("Set-Cookie") or response.getheader("set-cookie")
        if cookie:
            # what InvokeMethod does with a new session cookie (never seen mid-session)
            stub.cookie = cookie
            session = SimpleCookie(cookie).get(SoapAdapter.COOKIE_NAME)
            if session:
                super(SoapAdapter.SoapStubAdapter, stub).SetSessionId(session.value)  # type: ignore[misc]
        if response.status not in (200, 500):
            conn.close()
            raise HTTPException(f"{response.status} {response.reason}")
        stub.ReturnConnection(conn)
        return response.status, decoded_body(body, response.getheader("Content-Encoding"))

    def _deserialize(self, status: int, body: bytes) -> Any:
        """pyVmomi's reading of the response, and its raise of a fault."""
        # a file, as InvokeMethod passes it: given bytes, pyVmomi parses without the final
        # flag and reads a truncated body as no result instead of raising
        result = SoapAdapter.SoapResponseDeserializer(self._stub).Deserialize(
            io.BytesIO(body), self._info.result
        )
        if status == 200:
            return result
        if isinstance(result, Exception):
            raise result
        raise HTTPException(f"{status}: a fault response without a fault")
