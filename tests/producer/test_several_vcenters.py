"""Several vCenters in one producer: own checkpoints, and one failing stops no other."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import schemas
from devenv import LocalKafka
from devenv.activity import VcsimClient
from producer.checkpoint import Checkpoint
from tests.producer.conftest import (
    Topics,
    event_key,
    read_topic,
    read_topic_if_ready,
    vcenter_entry,
    write_config,
)
from tests.role_process import wait_for

pytestmark = pytest.mark.integration


def test_two_vcsims_complete_with_separate_checkpoints_and_survive_one_dying(
    kafka: LocalKafka, vcsim_factory, topics: Topics, tmp_path: Path, producer_process
) -> None:
    first, second = vcsim_factory(), vcsim_factory()
    config = write_config(
        tmp_path / "c.yaml",
        kafka.bootstrap_servers,
        topics,
        vcenter_entry(first, "a") + vcenter_entry(second, "b"),
    )
    producer = producer_process(config)
    clients = {"a": VcsimClient(first), "b": VcsimClient(second)}
    clients["a"].post_eventex(15, "com.example.a")
    clients["b"].post_eventex(25, "com.example.b")

    def per_source() -> Counter[str]:
        return Counter(
            schemas.decode(r).get_source()
            for r in read_topic_if_ready(kafka.bootstrap_servers, topics.events)
        )

    wait_for(
        lambda: (
            per_source()[first.url] >= clients["a"].newest_key()
            and per_source()[second.url] >= clients["b"].newest_key()
        ),
        60,
        "both vCenters' events",
    )
    # vcsim reports one fixed instance UUID for every simulator: the producer keeps the
    # two positions apart under <uuid>/<name>
    uuid = clients["a"].content.about.instanceUuid
    checkpoints = {
        r.key: Checkpoint.decode(r.value or b"")
        for r in read_topic(kafka.bootstrap_servers, topics.checkpoints)
    }
    assert set(checkpoints) == {f"{uuid}/a".encode(), f"{uuid}/b".encode()}
    assert {c.source for c in checkpoints.values()} == {first.url, second.url}

    # one vCenter dies; the other keeps streaming and /healthz names the dead one
    first.kill()
    clients["b"].post_eventex(10, "com.example.b.after")
    newest_b = clients["b"].newest_key()
    wait_for(lambda: per_source()[second.url] >= newest_b, 60, "b's events after a died")
    status, body = producer.get("/healthz")
    assert status == 503
    assert '"vcenter:a": "' in body and '"vcenter:b": "ok"' in body
    assert producer.terminate() == 0

    records = read_topic(kafka.bootstrap_servers, topics.events)
    seen = Counter((schemas.decode(r).get_source(), event_key(r)) for r in records)
    assert [n for n in seen.values() if n > 1] == []  # nothing twice
    for sim, newest in ((first, None), (second, newest_b)):
        keys = sorted(key for source, key in seen if source == sim.url)
        assert keys == list(range(1, len(keys) + 1))  # nothing lost
        if newest is not None:
            assert keys[-1] >= newest
