"""The gateway as a real subprocess (`python -m vcstream gateway`), `curl` as its client,
and a read_committed reader of the topic it writes."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from schemas.record import KafkaRecord
from tests.producer.conftest import read_topic
from tests.role_process import RoleProcess

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD, TOKEN = "veba", "pass-" + uuid.uuid4().hex[:8], "tok-" + uuid.uuid4().hex


def gateway_config(
    path: Path,
    bootstrap: str,
    topic: str,
    watch_topic: str | None = None,
    extra: str = "",
    client_properties: str = "{}",
) -> Path:
    """`client_properties`: the kafka section's clientProperties, as a YAML flow mapping."""
    path.write_text(
        f"""
kafka:
  bootstrapServers: "{bootstrap}"
  clientProperties: {client_properties}
gateway:
  port: 0
  host: 127.0.0.1
  topic: {topic}
  partitions: 3
  ackTimeout: 3s
  retryAfter: 7s
  maxEventSize: 4096
  maxRequestSize: 65536
  auth:
    basic: {USER}:{PASSWORD}
    bearerTokens: [{TOKEN}]
  watch:
    topic: {watch_topic or topic}
    maxWatches: 3
{extra}
metrics:
  port: 0
"""
    )
    return path


class GatewayProcess(RoleProcess):
    def __init__(self, config: Path, log: Path) -> None:
        super().__init__(["gateway"], config, log)

    def start(self) -> GatewayProcess:
        super().start()
        return self

    @property
    def url(self) -> str:
        port = self.logged_port(r"gateway listening on port (\d+)")
        return f"http://127.0.0.1:{port}"

    def rss_kb(self) -> int:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[Callable[[Path], GatewayProcess]]:
    started: list[GatewayProcess] = []

    def make(config: Path) -> GatewayProcess:
        process = GatewayProcess(config, tmp_path / f"gateway{len(started)}.log").start()
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop_quietly()


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> object:
        return json.loads(self.body)


def curl(url: str, *args: str, data: bytes | None = None, timeout: float = 60) -> Answer:
    """`curl` as a webhook sender runs it; the status, headers and body it got."""
    command = ["curl", "-sS", "-D", "-", "--max-time", str(timeout), *args, url]
    if data is not None:
        command += ["--data-binary", "@-"]
    done = subprocess.run(
        command, check=False, input=data, capture_output=True, timeout=timeout + 10
    )
    assert done.returncode == 0, done.stderr.decode()
    head, _, body = done.stdout.decode().partition("\r\n\r\n")
    while head.startswith("HTTP/1.1 100"):
        head, _, body = body.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, body)


BASIC = ["-u", f"{USER}:{PASSWORD}"]
BEARER = ["-H", f"Authorization: Bearer {TOKEN}"]


def records_of(bootstrap: str, topic: str) -> list[KafkaRecord]:
    return read_topic(bootstrap, topic)
