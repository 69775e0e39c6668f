"""From vcsim to an enriched alarm: the producer publishes the alarm definitions and the
events, the streams worker joins them (a predefined alarm and one created in the test)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from devenv.activity import VcsimClient
from streams.api import data_of
from tests.producer.conftest import ProducerProcess
from tests.role_process import wait_for
from tests.streams.helpers import StreamsWorker, consume, decoded, streams_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_alarm_from_vcsim_enriched_with_definitions_the_producer_published(
    kafka, vcsim, topic_name, tmp_path: Path
):
    vcenter = {
        "name": "sim",
        "url": vcsim.url,
        "username": vcsim.username,
        "password": vcsim.password,
        "caFile": str(vcsim.ca_file),
    }
    producer_settings = {
        "startAt": "earliest",
        "transactionalIdPrefix": f"streams-e2e-{uuid.uuid4().hex[:8]}",
        "pollInterval": "1s",
        "transactionTimeout": "20s",
    }
    config = streams_config(
        tmp_path,
        kafka.bootstrap_servers,
        topic_name,
        extra={"vcenters": [vcenter], "producer": producer_settings},
    )
    # the same file for both roles, but each its own metrics port
    producer_config = tmp_path / "producer.yaml"
    values = yaml.safe_load(config.read_text())
    producer_config.write_text(yaml.safe_dump({**values, "metrics": {"port": 0}}))

    client = VcsimClient(vcsim)
    producer = ProducerProcess(producer_config, tmp_path / "producer.log").start()
    worker = StreamsWorker(config)
    settings = worker.settings
    try:
        wait_for(lambda: "alarm definitions up to date" in producer.log(), 60, "the producer")
        worker.start()
        predefined = next(
            a for a in client.content.alarmManager.GetAlarm(None) if a._moId == "alarm-384"
        )
        predefined_name = predefined.info.name
        created = client.create_cpu_alarm(
            "vcstream streams e2e", "created by the streams end-to-end test"
        )
        created_id = created._moId
        # the producer publishes the new definition with this event, in one transaction
        client.post_alarm_event("AlarmCreatedEvent", created, "vcstream streams e2e")
        client.post_alarm_status_changed(predefined, "red")
        client.post_alarm_status_changed(created, "yellow")

        alarms = decoded(consume(settings, settings.topics.alarms, 2, timeout=60, settle=1))
    finally:
        worker.stop()
        producer.stop_quietly()
        client.close()

    by_alarm = {data_of(event)["Alarm"]["Alarm"]["Value"]: event for event in alarms}
    assert set(by_alarm) == {"alarm-384", created_id}
    red, yellow = by_alarm["alarm-384"], by_alarm[created_id]
    assert red.get_type() == "com.vmware.vsphere.AlarmStatusChangedEvent.v0.AlarmInfo"
    assert data_of(red)["To"] == "red"
    assert data_of(red)["AlarmInfo"]["Name"] == predefined_name
    assert data_of(red)["AlarmInfo"]["Alarm"] == {"Type": "Alarm", "Value": "alarm-384"}
    assert data_of(yellow)["AlarmInfo"]["Name"] == "vcstream streams e2e"
    assert data_of(yellow)["AlarmInfo"]["Description"] == "created by the streams end-to-end test"
    assert red.get_source() == settings.vcenters[0].url
