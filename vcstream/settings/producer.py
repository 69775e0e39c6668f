"""The producer: how to read vCenter and how to lay out the raw topic."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import Field, field_validator, model_validator

from vcstream.settings.base import ConfigModel, Duration, parse_duration


class TopicLayout(ConfigModel):
    partitions: int = Field(6, ge=1, description="Partitions of the raw topic when created.")
    replication_factor: int = Field(1, ge=1, description="Replicas of each partition.")
    retention: Duration | int = Field(
        timedelta(days=30), description="How long records are kept; -1 keeps them forever."
    )

    @field_validator("retention", mode="before")
    @classmethod
    def _retention(cls, value: object) -> object:
        return -1 if value in (-1, "-1") else parse_duration(value)


class ReconnectSettings(ConfigModel):
    """Backoff between attempts to reach a vCenter that failed (exponential, capped)."""

    initial_delay: Duration = Field(
        timedelta(seconds=1), description="Wait before the first retry."
    )
    max_delay: Duration = Field(
        timedelta(seconds=60), description="The longest wait between two retries."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ReconnectSettings:
        if self.max_delay < self.initial_delay:
            raise ValueError("maxDelay must not be shorter than initialDelay")
        return self


_START_AT = re.compile(r"^(now|earliest|\d+(\.\d+)?(ms|s|m|h|d)|P.*)$", re.IGNORECASE)


class ProducerSettings(ConfigModel):
    start_at: str = Field(
        "now",
        description="With no checkpoint: `now`, `earliest`, or a history window such as `1h`.",
    )
    page_size: int = Field(
        100,
        ge=1,
        le=1000,
        description="Events read per collector API call (ReadNextEvents).",
    )
    raw_topic: TopicLayout = Field(default_factory=TopicLayout)
    poll_interval: Duration = Field(
        timedelta(seconds=2),
        description=(
            "Longest wait for a vCenter change notification (WaitForUpdatesEx) before "
            "reading anyway; the poll period when change notifications are unavailable. "
            "While a caught-up worker waits for one, the gauge "
            "vcstream_producer_waiting_for_change is 1; after a busy spell the worker "
            "replaces its change notifications instead of reading every change queued "
            "meanwhile (vcstream_producer_doorbell_rearms_total)."
        ),
    )
    commit_interval: Duration = Field(
        timedelta(milliseconds=195),
        description=(
            "While events trickle in, how long an event may wait for its transaction, from the "
            "read before it to its commit: the producer reads again this long after its last "
            "read, less what nine in ten of its recent reads, commits and late wake-ups took, so "
            "what arrives meanwhile joins one transaction (a quiet vCenter costs one transaction "
            "and a few API calls per interval instead of per event) and a loaded machine "
            "shortens the wait instead of adding to the latency (the wait in force: the gauge "
            "vcstream_producer_read_interval_seconds). A backlog is read and committed "
            "without waiting. 0 commits as soon as a page is read."
        ),
    )
    transaction_timeout: Duration = Field(
        timedelta(seconds=60),
        description=(
            "Kafka transaction timeout; an open transaction older than this (say, across a "
            "broker restart) is aborted, and the producer resumes from its checkpoint."
        ),
    )
    transactional_id_prefix: str = Field(
        "vcstream-producer",
        min_length=1,
        description=(
            "Prefix of the Kafka transactional.id; the vCenter instance UUID is appended, so "
            "a second producer for the same vCenter fences the first instead of duplicating; "
            "the first stops producing from that vCenter."
        ),
    )
    request_timeout: Duration = Field(
        timedelta(seconds=60),
        description="Socket timeout of one vCenter API call; a dead connection ends after it.",
    )
    startup_timeout: Duration = Field(
        timedelta(seconds=60),
        description=(
            "How long to keep trying to reach Kafka and the vCenters at start before exiting "
            "with an error; later outages are retried forever."
        ),
    )
    reconnect: ReconnectSettings = Field(default_factory=ReconnectSettings)
    alarm_definitions: bool = Field(
        True, description="Publish alarm definitions to the alarm-definitions topic."
    )
    batch_scheduling: bool = Field(
        True,
        description=(
            "Run the producer's threads under Linux's SCHED_BATCH policy: a thread that "
            "wakes (librdkafka's, some 25 times a transaction) waits for the running one to "
            "block or for the next scheduler tick instead of preempting it, which costs the "
            "machine fewer context switches for at most a tick of latency per wake-up, "
            "well within commitInterval. Where the platform has no such policy or refuses "
            "it, a warning is logged and the default policy stays."
        ),
    )

    @field_validator("start_at")
    @classmethod
    def _start_at(cls, value: str) -> str:
        if not _START_AT.match(value.strip()):
            raise ValueError("start_at must be now, earliest, or a duration such as 1h or PT30M")
        text = value.strip()
        if text.lower() not in ("now", "earliest"):
            parse_duration(text)  # `P1M` matches the pattern but is not a usable window
        return text

    def history_window(self) -> timedelta | None:
        """The window `startAt` asks for; None for `earliest`, zero for `now`."""
        text = self.start_at.lower()
        if text == "earliest":
            return None
        if text == "now":
            return timedelta(0)
        return parse_duration(self.start_at)
