"""The whole configuration: one YAML file, overridden by `VCSTREAM_*` environment variables."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from vcstream.settings.gateway import GatewaySettings
from vcstream.settings.horizon import HorizonSettings
from vcstream.settings.kafka import KafkaSettings, TopicsSettings
from vcstream.settings.observability import LoggingSettings, MetricsSettings
from vcstream.settings.producer import ProducerSettings
from vcstream.settings.sinks import SinksSettings
from vcstream.settings.streams import StreamsSettings
from vcstream.settings.vcenter import VCenterSettings


class ConfigError(Exception):
    """The configuration is wrong; the message names every offending key, one per line."""


class Settings(BaseSettings):
    # top-level keys are single words, so no alias: an alias would also drop env_prefix
    model_config = SettingsConfigDict(
        env_prefix="VCSTREAM_",
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicsSettings = Field(default_factory=TopicsSettings)
    vcenters: list[VCenterSettings] = Field(default_factory=list)
    horizon: list[HorizonSettings] = Field(default_factory=list)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    streams: StreamsSettings = Field(default_factory=StreamsSettings)
    sinks: SinksSettings = Field(default_factory=SinksSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the file arrives as init values; the environment must win over it
        return env_settings, init_settings


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


ENV_PREFIX = "VCSTREAM_"


def _from_environment(loc: tuple[int | str, ...]) -> str | None:
    """The `VCSTREAM_*` variable that set this key (or a section holding it), if one did:
    the user wrote that variable, not the YAML key, so the error must name it."""
    keys: list[str] = []
    for part in loc:
        if isinstance(part, int):
            break
        keys.append(part)
    present = {name.upper(): name for name in os.environ}
    while keys:
        name = ENV_PREFIX + "__".join(keys).upper()
        if name in present:
            return present[name]
        keys.pop()
    return None


def describe_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        loc = tuple(item["loc"])
        where = _location(loc)
        variable = _from_environment(loc)
        if variable is not None:
            where += f" (from {variable})"
        if item["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key")
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {message}")
    return "\n".join(lines)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def load_settings(path: Path | str | None) -> Settings:
    """Read and validate the configuration; raises ConfigError naming each bad key."""
    values = read_yaml(Path(path)) if path else {}
    try:
        return Settings(**values)
    except SettingsError as exc:
        # pydantic-settings names only the top-level field; the user set a variable
        raise ConfigError(describe_environment_error(exc)) from None
    except ValidationError as exc:
        prefix = f"{path}: " if path else ""
        raise ConfigError(
            prefix + describe_validation_error(exc).replace("\n", "\n" + prefix)
        ) from None


def describe_environment_error(error: SettingsError) -> str:
    """One line per `VCSTREAM_*` variable pydantic-settings could not parse (bad JSON in a
    list or section), naming the variable and the parse error, never its value (a secret
    may be in it)."""
    found = re.search(r'field "([^"]+)"', str(error))
    field = found.group(1).upper() if found else ""
    candidates = sorted(
        name
        for name in os.environ
        if name.upper() == ENV_PREFIX + field or name.upper().startswith(f"{ENV_PREFIX}{field}__")
    )
    lines = []
    for name in candidates:
        # parse each variable alone, as Settings would: the one that fails is the culprit
        source = EnvSettingsSource(
            Settings, case_sensitive=False, env_prefix=ENV_PREFIX, env_nested_delimiter="__"
        )
        source.env_vars = {name.lower(): os.environ[name]}
        try:
            source()
        except SettingsError as exc:
            cause = exc.__cause__
            detail = str(cause).split(" (char ")[0] if cause is not None else str(exc)
            lines.append(f"{name}: not valid JSON ({detail})")
    if not lines:  # not narrowed down: name the field and what pydantic-settings said
        cause = error.__cause__
        lines.append(f"{ENV_PREFIX}{field}*: {cause if cause is not None else error}")
    return "\n".join(lines)
