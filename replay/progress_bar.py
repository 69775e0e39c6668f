"""The progress bar on a terminal (`replay.progress.progress_for`)."""

from __future__ import annotations

from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress


class _RecordsPerSecond(TransferSpeedColumn):
    """rich's speed column formats bytes; a replay counts records."""

    def render(self, task):  # type: ignore[no-untyped-def]
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{speed:,.0f} rec/s", style="progress.data.speed")


class BarProgress:
    def __init__(self, total: int, done: int, description: str, stream: IO[str]) -> None:
        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            _RecordsPerSecond(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self._task = self._bar.add_task(description, total=total, completed=done)
        self._bar.start()

    def advance(self, records: int) -> None:
        self._bar.advance(self._task, records)

    def complete(self) -> None:
        total = self._bar.tasks[0].total
        if total is not None:
            self._bar.update(self._task, completed=max(total, self._bar.tasks[0].completed))

    def close(self) -> None:
        self._bar.stop()
