"""Seals: the newest chain head of every closed file, kept apart from the files.

After each rename the files backend appends (and fsyncs) a line `{"offset", "hash",
"file", "records", "sealedAt"}` to `<sealDirectory>/<topic>+<partition>.seals`.
Deleting the newest files leaves a shorter chain that is valid in itself; `verify`
holds the chain to the newest seal, so that loss is found without Kafka. Put the seal
directory on other storage (another volume, append-only) to keep it from whoever can
edit the files.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sinks.audit.anchors import Anchor

SEAL_SUFFIX = ".seals"


class Seals:
    def __init__(self, directory: Path, root: Path) -> None:
        self.directory = directory
        self.root = root  # sealed files are named relative to it

    def _path(self, topic: str, partition: int) -> Path:
        return self.directory / f"{topic}+{partition}{SEAL_SUFFIX}"

    def add(self, topic: str, partition: int, head: Anchor, file: Path, records: int) -> None:
        """Seal `file`, just closed, holding `records` up to `head`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        line = {
            "offset": head.offset,
            "hash": head.hash,
            "file": str(file.relative_to(self.root)),
            "records": records,
            "sealedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with self._path(topic, partition).open("ab") as stream:
            stream.write(json.dumps(line).encode() + b"\n")
            stream.flush()
            os.fsync(stream.fileno())

    def newest(self, topic: str, partition: int) -> dict[str, Any] | None:
        path = self._path(topic, partition)
        if not path.exists():
            return None
        lines = path.read_bytes().splitlines()
        return json.loads(lines[-1]) if lines else None

    def partitions(self) -> list[tuple[str, int]]:
        found = []
        for path in self.directory.glob(f"*{SEAL_SUFFIX}"):
            topic, _, partition = path.name.removesuffix(SEAL_SUFFIX).rpartition("+")
            if partition.isdigit():
                found.append((topic, int(partition)))
        return sorted(found)
