"""ReadNextEvents with the SOAP response kept as bytes, for `schemas.vmodl_soap`.

pyVmomi offers no public hook for a response's raw XML: `SoapStubAdapter.InvokeMethod`
reads and deserialises in one go. So this sends the request the way InvokeMethod does,
through the same stub (its serialiser, connection pool, session cookie and vmodl
version: `SerializeRequest`, `GetConnection`/`ReturnConnection`/`DropConnections`,
`cookie`, `versionId`, `path`, `version`, `host`) over the pooled connection's socket
(`producer.http11`: http.client cost more than the rest of an empty page's read), keeps
the body, and reads it with
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
from pyVmomi import vmodl as _vmodl

from producer import http11
from schemas.vmodl_doorbell import DoorbellUpdate, LatestEvent, read_doorbell
from schemas.vmodl_soap import Declined, read_events

vim: Any = _vim
vmodl: Any = _vmodl
# the pyVmomi releases whose SoapStubAdapter this mirrors (InvokeMethod, 9.1.x)
CHECKED_PYVMOMI = ("9.1.",)
_STUB_MEMBERS = ("SerializeRequest", "GetConnection", "ReturnConnection", "DropConnections")
_STUB_FIELDS = ("cookie", "versionId", "path", "version", "host")


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
        # the request for (page size, session cookie): the same bytes every time
        self._requests: dict[tuple[int, str], bytes] = {}
        self.fast_pages = 0  # pages read without pyVmomi's objects
        self.slow_pages = 0

    def read(self, max_count: int, keep: Any = None) -> list[Any]:
        """Events as `schemas.vmodl_json.GoEvent`, or pyVmomi's events for a page the fast
        reader declines or `keep(events)` refuses (events it must see as objects)."""
        status, body = post(self._stub, self._request(max_count))
        if status == 200:
            events = read_events(body, self._stub.version)
            if events is not None and (keep is None or keep(events)):
                self.fast_pages += 1
                return list(events)
        self.slow_pages += 1
        return list(deserialize(self._stub, self._info, status, body) or [])

    def _request(self, max_count: int) -> bytes:
        """The same bytes for a page size until the session cookie changes (or a request
        modifier changes them)."""
        stub = self._stub
        key = (max_count, stub.cookie)
        request = self._requests.get(key)
        if request is None:
            request = request_bytes(
                stub, stub.SerializeRequest(self._collector, self._info, [max_count])
            )
            if not getattr(stub, "requestModifierList", []):
                # a new cookie replaces the old session's requests
                self._requests = {k: v for k, v in self._requests.items() if k[1] == stub.cookie}
                self._requests[key] = request
        return request


class RawDoorbell:
    """WaitForUpdatesEx on a PropertyCollector watching `latestPage`, read without
    pyVmomi's objects: a ring decoded by pyVmomi cost ~1 ms of CPU (vcsim sends a change
    per event, each with the page), for the two things the worker uses, the new version
    and the newest events' keys and times. `read_doorbell` reads those; a response it
    declines, and every fault, goes to pyVmomi's deserialiser on the same bytes."""

    def __init__(self, property_collector: Any) -> None:
        self._property_collector = property_collector
        self._stub = property_collector._stub
        self._info = inspect.getattr_static(type(property_collector), "WaitForUpdatesEx").info
        # the request's body around its version, per wait: pyVmomi's serialiser cost
        # ~0.1 ms a ring, for a body in which only the version changes
        self._templates: dict[int, tuple[bytes, bytes] | None] = {}
        self.fast_rings = 0
        self.slow_rings = 0

    def wait(self, version: str, max_wait_seconds: int) -> DoorbellUpdate | None:
        """What `WaitForUpdatesEx(version, WaitOptions(maxWaitSeconds=...))` reports, or
        None after a quiet wait."""
        stub = self._stub
        status, body = post(stub, request_bytes(stub, self._body(version, max_wait_seconds)))
        if status == 200:
            try:
                update = read_doorbell(body)
            except Declined:
                pass
            else:
                self.fast_rings += 1
                return update
        self.slow_rings += 1
        return doorbell_update(deserialize(stub, self._info, status, body))

    def _body(self, version: str, max_wait_seconds: int) -> bytes:
        """pyVmomi's serialisation of the call, from a template where it has one."""
        if max_wait_seconds not in self._templates:
            marked = self._serialize(_VERSION_MARK, max_wait_seconds)
            before, mark, after = marked.partition(f">{_VERSION_MARK}<".encode())
            # the mark once, where the version goes; else every call is serialised
            self._templates[max_wait_seconds] = (
                (before + b">", b"<" + after)
                if mark and _VERSION_MARK.encode() not in after
                else None
            )
        template = self._templates[max_wait_seconds]
        if template is None:
            return self._serialize(version, max_wait_seconds)
        escaped: str = SoapAdapter.XmlEscape(version)  # as pyVmomi writes a string
        return template[0] + escaped.encode() + template[1]

    def _serialize(self, version: str, max_wait_seconds: int) -> bytes:
        options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=max_wait_seconds)
        body: bytes = self._stub.SerializeRequest(
            self._property_collector, self._info, [version, options]
        )
        return body


