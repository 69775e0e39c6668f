"""A single-node KRaft Kafka broker (combined broker + controller) run with plain Java."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from vcstream.devenv.process import REPO, ChildProcess, cache_dir, free_port, wait_until

LOG4J_CONFIG = REPO / "deploy" / "local" / "kafka" / "log4j2.yaml"


def kafka_classpath() -> str:
    libs = cache_dir() / "kafka" / "libs"
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise FileNotFoundError(f"no Kafka jars in {libs}: run deploy/local/install.sh first")
    return f"{libs}/*"


class LocalKafka:
    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
        overrides: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.heap = heap
        self.overrides = overrides or {}
        self.child = ChildProcess("kafka", workdir)
        self.start_seconds = 0.0

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            os.environ.get("JAVA", "java"),
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            kafka_classpath(),
            main,
            *args,
        ]

    def _write_properties(self) -> Path:
        data = self.workdir / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            # a single node: every internal topic has one replica, or transactions never start
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # 50 partitions each by default: on a 2-core machine creating them on first use
            # took long enough for aiokafka's group join to give up; one node needs few
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            "auto.create.topics.enable": "false",
            **self.overrides,
        }
        path = self.workdir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
        return path

    def _format_storage(self, properties: Path) -> None:
        if (self.workdir / "data" / "meta.properties").exists():
            return  # a restart keeps its data
        cluster_id = subprocess.run(
            self._java("kafka.tools.StorageTool", "random-uuid"),
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
        subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "--ignore-formatted",
                "-t",
                cluster_id,
                "-c",
                str(properties),
            ),
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 90) -> LocalKafka:
        began = time.monotonic()
        properties = self._write_properties()
        self._format_storage(properties)
        self.child.spawn(self._java("kafka.Kafka", str(properties)))
        try:
            wait_until(self._answers_metadata, timeout, "Kafka broker", self.child.alive)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}; broker log:\n{self.child.tail()}") from None
        self.start_seconds = time.monotonic() - began
        return self

    def _answers_metadata(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=1)
        except Exception:
            return False
        return bool(metadata.brokers) and metadata.controller_id >= 0

    def stop(self) -> None:
        self.child.stop(timeout=30)

    def kill(self) -> None:
        self.child.kill()

    def restart(self, timeout: float = 90) -> None:
        self.stop()
        self.start(timeout)
