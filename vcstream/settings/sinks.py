"""The sink connectors."""

from __future__ import annotations

from vcstream.settings.base import ConfigModel


class SinksSettings(ConfigModel):
    pass
