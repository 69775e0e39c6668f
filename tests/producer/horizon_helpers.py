"""Helpers for the Horizon producer tests: a config with Horizon servers, and what the
raw topic holds of one server."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import schemas
from devenv import LocalKafka
from devenv.horizon import HorizonStandIn
from tests.producer.conftest import Topics, read_topic_if_ready, write_config
from tests.role_process import wait_for


def horizon_entry(server: HorizonStandIn, name: str, password: str | None = None) -> str:
    return f"""
  - name: {name}
    url: {server.url}
    domain: {server.domain}
    username: {server.username}
    password: {password or server.password}
    pageSize: 20
    pollInterval: 200ms"""


def write_horizon_config(
    path: Path, kafka: LocalKafka, topics: Topics, horizon: str, vcenters: str = " []"
) -> Path:
    # write_config's `vcenters:` line is followed by the `horizon:` section
    return write_config(path, kafka.bootstrap_servers, topics, f"{vcenters}\nhorizon:{horizon}")


def one_server_config(
    tmp_path: Path, kafka: LocalKafka, topics: Topics, server: HorizonStandIn
) -> Path:
    """A config that reads `server` alone, named "cs"."""
    return write_horizon_config(tmp_path / "c.yaml", kafka, topics, horizon_entry(server, "cs"))


def emit_and_wait(
    kafka: LocalKafka, topics: Topics, server: HorizonStandIn, count: int, what: str
) -> None:
    """`server` emits `count` events; returns once every event it has is in the topic."""
    server.emit(count)
    wait_for(lambda: all_written(kafka, topics, server), 60, what)


def horizon_ids(kafka: LocalKafka, topics: Topics, server: HorizonStandIn) -> Counter[int]:
    """How often each of `server`'s event ids is in the raw topic."""
    found: Counter[int] = Counter()
    for record in read_topic_if_ready(kafka.bootstrap_servers, topics.events):
        event = schemas.decode(record)
        if event.get_source() == server.url:
            data: Any = event.get_data()
            found[int(data["id"])] += 1
    return found


def all_written(kafka: LocalKafka, topics: Topics, server: HorizonStandIn) -> bool:
    return set(server.event_ids()) <= set(horizon_ids(kafka, topics, server))


def exactly_once(kafka: LocalKafka, topics: Topics, server: HorizonStandIn) -> None:
    found = horizon_ids(kafka, topics, server)
    duplicated = {event_id: n for event_id, n in found.items() if n > 1}
    lost = set(server.event_ids()) - set(found)
    assert (len(duplicated), len(lost)) == (0, 0), (duplicated, sorted(lost)[:20])
