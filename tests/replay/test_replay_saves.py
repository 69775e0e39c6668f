"""The resume file is written after the first durable batch, then at most every
`SAVE_INTERVAL`, and when the replay ends: not once per batch. (Exactness after a kill
between two writes is held by the SIGKILL tests in test_replay_workers.py, whose workers
save so.)"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from devenv import LocalKafka
from replay import session
from replay.session import ReplayRequest, run_replay
from replay.spec import ReplaySpec
from replay.state import ReplayState
from tests.replay.helpers import fill_topic, settings_for

RECORDS = 5000  # one partition: batches of 1,000 (`session._batch_size`)


def saves_of_a_replay(
    kafka: LocalKafka, topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interval: float
) -> list[int]:
    """Records counted in each save of one replay into a file."""
    monkeypatch.setattr(session, "SAVE_INTERVAL", interval)
    counted: list[int] = []
    real_save = ReplayState.save

    def counting_save(state: ReplayState, path: Path) -> None:
        counted.append(sum(t.read for t in state.tallies.values()))
        real_save(state, path)

    monkeypatch.setattr(ReplayState, "save", counting_save)
    request = ReplayRequest(
        ReplaySpec(topic, from_beginning=True),
        f"file:{tmp_path / f'out-{interval}.jsonl'}",
        state_path=tmp_path / f"state-{interval}.json",
        progress_stream=io.StringIO(),
    )
    outcome = run_replay(settings_for(kafka), request)
    assert outcome.complete and outcome.report["totals"]["written"] == RECORDS
    return counted


@pytest.mark.integration
def test_the_resume_file_is_written_first_then_at_most_every_interval(
    kafka: LocalKafka,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = topic_name("saves")
    fill_topic(kafka, topic, RECORDS)
    every_batch = saves_of_a_replay(kafka, topic, tmp_path, monkeypatch, 0.0)
    assert every_batch == [1000, 2000, 3000, 4000, 5000, 5000]  # each batch, the end
    # a long interval: the first batch (so a kill right after leaves a file to resume
    # from), then nothing until the end
    assert saves_of_a_replay(kafka, topic, tmp_path, monkeypatch, 3600.0) == [1000, 5000]
