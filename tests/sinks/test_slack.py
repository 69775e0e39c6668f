"""The Slack sink against a local webhook that enforces Slack's rate and answers 429."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from schemas import decode
from schemas.codec import encode_vsphere
from schemas.record import KafkaRecord
from sinks.slack_messages import COLOURS, alarm_message, digest_message, message_for
from tests.sinks.helpers import (
    BASE_TIME,
    VCENTER,
    dead_letter_contexts,
    make_runner,
    produce,
    read_all,
    run_until,
    settled,
    sink_settings,
)
from tests.sinks.receivers import Fault, Receiver, parse_slack

INTERVAL = 0.25  # the receiver's rate limit and the sink's minInterval (Slack: 1 s)


def alarm_data(
    key: int, to: str = "red", vm: int = 1, name: str = "VM CPU usage"
) -> dict[str, Any]:
    return {
        "Key": key,
        "ChainId": key,
        "CreatedTime": (BASE_TIME + timedelta(seconds=key)).isoformat().replace("+00:00", "Z"),
        "UserName": "",
        "FullFormattedMessage": f"Alarm '{name}' on vm{vm} changed from Green to {to.title()}",
        "From": "green",
        "To": to,
        "Alarm": {"Name": name, "Alarm": {"Type": "Alarm", "Value": "alarm-6"}},
        "Entity": {"Name": f"vm{vm}", "Entity": {"Type": "VirtualMachine", "Value": f"vm-{vm}"}},
        "Vm": {"Name": f"vm{vm}", "Vm": {"Type": "VirtualMachine", "Value": f"vm-{vm}"}},
        "AlarmInfo": {"Name": name, "Description": "Default alarm to monitor VM CPU usage"},
    }


def alarm_records(count: int, **kw: Any) -> list[KafkaRecord]:
    return [
        encode_vsphere(alarm_data(key, vm=key % 3, **kw), "AlarmStatusChangedEvent", VCENTER)
        for key in range(1, count + 1)
    ]


class RateLimitedWebhook:
    """Answers 429 + Retry-After to a message sent sooner than INTERVAL after the last."""

    def __init__(self) -> None:
        self.too_fast = 0
        self._last = 0.0
        self._lock = threading.Lock()
        self.extra: dict[int, Fault] = {}

    def __call__(self, number: int, _body: Any) -> Fault:
        if number in self.extra:
            return self.extra[number]
        with self._lock:
            now = time.monotonic()
            if now - self._last < INTERVAL * 0.9:
                self.too_fast += 1
                return Fault.http(429, Retry_After="1")
            self._last = now
        return Fault.http(200)


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    server = Receiver(parse_slack).start()
    server.plan = RateLimitedWebhook()
    yield server
    server.stop()


def slack(kafka: Any, topic_name: Any, webhook: Receiver, **extra: Any) -> tuple[Any, str, str]:
    topic, dlq = topic_name("alarms"), topic_name("dlq")
    extra.setdefault("delivery", {"backoffDelay": "PT0.05S"})
    settings = sink_settings(
        kafka.bootstrap_servers,
        "slack",
        dlq,
        topics=[topic],
        webhookUrl=webhook.url + "services/T000/B000/XXXXSECRET",
        minInterval=f"PT{INTERVAL}S",
        **extra,
    )
    return settings, topic, dlq


@pytest.mark.integration
def test_slack_sends_one_message_per_alarm_within_the_rate(kafka, topic_name, webhook):
    settings, topic, _ = slack(kafka, topic_name, webhook)
    produce(kafka.bootstrap_servers, topic, alarm_records(5))
    runner = make_runner("slack", settings)

    run_until(runner, settled(runner, 5))

    assert runner.report.delivered == 5
    assert len(webhook.accepted) == 5
    assert webhook.plan.too_fast == 0
    first = webhook.accepted[0]
    assert first["text"].startswith("[RED] VM CPU usage: vm1 on vc01.example.com")
    assert first["attachments"][0]["color"] == COLOURS["red"]


@pytest.mark.integration
def test_slack_429_with_retry_after_is_honoured_and_loses_nothing(kafka, topic_name, webhook):
    settings, topic, _ = slack(kafka, topic_name, webhook)
    webhook.plan.extra = {1: Fault.http(429, Retry_After="1"), 2: Fault.http(429, Retry_After="1")}
    produce(kafka.bootstrap_servers, topic, alarm_records(3))
    runner = make_runner("slack", settings)

    run_until(runner, settled(runner, 3))

    assert (runner.report.delivered, runner.report.dead_lettered, runner.report.retried) == (
        3,
        0,
        2,
    )
    assert sorted(m["text"] for m in webhook.accepted) == sorted(
        alarm_message(decode(r))["text"] for r in alarm_records(3)
    )


@pytest.mark.integration
def test_slack_alarm_storm_becomes_one_digest(kafka, topic_name, webhook):
    settings, topic, _ = slack(
        kafka,
        topic_name,
        webhook,
        storm={"threshold": 10, "window": "PT1M"},
        batch={"maxRecords": 500, "maxWait": "PT1S"},
    )
    produce(kafka.bootstrap_servers, topic, alarm_records(40))
    runner = make_runner("slack", settings)

    run_until(runner, settled(runner, 40))

    assert runner.report.delivered == 40
    [digest] = webhook.accepted
    assert digest["text"].startswith("Alarm storm: 40 alarms on vc01.example.com")
    assert "40 red" in digest["text"]


@pytest.mark.integration
def test_slack_webhook_url_stays_out_of_dead_letters_and_logs(kafka, topic_name, webhook, caplog):
    settings, topic, dlq = slack(kafka, topic_name, webhook)
    webhook.plan = lambda _n, _body: Fault.http(400)
    produce(kafka.bootstrap_servers, topic, alarm_records(1))
    runner = make_runner("slack", settings)

    with caplog.at_level(logging.INFO):
        run_until(runner, settled(runner, 1))

    [record] = read_all(kafka.bootstrap_servers, dlq)
    [context] = dead_letter_contexts(kafka.bootstrap_servers, dlq)
    assert (context["status"], context["dest"]) == ("400", "slack webhook")
    secret = "XXXXSECRET"
    assert all(secret.encode() not in value for _, value in record.headers)
    assert secret not in caplog.text


def test_alarm_message_colour_and_fallback_follow_the_status():
    for status in ("red", "yellow", "green", "gray"):
        [record] = [encode_vsphere(alarm_data(1, to=status), "AlarmStatusChangedEvent", VCENTER)]
        message = alarm_message(decode(record))
        assert message["attachments"][0]["color"] == COLOURS[status]
        assert message["text"].startswith(f"[{status.upper()}] VM CPU usage: vm1")
        fields = message["attachments"][0]["blocks"][1]["fields"]
        assert fields[0]["text"] == f"*Status*\ngreen → {status}"
        assert (
            "Default alarm to monitor VM CPU usage"
            in message["attachments"][0]["blocks"][0]["text"]["text"]
        )


def test_digest_counts_statuses_alarms_and_entities():
    events = [decode(r) for r in alarm_records(4)] + [
        decode(
            encode_vsphere(
                alarm_data(9, to="yellow", name="Host memory"), "AlarmStatusChangedEvent", VCENTER
            )
        )
    ]
    message = digest_message(events)
    assert message["text"].startswith("Alarm storm: 5 alarms on vc01.example.com (4 red, 1 yellow)")
    assert message["attachments"][0]["color"] == COLOURS["red"]
    fields = message["attachments"][0]["blocks"][2]["fields"]
    assert "4 x VM CPU usage" in fields[0]["text"] and "1 x Host memory" in fields[0]["text"]


def test_the_workers_alarm_storm_event_is_rendered_as_one_message():
    # the event as the streams worker's alarmStorm processor makes it
    from streams.api import data_of
    from streams.processors.storm import alarm_storm
    from streams.testing import Runner
    from vcstream.settings.streams import AlarmStormSettings

    storm = alarm_storm(AlarmStormSettings.model_validate({"enabled": True, "threshold": 2}))
    events = [decode(r) for r in alarm_records(9)]
    events = [e for e in events if data_of(e)["Entity"]["Name"] == "vm1"]  # one entity
    summary = next(e for e in Runner(storm).run(*events) if e.get_type().endswith("AlarmStorm.v0"))

    message = message_for(summary)
    assert message["text"].startswith(
        "[STORM] Alarm storm on vm1: more than 2 alarms on vc01.example.com; the rest held back"
    )
    attachment = message["attachments"][0]
    assert attachment["color"] == COLOURS["red"]
    fields = attachment["blocks"][1]["fields"]
    assert fields[0]["text"] == "*Entity*\nvm1 (VirtualMachine)"
    assert fields[2]["text"] == "*Alarms*\n:red_circle: 3 red"
    assert attachment["blocks"][2]["text"]["text"] == "3 x VM CPU usage"
    # an alarm is still an alarm message; in a batch digest the storm is one line
    assert message_for(events[0]) == alarm_message(events[0])
    digest = digest_message([summary, events[0]])
    assert (
        "1 x Alarm storm (3 alarms)" in digest["attachments"][0]["blocks"][2]["fields"][0]["text"]
    )
