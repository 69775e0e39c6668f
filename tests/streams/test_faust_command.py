"""The worker started the Faust way, `faust -A streams.app worker`, behaves as
`vcstream streams worker`: same settings, same logging, /healthz served, and no Faust
web server (faust's worker command turns it on unless told otherwise)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from devenv.process import free_port
from tests.streams.helpers import StreamsWorker, consume, produce, streams_config
from tests.streams.test_worker import vsphere

pytestmark = pytest.mark.integration


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_faust_command_logs_and_serves_as_the_vcstream_command(kafka, topic_name, tmp_path: Path):
    config = streams_config(tmp_path, kafka.bootstrap_servers, topic_name)
    web_port = free_port()
    argv = [
        sys.executable,
        "-m",
        "faust",
        "-A",
        "streams.app",
        "worker",
        "--web-port",
        str(web_port),
    ]
    worker = StreamsWorker(config, env={"VCSTREAM_CONFIG": str(config)}, argv=argv)
    settings = worker.settings
    try:
        worker.start()  # healthy: /healthz answers on the configured metrics port
        produce(settings, settings.topics.events, [vsphere("VmPoweredOnEvent")])
        assert len(consume(settings, settings.topics.audit, 1, timeout=60)) == 1
        web_served = listening(web_port)
    finally:
        code = worker.stop()

    log = worker.log()
    # vcstream's own INFO lines, in its format, which Faust's command would log at WARN
    assert " INFO streams.discovery: processor vm_power -> vcenter.vm-power" in log
    assert " INFO streams.definitions_reader: alarm definitions loaded" in log
    assert not web_served
    assert code == 0
