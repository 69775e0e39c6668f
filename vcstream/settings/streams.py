"""The stream processors (Faust worker)."""

from __future__ import annotations

from pydantic import Field

from vcstream.settings.base import ConfigModel


class StreamsSettings(ConfigModel):
    app_id: str = Field("vcstream-streams", description="Faust app id (consumer group).")
    data_dir: str = Field(".cache/streams", description="Faust's local table state.")
