"""Replay's progress reaches 100% on a transactional topic, whose offsets (the progress
total) include commit markers that are never read as records."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from devenv import LocalKafka
from replay.progress import progress_for
from replay.session import ReplayRequest, run_replay
from replay.spec import ReplaySpec
from tests.replay.helpers import fill_topic, settings_for, write_in_transactions

pytestmark = pytest.mark.integration


def test_progress_ends_at_100_percent_though_markers_count_in_the_total(
    kafka: LocalKafka, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("progress")
    fill_topic(kafka, topic, 4)
    records = 4 + write_in_transactions(kafka, topic, transactions=5, each=2)
    stream = io.StringIO()
    request = ReplayRequest(
        ReplaySpec(topic, from_beginning=True),
        f"file:{tmp_path / 'out.jsonl'}",
        state_path=tmp_path / "state.json",
        progress_stream=stream,
    )
    outcome = run_replay(settings_for(kafka), request)
    assert outcome.report["totals"]["written"] == records
    last = stream.getvalue().strip().splitlines()[-1]
    # 5 commit markers: the offsets (the total) are 19, the records read 14
    assert re.search(r": 19/19 records \(100\.0%\)", last), last


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_bar_and_anything_else_plain_lines() -> None:
    """rich is imported only for the bar (`replay.progress_bar`), so its counts are
    checked here, where no replay would show them."""
    terminal = _Terminal()
    bar = progress_for(10, 2, "replay t", terminal)
    bar.advance(5)
    bar.complete()
    bar.close()
    assert "10/10" in terminal.getvalue()
    assert "rec/s" in terminal.getvalue()
    plain = io.StringIO()
    lines = progress_for(10, 2, "replay t", plain)
    lines.advance(5)
    lines.close()
    assert plain.getvalue().startswith("replay t: 7/10 records (70.0%)")
