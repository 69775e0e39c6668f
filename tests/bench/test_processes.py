"""bench.processes.run_measured: a child's figures, and its failure with what it said."""

from __future__ import annotations

import sys

import pytest

from bench.processes import run_measured

# more than a pipe holds (64 KiB on Linux): a pipe read only after the exit never empties
CHATTY = "import sys; sys.stderr.write('x' * 300_000 + 'the end'); sys.exit({code})"


def test_a_child_that_writes_more_than_a_pipe_holds_is_measured() -> None:
    measured = run_measured([sys.executable, "-c", CHATTY.format(code=0)])
    assert measured.returncode == 0
    assert measured.cpu_seconds > 0


def test_a_failing_child_is_reported_with_the_end_of_what_it_said() -> None:
    with pytest.raises(RuntimeError, match=r"exited 3: x+the end$"):
        run_measured([sys.executable, "-c", CHATTY.format(code=3)])
