"""Logging set-up with secrets redacted from every line, whatever logged them."""

from __future__ import annotations

import json
import logging
import logging.config
import time
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretStr

from vcstream.settings.observability import LoggingSettings

REDACTED = "**********"
_secrets: set[str] = set()


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
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "vcstream",
            }
        },
        "root": {"level": settings.level, "handlers": ["stderr"]},
        # pyvmomi and aiokafka are chatty at INFO; their warnings still come through
        "loggers": {name: {"level": quiet} for name in ("aiokafka", "faust", "mode", "urllib3")},
    }


def configure_logging(settings: LoggingSettings) -> None:
    logging.config.dictConfig(logging_config(settings))
