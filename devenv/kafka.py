"""A single-node KRaft Kafka broker (combined broker + controller) run with plain Java.

With `sasl=ScramUser(...)` the broker also listens with SASL_PLAINTEXT and SCRAM (as a
production cluster would authenticate clients), next to its PLAINTEXT listener: that one
stays the broker's own (inter-broker traffic and the readiness probe), so a test points
the roles at `sasl_bootstrap_servers` only and every one of them must authenticate.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devenv.process import REPO, ChildProcess, cache_dir, free_port

LOG4J_CONFIG = REPO / "deploy" / "local" / "kafka" / "log4j2.yaml"


def kafka_classpath() -> str:
    libs = cache_dir() / "kafka" / "libs"
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise FileNotFoundError(f"no Kafka jars in {libs}: run deploy/local/install.sh first")
    return f"{libs}/*"


@dataclass(frozen=True)
class ScramUser:
    """The one user of a SASL listener, created in the metadata log when storage is formatted."""

    username: str
    password: str
    mechanism: str = "SCRAM-SHA-256"

    def storage_argument(self) -> str:
        # kafka-storage's own syntax; a quote or comma inside would need its escaping
        if any(char in self.username + self.password for char in '",[]='):
            raise ValueError('a local SCRAM user name or password cannot hold ", [ ] or =')
        return f"{self.mechanism}=[name={self.username},password={self.password}]"


class LocalKafka:
    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
        overrides: dict[str, str] | None = None,
        sasl: ScramUser | None = None,
        sasl_port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.sasl = sasl
        self.sasl_port = (sasl_port or free_port()) if sasl is not None else None
        self.heap = heap
        self.overrides = overrides or {}
        self.child = ChildProcess("kafka", workdir)
        self.start_seconds = 0.0

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        if self.sasl_port is None:
            raise RuntimeError("this broker was started without a SASL listener")
        return f"127.0.0.1:{self.sasl_port}"

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

    def _listeners(self) -> dict[str, str]:
        plain = f"PLAINTEXT://127.0.0.1:{self.port}"
        controller = f"CONTROLLER://127.0.0.1:{self.controller_port}"
        if self.sasl is None:
            return {
                "listeners": f"{plain},{controller}",
                "advertised.listeners": plain,
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            }
        sasl = f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}"
        mechanism = self.sasl.mechanism.lower()
        return {
            "listeners": f"{plain},{sasl},{controller}",
            "advertised.listeners": f"{plain},{sasl}",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            # the broker talks to itself over PLAINTEXT, so only clients authenticate
            "inter.broker.listener.name": "PLAINTEXT",
            "sasl.enabled.mechanisms": self.sasl.mechanism,
            f"listener.name.sasl_plaintext.{mechanism}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
        }

    def _write_properties(self) -> Path:
        data = self.workdir / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            **self._listeners(),
            "controller.listener.names": "CONTROLLER",
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

    @property
    def cluster_id(self) -> str | None:
        """The id its storage was formatted with: a broker that answers with another one
        on this port is not this broker (another instance's, say on 9092)."""
        meta = self.workdir / "data" / "meta.properties"
        if not meta.exists():
            return None
        for line in meta.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "cluster.id":
                return value.strip()
        return None

    def _format_storage(self, properties: Path) -> None:
        if self.cluster_id is not None:
            return  # a restart keeps its data
        cluster_id = subprocess.run(
            self._java("kafka.tools.StorageTool", "random-uuid"),
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
        # SCRAM credentials live in the metadata log: written at format time, the user
        # exists before the broker accepts its first connection
        scram = ["--add-scram", self.sasl.storage_argument()] if self.sasl else []
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
                *scram,
            ),
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 90) -> LocalKafka:
        began = time.monotonic()
        properties = self._write_properties()
        self._format_storage(properties)
        self.child.spawn(self._java("kafka.Kafka", str(properties)))
        self.child.wait_ready(self._answers_metadata, timeout, "Kafka broker")
        self.start_seconds = time.monotonic() - began
        return self

    def _answers_metadata(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=1)
        except Exception:
            return False
        ours = metadata.cluster_id == self.cluster_id
        return ours and bool(metadata.brokers) and metadata.controller_id >= 0

    def stop(self) -> None:
        self.child.stop(timeout=30)

    def kill(self) -> None:
        self.child.kill()

    def restart(self, timeout: float = 90) -> None:
        self.stop()
        self.start(timeout)
