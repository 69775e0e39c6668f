"""Faust's default sensor, without its statistics per record.

Faust's Monitor times every record and stream event into in-memory averages that only
its web views read (disabled here); vcstream reports through Prometheus
(`streams.metrics`). Its hooks ran for every record, several times, a few percent of the
worker's time. The per-record hooks do nothing here; the rest is Faust's.
"""

from __future__ import annotations

from typing import Any

from faust.sensors.monitor import Monitor


class QuietMonitor(Monitor):
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_table_get(self, table: Any, key: Any) -> None:
        return None
