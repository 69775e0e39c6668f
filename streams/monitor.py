"""Faust's default sensor, without its statistics per record.

Faust's Monitor times every record and stream event into in-memory averages that only
its web views read (disabled here); vcstream reports through Prometheus
(`streams.metrics`). Its hooks ran for every record, several times, a few percent of the
worker's time. The per-record hooks keep only what Faust itself reads: when a partition's
stream last took an event, which its consumer checks to warn of a stalled partition
(without it, "Stream has not started processing" was logged for every busy partition).
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from faust.sensors.monitor import Monitor


class QuietMonitor(Monitor):
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_table_get(self, table: Any, key: Any) -> None:
        return None
