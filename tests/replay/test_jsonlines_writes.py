"""`replay.targets.jsonlines`: a batch's pieces reach the file in order and whole, also
when the kernel takes fewer bytes than asked, and a resumed file continues exactly where
the replay last saved it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from replay.targets import jsonlines
from replay.targets.jsonlines import JsonLinesTarget, write_all


def pieces(count: int) -> list[bytes]:
    made = []
    for index in range(count):
        # varied sizes, and empty pieces, so a short write can stop anywhere
        made.append(b"head-%d:" % index)
        made.append(b"v" * (index % 7))
        made.append(b"}\n")
    return made


def test_pieces_are_written_in_order_also_beyond_one_writev(tmp_path: Path) -> None:
    made = pieces(3 * jsonlines.IOV_MAX)  # several runs of IOV_MAX iovecs
    path = tmp_path / "out"
    with path.open("wb", buffering=0) as out:
        write_all(out.fileno(), made)
    assert path.read_bytes() == b"".join(made)


@pytest.mark.parametrize("cut", [1, 7, 8, 9, 1000])
def test_a_short_write_continues_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: int
) -> None:
    """writev may write fewer bytes than asked (a signal, a pipe): the kernel's short
    write is made real here, by writing only the first `cut` bytes of each call."""
    real_writev = os.writev
    calls = []

    def short_writev(fd: int, buffers: list[bytes]) -> int:
        calls.append(len(buffers))
        return real_writev(fd, [b"".join(buffers)[:cut]])

    monkeypatch.setattr(os, "writev", short_writev)
    made = pieces(500)  # ~6 KB: every cut comes back short
    path = tmp_path / "out"
    with path.open("wb", buffering=0) as out:
        write_all(out.fileno(), made)
    assert path.read_bytes() == b"".join(made)
    assert len(calls) > 1  # it did come back short and went on


def test_a_write_that_fails_raises_and_leaves_what_was_written(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: EPIPE
    try:
        with pytest.raises(BrokenPipeError):
            write_all(write_end, pieces(10))
    finally:
        os.close(write_end)


def test_a_resumed_file_is_cut_to_the_saved_size_and_continues_there(tmp_path: Path) -> None:
    path = tmp_path / "replay.jsonl"
    first = JsonLinesTarget.file(path)
    first.write_lines([b'{"a":', b"1", b"}\n"])
    saved = first.resume_marker()
    first.write_lines([b'{"half', b"-written"])  # what a kill left after the last save
    first.close()
    assert saved == len(b'{"a":1}\n')

    resumed = JsonLinesTarget.file(path, resume_at=saved)
    assert resumed.resume_marker() == saved
    resumed.write_lines([b'{"b":', b"2", b"}\n"])
    resumed.close()
    assert path.read_bytes() == b'{"a":1}\n{"b":2}\n'
