"""bench.veba_router's pieces that do not need VEBA's binary: the mount namespace that
gives the router a dummy in-cluster token without touching the machine, and the
CloudEvents receiver it delivers to."""

from __future__ import annotations

import http.client
import subprocess
from pathlib import Path

import pytest

from bench.veba_router import (
    BENCH_SUBJECT,
    TOKEN_DIR,
    EventReceiver,
    in_own_mount_namespace,
    router_binary,
)

TOKEN = Path("/var/run") / TOKEN_DIR / "token"


def read_token_outside() -> bytes | None:
    try:
        return TOKEN.read_bytes()
    except OSError:
        return None


def test_the_router_sees_a_token_the_machine_does_not() -> None:
    before = read_token_outside()
    inside = subprocess.run(
        in_own_mount_namespace(["cat", str(TOKEN)]), capture_output=True, check=False
    )
    if inside.returncode != 0 and b"Operation not permitted" in inside.stderr:
        pytest.skip(f"no mount namespace here: {inside.stderr.decode().strip()}")
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout == b"bench\n"
    assert read_token_outside() == before  # the tmpfs stayed in its namespace


def test_the_receiver_counts_bench_events_over_one_kept_alive_connection() -> None:
    receiver = EventReceiver()
    receiver.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
        sockets = set()
        for subject, time in [
            (BENCH_SUBJECT, "2026-01-02T03:04:05.123456789Z"),
            ("UserLoginSessionEvent", "2026-01-02T03:04:06Z"),
            (BENCH_SUBJECT, "2026-01-02T03:04:07.5Z"),
        ]:
            connection.request(
                "POST",
                "/",
                b"{}",
                {"ce-specversion": "1.0", "ce-subject": subject, "ce-time": time},
            )
            response = connection.getresponse()
            response.read()
            assert response.status == 202
            assert not response.will_close  # HTTP/1.0 would make the router connect per event
            sockets.add(id(connection.sock))
        assert len(sockets) == 1
        assert receiver.collect(2, timeout=10) == 2
        created = [at for _, at in receiver.seen]
        # bench events only, in order: one connection's requests are handled one after
        # another, so a counted login event would be the second one seen
        assert created == pytest.approx([1767323045.123456, 1767323047.5], abs=1e-6)
    finally:
        receiver.stop()


def test_a_missing_router_binary_is_named_with_the_release_it_must_be(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"v0\.8\.0 \(9de52bf\).*cmd/router"):
        router_binary(tmp_path / "router")
