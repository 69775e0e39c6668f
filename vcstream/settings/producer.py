"""The producer: how to read vCenter and how to lay out the raw topic."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import Field, field_validator

from vcstream.settings.base import ConfigModel, Duration, parse_duration


class TopicLayout(ConfigModel):
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    retention: Duration | int = Field(
        timedelta(days=30), description="How long records are kept; -1 keeps them forever."
    )

    @field_validator("retention", mode="before")
    @classmethod
    def _retention(cls, value: object) -> object:
        return -1 if value in (-1, "-1") else parse_duration(value)


_START_AT = re.compile(r"^(now|earliest|\d+(\.\d+)?(ms|s|m|h|d)|P.*)$", re.IGNORECASE)


class ProducerSettings(ConfigModel):
    start_at: str = Field(
        "now",
        description="With no checkpoint: `now`, `earliest`, or a history window such as `1h`.",
    )
    page_size: int = Field(100, ge=1, le=1000, description="Events read per collector page.")
    raw_topic: TopicLayout = Field(default_factory=TopicLayout)
    poll_interval: Duration = Field(
        timedelta(seconds=2),
        description="Fallback poll period when WaitForUpdatesEx is not available.",
    )
    transaction_timeout: Duration = timedelta(seconds=60)

    @field_validator("start_at")
    @classmethod
    def _start_at(cls, value: str) -> str:
        if not _START_AT.match(value.strip()):
            raise ValueError("start_at must be now, earliest, or a duration such as 1h or PT30M")
        return value.strip()