# stands for the version in a WaitForUpdatesEx request's template (no XML escapes in it)
_VERSION_MARK = "vcstream-version-mark-7f3c"


def doorbell_update(update: Any) -> DoorbellUpdate | None:
    """pyVmomi's UpdateSet (or None) in `read_doorbell`'s form."""
    if update is None:
        return None
    page: list[Any] = []
    for filter_update in update.filterSet or []:
        for object_update in filter_update.objectSet or []:
            for change in object_update.changeSet or []:
                # a value that is no event array (never seen) is no news either
                if change.name == "latestPage" and isinstance(change.val, list) and change.val:
                    page = list(change.val)
    return DoorbellUpdate(
        update.version, [LatestEvent(int(event.key), event.createdTime) for event in page]
    )


def request_bytes(stub: Any, body: bytes) -> bytes:
    """The whole request for a serialised call, as InvokeMethod sends it (9.1.1)."""
    headers = {
        "Cookie": stub.cookie,
        "SOAPAction": stub.versionId,
        "Content-Type": f"text/xml; charset={SoapAdapter.XML_ENCODING}",
        "User-Agent": f"pyvmomi {_pyvmomi_version()} vcstream",
        # http.client's own default when a caller names none
        "Accept-Encoding": "identity",
    }
    custom = getattr(stub, "_customHeaders", None)
    if custom:
        headers.update(custom)
    if getattr(stub, "_acceptCompressedResponses", False):
        headers["Accept-Encoding"] = "gzip, deflate"
    for modifier in getattr(stub, "requestModifierList", []):
        body = modifier(body)
    return http11.request_bytes("POST", stub.path, stub.host, headers, body)


def post(stub: Any, request: bytes) -> tuple[int, bytes]:
    """SoapStubAdapter.InvokeMethod up to the response's body (9.1.1, SoapAdapter.py),
    over the stub's pooled connection with `http11`."""
    conn = stub.GetConnection()
    try:
        if conn.sock is None:  # http.client connects on first use as well
            conn.connect()
        response = http11.exchange(conn.sock, request)
    except (OSError, HTTPException):
        conn.close()
        stub.DropConnections()
        raise
    cookie = response.header("Set-Cookie")
    if cookie:
        # what InvokeMethod does with a new session cookie (never seen mid-session)
        stub.cookie = cookie
        session = SimpleCookie(cookie).get(SoapAdapter.COOKIE_NAME)
        if session:
            super(SoapAdapter.SoapStubAdapter, stub).SetSessionId(session.value)
    if response.status not in (200, 500):
        conn.close()
        raise HTTPException(f"{response.status} {response.reason}")
    if response.keep_alive:
        stub.ReturnConnection(conn)
    else:
        conn.close()
    return response.status, decoded_body(response.body, response.header("Content-Encoding"))


def deserialize(stub: Any, info: Any, status: int, body: bytes) -> Any:
    """pyVmomi's reading of the response, and its raise of a fault."""
    # a file, as InvokeMethod passes it: given bytes, pyVmomi parses without the final
    # flag and reads a truncated body as no result instead of raising
    result = SoapAdapter.SoapResponseDeserializer(stub).Deserialize(io.BytesIO(body), info.result)
    if status == 200:
        return result
    if isinstance(result, Exception):
        raise result
    raise HTTPException(f"{status}: a fault response without a fault")
