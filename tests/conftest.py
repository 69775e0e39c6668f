"""Real services for the tests, started on free ports and stopped afterwards.

- `kafka`: one KRaft broker for the whole session (topics are named per test).
- `kafka_factory`: a private broker, for tests that stop, kill or restart it.
- `sasl_kafka`: one broker for the session whose clients log in: SASL_PLAINTEXT with
  SCRAM-SHA-256 at `sasl_bootstrap_servers`, as user `sasl_kafka.sasl`.
- `vcsim` / `vcsim_factory`: govmomi's simulator over TLS (a fresh one per test by
  default: vcsim keeps 1,000 events and 32 collectors, so tests must not share one).
- `postgres`: one PostgreSQL server for the session.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devenv import LocalKafka, LocalPostgres, LocalVcsim, ScramUser

# The shared broker's periodic chores run within a test's patience instead of Kafka's
# production pace (expired transactions every 10 s, the log cleaner every 15 s), so the
# tests that wait for them need no broker of their own.
QUICK_CHORES = {
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "300",
    "log.cleaner.backoff.ms": "1000",
}


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"), overrides=QUICK_CHORES).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    user = ScramUser("vcstream", "sasl-" + uuid.uuid4().hex[:12])
    broker = LocalKafka(tmp_path_factory.mktemp("sasl-kafka"), sasl=user).start()
    yield broker
    broker.stop()


@pytest.fixture
def kafka_factory(tmp_path: Path) -> Iterator[Callable[..., LocalKafka]]:
    started: list[LocalKafka] = []

    def make(**kwargs: object) -> LocalKafka:
        broker = LocalKafka(tmp_path / f"kafka{len(started)}", **kwargs).start()  # type: ignore[arg-type]
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def vcsim_factory(tmp_path: Path) -> Iterator[Callable[..., LocalVcsim]]:
    started: list[LocalVcsim] = []

    def make(**kwargs: object) -> LocalVcsim:
        sim = LocalVcsim(tmp_path / f"vcsim{len(started)}", **kwargs).start()  # type: ignore[arg-type]
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def vcsim(vcsim_factory: Callable[..., LocalVcsim]) -> LocalVcsim:
    return vcsim_factory()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    server = LocalPostgres(tmp_path_factory.mktemp("postgres")).start()
    yield server
    server.stop()


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Unique topic names, so tests sharing the session broker never see each other."""
    suffix = uuid.uuid4().hex[:8]

    def make(base: str) -> str:
        return f"{base}.{request.node.name[:40]}.{suffix}".replace("[", "-").replace("]", "")

    return make
