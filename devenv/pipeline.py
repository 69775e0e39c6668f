"""The whole pipeline on one machine: every role as its own `vcstream` process, exactly
as docker-compose.yml and Kubernetes run them, each with its own metrics port."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devenv.horizon import HorizonStandIn
from devenv.kafka import LocalKafka
from devenv.process import ChildProcess, free_port
from devenv.vcsim import LocalVcsim

# role name → `vcstream` arguments; the same commands as the compose services
ROLES: dict[str, list[str]] = {
    "producer": ["produce"],
    "streams": ["streams", "worker"],
    "sink-knative": ["sink", "knative"],
    "sink-slack": ["sink", "slack"],
    "sink-audit": ["sink", "audit"],
    "gateway": ["gateway"],
}


def local_config(
    kafka: LocalKafka,
    vcsim: LocalVcsim,
    workdir: Path,
    knative_url: str,
    slack_url: str,
    horizon: HorizonStandIn | None = None,
) -> dict[str, Any]:
    """The configuration of a local pipeline; the vCenter password comes from the env
    (and the Horizon stand-in's, when there is one, from HORIZON_PASSWORD)."""
    config: dict[str, Any] = {
        "kafka": {"bootstrapServers": kafka.bootstrap_servers},
        "vcenters": [
            {
                "name": "vcsim",
                "url": vcsim.url,
                "username": vcsim.username,
                "password": {"fromEnv": "VCSIM_PASSWORD"},
                "caFile": str(vcsim.ca_file) if vcsim.ca_file else None,
            }
        ],
        "producer": {"startAt": "earliest", "rawTopic": {"partitions": 3}},
        "streams": {"dataDir": str(workdir / "streams-state")},
        "sinks": {
            # every sink on its default topics, as under compose and Kubernetes
            "knative": {"url": knative_url},
            "slack": {"webhookUrl": slack_url},
            # files close every minute, so what happened shows in `audit query` soon
            # (production keeps the default 10 min: fewer, larger files)
            "audit": {"files": {"directory": str(workdir / "audit"), "rotateInterval": "PT1M"}},
        },
        # the webhook and the read API, open to this machine only (no credentials)
        "gateway": {"host": "127.0.0.1", "port": free_port()},
        "metrics": {"host": "127.0.0.1"},
    }
    if horizon is not None:
        config["horizon"] = [
            {
                "name": "horizon",
                "url": horizon.url,
                "domain": horizon.domain,
                "username": horizon.username,
                "password": {"fromEnv": "HORIZON_PASSWORD"},
                "pollInterval": "2s",
            }
        ]
    return config


@dataclass
class LocalPipeline:
    workdir: Path
    config_path: Path
    roles: dict[str, list[str]] = field(default_factory=lambda: dict(ROLES))
    env: dict[str, str] = field(default_factory=dict)
    # how to run `vcstream`: from the checkout by default; an installed console script
    # (with `cwd` outside the tree) for the wheel's test
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "cli"])
    cwd: Path | None = None
    processes: dict[str, ChildProcess] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def write_config(cls, workdir: Path, config: dict[str, Any]) -> Path:
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "vcstream.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def vcstream_argv(self, *args: str) -> list[str]:
        return [*self.command, *args, "--config", str(self.config_path)]

    def start(self) -> LocalPipeline:
        # the compose topic-init job: every topic exists before any role subscribes
        subprocess.run(
            self.vcstream_argv("topics", "create"),
            check=True,
            capture_output=True,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            timeout=120,
        )
        for role in self.roles:
            self.start_role(role)
        return self

    def start_role(self, role: str) -> ChildProcess:
        """Start one role (again, after `stop_role`: same metrics port, same log file)."""
        port = self.metrics_ports.get(role) or free_port()
        child = ChildProcess(role, self.workdir / "logs")
        child.spawn(
            self.vcstream_argv(*self.roles[role]),
            env={**self.env, "VCSTREAM_METRICS__PORT": str(port)},
            cwd=self.cwd,
        )
        self.processes[role] = child
        self.metrics_ports[role] = port
        return child

    def stop_role(self, role: str, timeout: float = 30) -> int | None:
        """SIGTERM one role; its exit code (-9: it outlived `timeout` and was killed)."""
        return self.processes[role].stop(timeout)

    def wait_healthy(self, timeout: float = 90) -> None:
        for role, child in self.processes.items():
            child.wait_ready(
                lambda role=role: self.healthy(role),  # type: ignore[misc]
                timeout,
                f"{role} /healthz",
            )

    def healthy(self, role: str) -> bool:
        url = f"http://127.0.0.1:{self.metrics_ports[role]}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def metrics(self, role: str) -> str:
        url = f"http://127.0.0.1:{self.metrics_ports[role]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def dead(self) -> list[str]:
        return [role for role, child in self.processes.items() if not child.alive()]

    def stop(self) -> None:
        # sinks first, producer last: nothing upstream keeps writing into a stopped stage
        for role in reversed(list(self.processes)):
            self.processes[role].stop(timeout=30)
