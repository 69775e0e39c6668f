"""Replay never disturbs a live consumer group, and commits only under --group."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from devenv import LocalKafka
from replay.session import ReplayRequest, run_replay
from replay.spec import ReplaySpec
from tests.replay.helpers import committed, fill_topic, settings_for

pytestmark = pytest.mark.integration


class LiveGroupMember(threading.Thread):
    """A subscribed consumer that reads everything, commits, and keeps polling."""

    def __init__(self, kafka: LocalKafka, topic: str, group: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self.rebalances = 0
        self.revocations = 0
        self.consumed = 0
        self.halt = threading.Event()

        def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            self.rebalances += 1

        def on_revoke(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            self.revocations += 1

        self.consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)

    def run(self) -> None:
        while not self.halt.is_set():
            message = self.consumer.poll(0.2)
            if message is not None and not message.error():
                self.consumed += 1
                self.consumer.commit(message=message, asynchronous=False)
        self.consumer.close()


def test_replay_leaves_a_live_groups_offsets_and_membership_alone(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("live")
    fill_topic(kafka, topic, 60, partitions=3)
    group = f"live-sink-{topic}"
    member = LiveGroupMember(kafka, topic, group)
    member.start()
    deadline = time.monotonic() + 30
    while member.consumed < 60 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert member.consumed == 60
    before = committed(kafka, group, topic, [0, 1, 2])
    assert before == [20, 20, 20]

    outcome = run_replay(
        settings_for(kafka),
        ReplayRequest(
            ReplaySpec(topic, from_beginning=True),
            f"file:{tmp_path / 'out.jsonl'}",
            state_path=tmp_path / "state.json",
            progress_stream=io.StringIO(),
        ),
    )
    # Had the replay joined the group, it could not have been given a partition before
    # the live member gave its own up: the coordinator completes a rebalance only once
    # every member has rejoined, and librdkafka rejoins only after the application served
    # the revocation. The replay read all 60 records, so a join would have been counted.
    assert member.revocations == 0, "the replay joined the live group"
    member.halt.set()
    member.join(10)

    assert outcome.report["totals"]["written"] == 60
    assert committed(kafka, group, topic, [0, 1, 2]) == before
    assert member.rebalances == 1, "the live member was never rebalanced by the replay"


def test_replay_commits_under_its_own_group_only_when_asked(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("group")
    fill_topic(kafka, topic, 30, partitions=2)
    request = ReplayRequest(
        ReplaySpec(topic, from_beginning=True, count=10),
        "file:" + str(tmp_path / "out.jsonl"),
        group=f"auditor-{topic}",
        state_path=tmp_path / "state.json",
        progress_stream=io.StringIO(),
    )
    run_replay(settings_for(kafka), request)
    # without --group the throwaway group id never reaches the offsets topic
    run_replay(
        settings_for(kafka),
        ReplayRequest(
            ReplaySpec(topic, from_beginning=True),
            "file:" + str(tmp_path / "out2.jsonl"),
            state_path=tmp_path / "state2.json",
            progress_stream=io.StringIO(),
        ),
    )
    from confluent_kafka.admin import AdminClient

    assert committed(kafka, f"auditor-{topic}", topic, [0, 1]) == [10, 10]
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    groups = admin.list_consumer_groups(request_timeout=10).result()
    names = {g.group_id for g in groups.valid}
    assert not any(name.startswith("vcstream-replay-") for name in names)
