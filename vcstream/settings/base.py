"""Building blocks every settings section shares: camelCase keys, no unknown keys,
durations, secrets that can come from the environment or a file, and server addresses."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import isodate
from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr
from pydantic.alias_generators import to_camel


class ConfigModel(BaseModel):
    """A section of the configuration file.

    Keys are camelCase, like the Kubernetes and Knative resources vcstream users already
    write (`backoffDelay`, `deadLetterSink`); an unknown key is an error, never ignored.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=False,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )


_SHORT_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """Accept ISO 8601 (`PT0.2S`, Knative's form), `500ms`/`30s`/`5m`/`1h`/`7d`, or seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        match = _SHORT_DURATION.match(text)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
        if text.upper().startswith("P"):
            try:
                parsed = isodate.parse_duration(text.upper())
            except (isodate.ISO8601Error, ValueError) as exc:
                raise ValueError(f"not an ISO 8601 duration: {value!r}") from exc
            if isinstance(parsed, timedelta):
                return parsed
            raise ValueError(f"durations in months or years are ambiguous: {value!r}")
    raise ValueError(f"not a duration: {value!r} (use e.g. PT0.2S, 500ms, 30s, 5m, 1h)")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def resolve_secret(value: Any) -> Any:
    """A secret is a literal, `{fromEnv: NAME}` or `{fromFile: PATH}`.

    Kept out of the YAML file, a password or webhook URL never needs to sit in a
    ConfigMap; resolution failures name the variable or file, never the value.
    """
    if isinstance(value, dict) and set(value) == {"fromEnv"}:
        name = str(value["fromEnv"])
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]
    if isinstance(value, dict) and set(value) == {"fromFile"}:
        path = Path(str(value["fromFile"]))
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    if isinstance(value, dict):
        raise ValueError("a secret is a string, {fromEnv: NAME} or {fromFile: PATH}")
    return value


Secret = Annotated[SecretStr, BeforeValidator(resolve_secret)]


def server_origin(url: str, server: str) -> str:
    """`host`, `https://HOST:443/path` → `https://<host>[:port]` (the port only if given);
    `server` names the kind of server in the error ("vCenter", "Horizon").

    Origins become CloudEvent `source`s, so one never carries credentials or a path.
    """
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http"):
        raise ValueError(f"{server} URL scheme must be https or http, not {parts.scheme!r}")
    # before the host: the error for a URL with no host quotes it, and this one must not
    if "@" in parts.netloc:
        raise ValueError(f"{server} URL must not contain credentials; use username/password")
    if not parts.hostname:
        raise ValueError(f"{server} URL has no host: {url!r}")
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}"
