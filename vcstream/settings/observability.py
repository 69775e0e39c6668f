"""Metrics/health endpoint and logging."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from vcstream.settings.base import ConfigModel, Duration


class MetricsSettings(ConfigModel):
    enabled: bool = Field(True, description="Serve /metrics and /healthz.")
    host: str = Field("0.0.0.0", description="Address the /metrics and /healthz server binds.")
    port: int = Field(8080, ge=0, le=65535, description="0 picks a free port (tests).")


class LoggingSettings(ConfigModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    format: Literal["text", "json"] = Field(
        "text", description="`json` writes one JSON object per line, for log collectors."
    )
    repeat_interval: Duration = Field(
        timedelta(seconds=30),
        description="A Kafka client log line that repeats (a broker down, reconnects failing) "
        "is written once per this interval; the next one says how many were suppressed.",
    )
