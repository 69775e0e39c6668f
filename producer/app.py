"""`vcstream produce`: start-up checks, one worker per vCenter, clean shutdown.

Start-up is strict, so a mistake shows at once and nothing is written: wrong
credentials (vCenter or Kafka) or an untrusted certificate exit 2; a vCenter or Kafka
that cannot be reached within `startupTimeout` exits 1. When some vCenters answer and
others do not, the producer starts with those that do and keeps trying the rest. After
start-up, every outage is retried forever, and one vCenter's trouble never stops
another's.

SIGTERM/SIGINT: each worker finishes or aborts its open transaction and the process
exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import FrameType

from confluent_kafka import KafkaException

from producer.connection import ConfigurationProblem, Session, VCenterUnavailable, connect
from producer.horizon_worker import HorizonWorker, check_login
from producer.identity import CheckpointKeys
from producer.scheduling import batch_scheduling
from producer.worker import VCenterWorker
from vcstream.exits import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME
from vcstream.kafka import KafkaLoginRejected, ensure_topics
from vcstream.observability import Health, ObservabilityServer
from vcstream.settings import Settings
from vcstream.settings.producer import ProducerSettings
from vcstream.settings.vcenter import VCenterSettings
from vcstream.topics import pipeline_topics

log = logging.getLogger(__name__)

STARTUP_LOGIN_TIMEOUT = 10.0  # seconds, for the Horizon login check at start-up


class StartupFailed(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def connect_at_startup(
    vcenter: VCenterSettings, settings: Settings, stop: threading.Event
) -> Session | None:
    """A session, or None when the vCenter stayed unreachable for `startupTimeout`."""
    producer = settings.producer
    deadline = time.monotonic() + producer.startup_timeout.total_seconds()
    delay = producer.reconnect.initial_delay.total_seconds()
    while True:
        try:
            return connect(vcenter, producer.request_timeout.total_seconds())
        except VCenterUnavailable as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stop.is_set():
                log.error("%s (gave up after startupTimeout)", exc)
                return None
            log.warning("%s; retrying", exc)
            stop.wait(min(delay, remaining))
            delay = min(delay * 2, producer.reconnect.max_delay.total_seconds())


def connect_all(settings: Settings, stop: threading.Event) -> dict[str, Session | None]:
    """Log in to every vCenter at once; ConfigurationProblem for a wrong one."""
    with ThreadPoolExecutor(max_workers=len(settings.vcenters)) as pool:
        futures = {
            vc.name: pool.submit(connect_at_startup, vc, settings, stop) for vc in settings.vcenters
        }
        sessions: dict[str, Session | None] = {}
        problems: list[str] = []
        for name, future in futures.items():
            try:
                sessions[name] = future.result()
            except ConfigurationProblem as exc:
                problems.append(str(exc))
                sessions[name] = None
    if problems:
        for session in sessions.values():
            if session is not None:
                session.close()
        raise StartupFailed("\n".join(problems), EXIT_CONFIG)
    if not any(sessions.values()):
        raise StartupFailed("no vCenter could be reached", EXIT_RUNTIME)
    return sessions


def check_horizon_logins(settings: Settings) -> None:
    """Refused Horizon credentials exit 2, as a vCenter's do. A server that is down is
    not waited for: its worker keeps trying, and never holds up the others."""
    if not settings.horizon:
        return
    # short: a server that does not answer must not hold up the vCenters' start
    timeout = min(settings.producer.request_timeout.total_seconds(), STARTUP_LOGIN_TIMEOUT)
    with ThreadPoolExecutor(max_workers=len(settings.horizon)) as pool:
        problems = [p for p in pool.map(lambda h: check_login(h, timeout), settings.horizon) if p]
    if problems:
        raise StartupFailed("\n".join(problems), EXIT_CONFIG)


def create_topics(settings: Settings, stop: threading.Event) -> None:
    """The topics the producer writes, with the pipeline's layout, if missing."""
    mine = {
        settings.topics.events,
        settings.topics.checkpoints,
        settings.topics.alarm_definitions,
    }
    specs = [spec for spec in pipeline_topics(settings) if spec.name in mine]
    deadline = time.monotonic() + settings.producer.startup_timeout.total_seconds()
    while True:
        try:
            remaining = deadline - time.monotonic()
            ensure_topics(settings.kafka, specs, timeout=max(1.0, min(10.0, remaining)))
            return
        except KafkaLoginRejected as exc:  # retrying cannot make a password right
            raise StartupFailed(str(exc), EXIT_CONFIG) from None
        except KafkaException as exc:
            if time.monotonic() > deadline or stop.is_set():
                raise StartupFailed(
                    f"Kafka at {settings.kafka.bootstrap_servers} unavailable: {exc}", EXIT_RUNTIME
                ) from None
            log.warning("Kafka unavailable (%s); retrying", exc)
            stop.wait(2)


def schedule_threads(producer: ProducerSettings) -> None:
    """`producer.batchScheduling`, for the calling thread: called before any worker
    starts, so they and librdkafka's threads inherit it."""
    if not producer.batch_scheduling:
        return
    problem = batch_scheduling()
    if problem is not None:
        log.warning("producer.batchScheduling: %s; the default policy stays", problem)


def install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: finishing the open transactions", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run(settings: Settings, server: ObservabilityServer | None, health: Health) -> int:
    """The producer until a signal (0), or until start-up fails (1 or 2)."""
    if not settings.vcenters and not settings.horizon:
        log.error(
            "configuration error: vcenters: at least one vCenter (or horizon server) is needed"
        )
        return EXIT_CONFIG
    for vcenter in settings.vcenters:
        if vcenter.insecure:
            log.warning("vCenter %s: TLS certificate NOT verified (insecure)", vcenter.name)
    for horizon in settings.horizon:
        if horizon.insecure:
            log.warning("Horizon %s: TLS certificate NOT verified (insecure)", horizon.name)
    schedule_threads(settings.producer)
    stop = threading.Event()
    install_signal_handlers(stop)
    try:
        check_horizon_logins(settings)
        sessions = connect_all(settings, stop) if settings.vcenters else {}
        create_topics(settings, stop)
    except StartupFailed as exc:
        for line in str(exc).splitlines():
            log.error("%s%s", "configuration error: " if exc.exit_code == EXIT_CONFIG else "", line)
        return exc.exit_code
    keys = CheckpointKeys()
    keys.register({name: s.identity.instance_uuid for name, s in sessions.items() if s is not None})
    workers: list[VCenterWorker | HorizonWorker] = [
        VCenterWorker(vc, settings, stop, health, keys, sessions.get(vc.name))
        for vc in settings.vcenters
    ]
    workers += [HorizonWorker(h, settings, stop, health) for h in settings.horizon]
    for worker in workers:
        worker.start()
    log.info(
        "producing from %d vCenter(s) and %d Horizon server(s)",
        len(settings.vcenters),
        len(settings.horizon),
    )
    while not stop.wait(0.5):
        if not any(worker.is_alive() for worker in workers):
            break
    stop.set()
    grace = settings.producer.transaction_timeout.total_seconds() + 10
    for worker in workers:
        worker.join(grace)
    if server is not None:
        server.stop()
    failed = [worker for worker in workers if worker.failure is not None]
    return EXIT_RUNTIME if failed and len(failed) == len(workers) else EXIT_OK
