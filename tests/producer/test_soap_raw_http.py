"""RawEventReader against a real HTTP server on 127.0.0.1 that answers what a sick
vCenter might: the errors are pyVmomi's own (SoapStubAdapter.InvokeMethod's)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.client import HTTPException
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.parsers.expat import ExpatError

import pytest
from pyVmomi import SoapAdapter, VmomiSupport, vim, vmodl

from bench.decode import NEWEST, read_next_events_response
from producer import soap_raw
from producer.soap_raw import RawDoorbell, RawEventReader
from schemas import vmodl_doorbell, vmodl_soap
from schemas.vmodl_doorbell import LatestEvent

PC: Any = vmodl.query.PropertyCollector
EVENT_ARRAY: Any = VmomiSupport.GetVmodlType("vim.event.Event[]")
UPDATE_SET: Any = VmomiSupport.GetVmodlType("vmodl.query.PropertyCollector.UpdateSet")

EVENT = vim.event.GeneralUserEvent(
    key=4, chainId=4, createdTime=datetime(2026, 1, 1, tzinfo=UTC), userName="u", message="hello"
)

NOT_AUTHENTICATED = (
    b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope'
    b' xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
    b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
    b"<soapenv:Fault><faultcode>ServerFaultCode</faultcode>"
    b"<faultstring>The session is not authenticated.</faultstring><detail>"
    b'<NotAuthenticatedFault xmlns="urn:vim25" xsi:type="NotAuthenticated">'
    b"<privilegeId>System.View</privilegeId></NotAuthenticatedFault>"
    b"</detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
)


class Server:
    """Answers every POST with `status`, `body` and `headers`, and keeps the requests."""

    def __init__(self, protocol: str = "HTTP/1.0") -> None:
        self.status = 200
        self.body = b""
        self.headers: dict[str, str] = {}
        self.requests: list[dict[str, str]] = []
        self.last_request = b""  # the last request's body
        self.clients: list[tuple[str, int]] = []  # each request's client address
        self.keeps_alive = protocol == "HTTP/1.1"
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = protocol  # HTTP/1.1 keeps the connection

            def do_POST(self) -> None:
                server.last_request = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append(dict(self.headers))
                server.clients.append(self.client_address)
                self.send_response(server.status)
                for name, value in server.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def stub(self) -> Any:
        return SoapAdapter.SoapStubAdapter(
            host="127.0.0.1", port=-self.http.server_address[1], version="vim.version.v9_1_1_0"
        )  # a negative port: plain HTTP (pyVmomi's convention)

    def reader(self) -> RawEventReader:
        return RawEventReader(vim.event.EventHistoryCollector("session[1]1", self.stub()))

    def doorbell(self) -> RawDoorbell:
        return RawDoorbell(PC("session[1]2", self.stub()))


@pytest.fixture(params=["HTTP/1.0", "HTTP/1.1"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    made = Server(request.param)
    yield made
    made.http.shutdown()
    made.http.server_close()


def test_a_page_is_read_fast_and_sent_as_pyvmomi_sends_it(server: Server) -> None:
    server.body = read_next_events_response([EVENT])
    reader = server.reader()
    [event] = reader.read(10)
    assert (event.class_name, event.key, event.data["Message"]) == ("GeneralUserEvent", 4, "hello")
    sent = server.requests[0]
    assert sent["SOAPAction"].startswith('"urn:vim25/')
    assert sent["Accept-Encoding"] == "gzip, deflate"  # the stub accepts compression


def test_a_gzipped_page_reads_the_same(server: Server) -> None:
    server.body = gzip.compress(read_next_events_response([EVENT]))
    server.headers = {"Content-Encoding": "gzip"}
    [event] = server.reader().read(10)
    assert event.key == 4


def test_an_http_error_status_raises_as_pyvmomi_does(server: Server) -> None:
    server.status = 503
    with pytest.raises(HTTPException, match="503"):
        server.reader().read(10)


def test_a_body_that_is_not_xml_raises_pyvmomis_error(server: Server) -> None:
    server.body = b"<not xml"
    reader = server.reader()
    with pytest.raises(ExpatError):
        reader.read(10)
    assert reader.slow_pages == 1


def test_a_fault_raises_the_fault(server: Server) -> None:
    server.status = 500
    server.body = NOT_AUTHENTICATED
    with pytest.raises(vim.fault.NotAuthenticated, match="not authenticated"):
        server.reader().read(10)


def test_a_fault_status_without_a_fault_raises(server: Server) -> None:
    server.status = 500
    server.body = read_next_events_response([EVENT])
    with pytest.raises(HTTPException, match="without a fault"):
        server.reader().read(10)


def test_a_truncated_page_raises_and_is_never_an_empty_page(server: Server) -> None:
    # the collector has moved past these events: returning nothing would lose them
    whole = read_next_events_response([EVENT])
    server.body = whole[: len(whole) // 2]
    with pytest.raises(ExpatError):
        server.reader().read(10)


def test_a_kept_alive_connection_carries_the_next_page_and_a_closed_one_is_replaced(
    server: Server,
) -> None:
    server.body = read_next_events_response([EVENT])
    reader = server.reader()
    for _ in range(3):
        assert [event.key for event in reader.read(10)] == [4]
    assert len(set(server.clients)) == (1 if server.keeps_alive else 3)


def test_the_request_carries_the_session_cookie_and_a_new_cookie_is_sent_next(
    server: Server,
) -> None:
    server.body = read_next_events_response([EVENT])
    reader = server.reader()
    reader._stub.cookie = 'vmware_soap_session="one"'
    reader.read(10)
    server.headers = {"Set-Cookie": 'vmware_soap_session="two"; Path=/'}
    reader.read(10)
    reader.read(10)
    cookies = [sent["Cookie"] for sent in server.requests]
    assert cookies == ['vmware_soap_session="one"'] * 2 + ['vmware_soap_session="two"; Path=/']
    assert {sent["Content-Type"] for sent in server.requests} == {"text/xml; charset=UTF-8"}


def wait_response(update: Any) -> bytes:
    """`update` (an UpdateSet, or None) as vCenter answers WaitForUpdatesEx."""
    body = ""
    if update is not None:
        info = VmomiSupport.Object(name="returnval", type=UPDATE_SET, version=NEWEST, flags=0)
        body = SoapAdapter.SerializeToStr(
            update, info=info, version=NEWEST, nsMap={"urn:vim25": ""}
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        f'<WaitForUpdatesExResponse xmlns="urn:vim25">{body}</WaitForUpdatesExResponse>'
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


def update_of(*changes: tuple[str, Any], version: str = "7") -> Any:
    """An UpdateSet with one object update per change (as vcsim sends queued changes)."""
    collector = vim.event.EventHistoryCollector("session[1]1")
    return PC.UpdateSet(
        version=version,
        filterSet=[
            PC.FilterUpdate(
                filter=PC.Filter("session[1]3"),
                objectSet=[
                    PC.ObjectUpdate(
                        kind="modify",
                        obj=collector,
                        changeSet=[PC.Change(name=name, op="assign", val=typed(val))],
                    )
                    for name, val in changes
                ],
            )
        ],
    )


def typed(val: Any) -> Any:
    return EVENT_ARRAY(val) if isinstance(val, list) else val


def event(key: int, second: int) -> Any:
    return vim.event.GeneralUserEvent(
        key=key, chainId=key, createdTime=datetime(2026, 1, 1, 0, 0, second, 123456, tzinfo=UTC),
        userName="u", message="hello",
    )  # fmt: skip


def pyvmomis(server: Server) -> Any:
    doorbell = server.doorbell()
    return soap_raw.doorbell_update(
        soap_raw.deserialize(doorbell._stub, doorbell._info, 200, server.body)
    )


def test_a_ring_is_read_fast_the_last_latest_page_change_counting(server: Server) -> None:
    server.body = wait_response(
        update_of(
            ("latestPage", [event(5, 1)]),
            ("latestPage", [event(6, 2), event(7, 3)]),
            ("latestPage", []),  # an empty change leaves the page as it was
            ("description", None),
        )
    )
    doorbell = server.doorbell()
    update = doorbell.wait("6", 1)
    assert update is not None and update.version == "7"
    assert update.latest_page == [
        LatestEvent(6, datetime(2026, 1, 1, 0, 0, 2, 123456, tzinfo=UTC)),
        LatestEvent(7, datetime(2026, 1, 1, 0, 0, 3, 123456, tzinfo=UTC)),
    ]
    assert update == pyvmomis(server)
    assert (doorbell.fast_rings, doorbell.slow_rings) == (1, 0)
    assert b">6</version>" in server.last_request  # the version asked for


def test_a_quiet_wait_and_an_update_without_changes(server: Server) -> None:
    server.body = wait_response(None)
    assert server.doorbell().wait("6", 1) is None
    server.body = wait_response(PC.UpdateSet(version="8"))
    update = server.doorbell().wait("7", 1)
    assert update == vmodl_doorbell.DoorbellUpdate("8", []) == pyvmomis(server)


def test_a_ring_the_fast_reader_declines_is_read_by_pyvmomi(server: Server) -> None:
    # a change value that is no event array: pyVmomi reads it, the page stays empty
    server.body = wait_response(update_of(("latestPage", "not events")))
    doorbell = server.doorbell()
    update = doorbell.wait("6", 1)
    assert update == vmodl_doorbell.DoorbellUpdate("7", [])
    assert (doorbell.fast_rings, doorbell.slow_rings) == (0, 1)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (read_next_events_response([EVENT]), "no WaitForUpdatesExResponse"),
        (wait_response(update_of(("latestPage", [EVENT]))).replace(b"<key>4</key>", b""), "key"),
        (
            wait_response(update_of(("latestPage", [EVENT]))).replace(b"<key>4<", b"<key>x<"),
            "no integer",
        ),
        (
            wait_response(update_of(("latestPage", [EVENT]))).replace(b"2026-01-01T", b"soon"),
            "createdTime",
        ),
        (
            wait_response(update_of(("latestPage", [EVENT]))).replace(b"<version>7</version>", b""),
            "without a version",
        ),
        (b"<not xml", "unclosed token"),
    ],
)
def test_what_read_doorbell_does_not_follow_is_declined(body: bytes, problem: str) -> None:
    with pytest.raises(vmodl_soap.Declined, match=problem):
        vmodl_doorbell.read_doorbell(body)


def test_a_doorbell_fault_raises_the_fault_and_bad_xml_pyvmomis_error(server: Server) -> None:
    server.status = 500
    server.body = NOT_AUTHENTICATED
    with pytest.raises(vim.fault.NotAuthenticated, match="not authenticated"):
        server.doorbell().wait("6", 1)
    server.status = 200
    server.body = b"<not xml"
    with pytest.raises(ExpatError):
        server.doorbell().wait("6", 1)


@pytest.mark.parametrize("version", ["", "-", "1_2", "a&b<c>d", "vcstream-version-mark-7f3c"])
def test_a_ring_request_is_pyvmomis_serialisation_byte_for_byte(
    server: Server, version: str
) -> None:
    doorbell = server.doorbell()
    options = PC.WaitOptions(maxWaitSeconds=3)
    expected = doorbell._stub.SerializeRequest(
        doorbell._property_collector, doorbell._info, [version, options]
    )
    doorbell._body("warm", 3)  # the template is made
    assert doorbell._body(version, 3) == expected
