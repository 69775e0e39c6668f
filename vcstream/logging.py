"""Logging set-up with secrets redacted from every line, whatever logged them."""

from __future__ import annotations

import json
import logging
import logging.config
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr

from vcstream.settings.observability import LoggingSettings

REDACTED = "**********"
_secrets: set[str] = set()

# librdkafka's own log lines (every client made by vcstream.kafka.client_config) and the
# errors its callbacks report go to this logger, so they take the configured format
KAFKA_LOGGER = "librdkafka"


def register_secrets(values: Iterable[str]) -> None:
    """Values that must never reach a log line (passwords, webhook URLs, tokens)."""
    _secrets.update(value for value in values if len(value) >= 4)


def secrets_of(model: BaseModel) -> list[str]:
    """Every SecretStr value inside a settings tree."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(model)
    return found


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFormatter(logging.Formatter):
    def __init__(self, json_lines: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.json_lines = json_lines

    def format(self, record: logging.LogRecord) -> str:
        if self.json_lines:
            payload = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
            if record.exc_info:
                payload["exception"] = self.formatException(record.exc_info)
            return redact(json.dumps(payload))
        return redact(super().format(record))


@dataclass
class _Window:
    started: float
    suppressed: int = 0


class RepeatFilter(logging.Filter):
    """Lets a kind of line through once per `period` seconds; the next one let through
    says how many were suppressed meanwhile.

    With a broker down, librdkafka logs every reconnect of every client (~40 lines/s from
    one sink were seen), which buries everything else. A kind is the logger, level and
    message with its digits blanked (ports, milliseconds, counts vary between repeats).
    """

    MAX_KINDS = 1000  # bounded memory whatever the messages are

    def __init__(self, period: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.period = period
        self._clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget what was seen: the next line of every kind passes."""
        with self._lock:
            self._windows = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kind = (record.name, record.levelno, re.sub(r"\d+", "#", message))
        now = self._clock()
        with self._lock:
            window = self._windows.get(kind)
            if window is not None and now - window.started < self.period:
                window.suppressed += 1
                return False
            if len(self._windows) >= self.MAX_KINDS:
                self._windows = {
                    k: w for k, w in self._windows.items() if now - w.started < self.period
                }
            self._windows[kind] = _Window(now)
        if window is not None and window.suppressed:
            record.msg = f"{message} ({window.suppressed} more like this suppressed)"
            record.args = ()
        return True


# one instance, so configuring logging again (tests, Faust's own set-up) never stacks them
KAFKA_REPEATS = RepeatFilter()
logging.getLogger(KAFKA_LOGGER).addFilter(KAFKA_REPEATS)


def kafka_repeats(period: float) -> RepeatFilter:
    """The filter of the librdkafka logger, set to `period` (a dictConfig factory)."""
    KAFKA_REPEATS.period = period
    return KAFKA_REPEATS


def logging_config(settings: LoggingSettings) -> dict[str, Any]:
    """The logging setup as a `logging.config.dictConfig` dictionary.

    One description for every way a role starts: `vcstream <role>` applies it, and the
    streams app hands it to Faust, whose own command (`faust -A streams.app worker`)
    otherwise installs its logging at level WARN.
    """
    quiet = max(logging.WARNING, logging.getLevelName(settings.level))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "vcstream": {"()": RedactingFormatter, "json_lines": settings.format == "json"}
        },
        "filters": {
            "kafka_repeats": {
                "()": kafka_repeats,
                "period": settings.repeat_interval.total_seconds(),
            }
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "vcstream",
            }
        },
        "root": {"level": settings.level, "handlers": ["stderr"]},
        # pyvmomi and aiokafka are chatty at INFO; their warnings still come through
        "loggers": {
            **{name: {"level": quiet} for name in ("aiokafka", "faust", "mode", "urllib3")},
            KAFKA_LOGGER: {"filters": ["kafka_repeats"]},
        },
    }


def configure_logging(settings: LoggingSettings) -> None:
    logging.config.dictConfig(logging_config(settings))
