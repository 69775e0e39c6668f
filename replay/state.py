"""The resume file: where an interrupted replay stopped, and what it had counted.

It lives in `$XDG_STATE_HOME/vcstream/replay/` (default `~/.local/state/...`), named
after a fingerprint of the command (broker, topic, range, filters, target), so running
the same command again with `--resume` finds it; `--state FILE` puts it elsewhere. It
is written atomically with what a batch the target accepted left (after the first such
batch, then at most every `replay.session.SAVE_INTERVAL`, and when the replay ends or
stops) and removed when the replay completes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay.plan import Plan
from replay.tally import PartitionTally

VERSION = 1


def fingerprint(command: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(command, sort_keys=True).encode()).hexdigest()


def default_state_path(command_fingerprint: str) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vcstream" / "replay" / f"{command_fingerprint[:20]}.json"


@dataclass
class ReplayState:
    fingerprint: str
    command: dict[str, Any]
    plan: Plan
    tallies: dict[int, PartitionTally]
    target_marker: int | None = None
    runs: int = 1
    elapsed_seconds: float = 0.0
    # a worker's range fully replayed (its state is kept until the coordinator merged it)
    complete: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "fingerprint": self.fingerprint,
            "command": self.command,
            "plan": self.plan.to_json(),
            "tallies": [t.to_json() for t in self.tallies.values()],
            "targetMarker": self.target_marker,
            "runs": self.runs,
            "elapsedSeconds": self.elapsed_seconds,
            "complete": self.complete,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReplayState:
        if data.get("version") != VERSION:
            raise ValueError(f"unsupported state version {data.get('version')!r}")
        tallies = [PartitionTally.from_json(t) for t in data["tallies"]]
        return cls(
            fingerprint=str(data["fingerprint"]),
            command=dict(data["command"]),
            plan=Plan.from_json(data["plan"]),
            tallies={t.partition: t for t in tallies},
            target_marker=data.get("targetMarker"),
            runs=int(data.get("runs", 1)),
            elapsed_seconds=float(data.get("elapsedSeconds", 0.0)),
            complete=bool(data.get("complete", False)),
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.to_json()))
        os.replace(temporary, path)  # atomic: a crash leaves the old state or the new

    @classmethod
    def load(cls, path: Path) -> ReplayState:
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read replay state {path}: {exc}") from None
