"""The roles against a broker that asks for a SASL login (SCRAM-SHA-256 over
SASL_PLAINTEXT), given only that listener: events made in vcsim go through the producer,
the streams worker and the audit sink, replay reads them back, and `clientProperties`
reach the worker's clients as they reach the sink's. With a wrong password, every role
exits 2 with an error naming `kafka.sasl.password`, instead of retrying."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from devenv import LocalKafka, LocalVcsim
from devenv.activity import VcsimClient
from devenv.pipeline import LocalPipeline
from devenv.process import REPO, wait_until
from sinks.audit.file_layout import read_file
from sinks.audit.files import AuditFiles
from sinks.audit.record import event_json
from vcstream.kafka import client_config
from vcstream.settings import Settings, load_settings

pytestmark = pytest.mark.integration

CLIENT_ID = "vcstream-sasl-test"  # a client property every role's clients must carry
ROLES = {
    "producer": ["produce"],
    "streams": ["streams", "worker"],
    "sink-audit": ["sink", "audit"],
}


def sasl_config(
    broker: LocalKafka,
    topic_name: Callable[[str], str],
    workdir: Path,
    vcsim: LocalVcsim | None = None,
) -> dict[str, Any]:
    assert broker.sasl is not None
    topics = ("events", "checkpoints", "alarmDefinitions", "alarms", "audit", "deadLetter")
    return {
        "kafka": {
            "bootstrapServers": broker.sasl_bootstrap_servers,
            "securityProtocol": "SASL_PLAINTEXT",
            "sasl": {
                "mechanism": broker.sasl.mechanism,
                "username": broker.sasl.username,
                "password": {"fromEnv": "KAFKA_PASSWORD"},
            },
            "clientProperties": {"client.id": CLIENT_ID},
        },
        "topics": {name: topic_name(name) for name in topics},
        "vcenters": []
        if vcsim is None
        else [
            {
                "name": "sim",
                "url": vcsim.url,
                "username": vcsim.username,
                "password": {"fromEnv": "VCSIM_PASSWORD"},
                "caFile": str(vcsim.ca_file) if vcsim.ca_file else None,
            }
        ],
        "producer": {
            "startAt": "earliest",
            "transactionalIdPrefix": f"sasl-{uuid.uuid4().hex[:8]}",
            "pollInterval": "1s",
            "transactionTimeout": "10s",
            "reconnect": {"initialDelay": "200ms", "maxDelay": "2s"},
        },
        "streams": {
            "appId": topic_name("app"),
            "dataDir": str(workdir / "streams-state"),
            "commitInterval": "500ms",
            "sessionTimeout": "6s",
        },
        # files close (and show) every 2 s, not the 10 min default
        "sinks": {
            "audit": {"files": {"directory": str(workdir / "audit"), "rotateInterval": "PT2S"}}
        },
        "metrics": {"host": "127.0.0.1"},
        "logging": {"level": "INFO"},
    }


def env_for(
    broker: LocalKafka, vcsim: LocalVcsim | None, password: str | None = None
) -> dict[str, str]:
    assert broker.sasl is not None
    env = {"KAFKA_PASSWORD": password or broker.sasl.password}
    if vcsim is not None:
        env["VCSIM_PASSWORD"] = vcsim.password
    return env


def event_keys(events: list[dict[str, Any]], type_id: str) -> list[int]:
    keys = []
    for event in events:
        data = event.get("data")
        if isinstance(data, dict) and data.get("EventTypeId") == type_id:
            keys.append(int(data["Key"]))
    return sorted(keys)


def audited(root: Path) -> list[dict[str, Any]]:
    return [json.loads(event_json(r)) for f in AuditFiles(root).files() for r in read_file(f.path)]


def group_client_ids(settings: Settings, group: str) -> set[str]:
    admin = AdminClient(client_config(settings.kafka))
    description = admin.describe_consumer_groups([group])[group].result(timeout=30)
    return {member.client_id for member in description.members}


def test_events_flow_through_every_role_over_sasl(
    sasl_kafka: LocalKafka,
    vcsim: LocalVcsim,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = sasl_config(sasl_kafka, topic_name, tmp_path, vcsim)
    env = env_for(sasl_kafka, vcsim)
    pipeline = LocalPipeline(
        tmp_path, LocalPipeline.write_config(tmp_path, config), roles=dict(ROLES), env=env
    )
    for name, value in env.items():  # the test's own clients read the same secrets
        monkeypatch.setenv(name, value)
    settings = load_settings(pipeline.config_path)
    type_id = f"com.example.sasl.{uuid.uuid4().hex[:8]}"
    try:
        pipeline.start()  # `vcstream topics create` first, over SASL too
        pipeline.wait_healthy(timeout=120)
        client = VcsimClient(vcsim)
        client.post_eventex(5, type_id)

        wait_until(
            lambda: len(event_keys(audited(tmp_path / "audit"), type_id)) >= 5,
            90,
            "the events in audit storage (producer, worker, sink)",
            lambda: not pipeline.dead(),
        )
        stored = event_keys(audited(tmp_path / "audit"), type_id)
        assert len(set(stored)) == len(stored) == 5  # every event once: none lost, no repeat
        # the worker's aiokafka clients carry the client property, as the sink's do
        assert group_client_ids(settings, settings.streams.app_id) == {CLIENT_ID}
        assert group_client_ids(settings, "vcstream-sink-audit") == {CLIENT_ID}

        replayed = tmp_path / "replayed.jsonl"
        events, state = settings.topics.events, tmp_path / "replay-state.json"
        argv = ["replay", "--topic", events, "--from-beginning", "--to", f"file:{replayed}"]
        result = subprocess.run(
            pipeline.vcstream_argv(*argv, "--state", str(state)),
            cwd=REPO,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in replayed.read_text().splitlines()]
        assert event_keys([line["event"] for line in lines], type_id) == stored
    finally:
        pipeline.stop()
    exits = {role: child.returncode for role, child in pipeline.processes.items()}
    assert exits == dict.fromkeys(ROLES, 0), exits


@pytest.mark.parametrize(
    "command",
    [
        ["produce"],
        ["streams", "worker"],
        ["sink", "audit"],
        ["replay", "--topic", "vcenter.events", "--from-beginning"],
        ["topics", "create"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_wrong_password_stops_the_role_naming_the_setting(
    command: list[str],
    sasl_kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    # the producer logs in to its vCenter before it meets Kafka: it needs a real one
    vcsim = request.getfixturevalue("vcsim") if command == ["produce"] else None
    config = LocalPipeline.write_config(
        tmp_path, sasl_config(sasl_kafka, topic_name, tmp_path, vcsim)
    )
    result = subprocess.run(
        [sys.executable, "-m", "cli", *command, "--config", str(config)],
        env={**os.environ, **env_for(sasl_kafka, vcsim, password="not-the-password")},
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=90,  # librdkafka alone retried for ever: the sink never exited
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "configuration error: kafka.sasl.password: Kafka at " in output
    assert f"login of user {sasl_kafka.sasl.username!r}" in output  # type: ignore[union-attr]
    assert "not-the-password" not in output
