"""Typed configuration, validated before any connection is made."""

from vcstream.settings.base import ConfigModel, Duration, Secret, parse_duration
from vcstream.settings.root import ConfigError, Settings, load_settings

__all__ = [
    "ConfigError",
    "ConfigModel",
    "Duration",
    "Secret",
    "Settings",
    "load_settings",
    "parse_duration",
]
