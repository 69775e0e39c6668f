"""Running the app as a long-lived worker process (signals, exit code, health)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from streams.faust_kafka import WorkerPropertyError, check_faust_login
from vcstream.exits import EXIT_CONFIG, EXIT_RUNTIME
from vcstream.kafka import KafkaLoginRejected
from vcstream.observability import Flag, Health
from vcstream.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings, observe: Callable[[Health], Any]) -> int:
    """Serve until stopped (SIGTERM/SIGINT: 0) or crashed (1); 2 when the Kafka settings
    cannot work: a client property the worker cannot apply, a login the brokers refuse."""
    from faust.worker import Worker

    from streams.app import build

    try:
        # before anything else connects, and with aiokafka, so what is checked is what
        # the worker's own clients will do
        check_faust_login(settings.kafka)
    except (WorkerPropertyError, KafkaLoginRejected) as exc:
        for line in str(exc).splitlines():
            log.error("configuration error: %s", line)
        return EXIT_CONFIG
    health = Health()
    flag = Flag("starting")
    health.add("streams", flag)
    server = observe(health)
    from streams.discovery import DiscoveryError

    try:
        streams = build(settings, flag)
    except DiscoveryError as exc:  # what the configuration names cannot be run
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    except Exception as exc:
        log.error("streams worker cannot start: %s", exc)
        return EXIT_RUNTIME
    worker = Worker(
        streams.app,
        loglevel=logging.getLevelName(logging.getLogger().level),
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    else:
        code = 0
    finally:
        if server is not None:
            server.stop()
    crashed = streams.app.crash_reason is not None
    return 1 if crashed or code else 0
