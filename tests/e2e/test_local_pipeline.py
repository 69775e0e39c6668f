"""The README's run command, end to end: `./dev run` runs exactly this
LocalPipeline. Events made in vcsim through the real vSphere API reach the Knative
stand-in (raw, and alarms enriched), alarm messages reach the Slack stand-in, every
event reaches audit storage, a real Prometheus scrapes every role, and every query of
the Grafana dashboard returns data. Stopping is graceful: every role exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from devenv import LocalKafka, LocalVcsim
from devenv.activity import connect, post_alarm_status, wait_task
from devenv.dashboard import dashboard_queries
from devenv.horizon import HorizonStandIn
from devenv.pipeline import LocalPipeline, local_config
from devenv.process import REPO, free_port, wait_until
from devenv.prometheus import LocalPrometheus
from devenv.receivers import CloudEventsDisplay, SlackConsole

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENRICHED_ALARM = "com.vmware.vsphere.AlarmStatusChangedEvent.v0.AlarmInfo"


class Running:
    def __init__(
        self,
        pipeline: LocalPipeline,
        display: CloudEventsDisplay,
        slack: SlackConsole,
        vcsim: LocalVcsim,
        workdir: Path,
    ) -> None:
        self.pipeline = pipeline
        self.display = display
        self.slack = slack
        self.vcsim = vcsim
        self.workdir = workdir


@pytest.fixture
def running(
    kafka_factory: Callable[..., LocalKafka],
    vcsim_factory: Callable[..., LocalVcsim],
    tmp_path: Path,
) -> Iterator[Running]:
    kafka = kafka_factory()
    vcsim = vcsim_factory()
    display = CloudEventsDisplay(free_port(), None)
    slack = SlackConsole(free_port(), None)
    display.start()
    slack.start()
    # Horizon beside vCenter, as under ./dev run: its events go through the same pipeline
    horizon = HorizonStandIn().start()
    config = local_config(kafka, vcsim, tmp_path, display.url, slack.url, horizon)
    pipeline = LocalPipeline(
        tmp_path,
        LocalPipeline.write_config(tmp_path, config),
        env={"VCSIM_PASSWORD": vcsim.password, "HORIZON_PASSWORD": horizon.password},
    )
    try:
        pipeline.start()
        pipeline.wait_healthy(timeout=180)
        horizon.emit(3, "VLSI_USERLOGGEDIN_REST", "AUDIT_SUCCESS")
        yield Running(pipeline, display, slack, vcsim, tmp_path)
    finally:
        pipeline.stop()
        display.stop()
        slack.stop()
        horizon.stop()


def make_events(vcsim: LocalVcsim) -> tuple[str, str]:
    """Power a VM off and on, and turn an alarm red on a host: the real API, no fakes."""
    si = connect(vcsim)
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.VirtualMachine, vim.HostSystem], True
    )
    vm = next(obj for obj in view.view if isinstance(obj, vim.VirtualMachine))
    host = next(obj for obj in view.view if isinstance(obj, vim.HostSystem))
    view.Destroy()
    wait_task(vm.PowerOffVM_Task())
    wait_task(vm.PowerOnVM_Task())
    post_alarm_status(si, "alarm-11", host, "red", "green")
    alarm_name = str(vim.alarm.Alarm("alarm-11", si._stub).info.name)
    return str(vm.name), alarm_name


def knative_types_for(display: CloudEventsDisplay, vm_name: str) -> set[str]:
    types = set()
    for event in list(display.received):
        data = event.get_data()
        if isinstance(data, dict) and (data.get("Vm") or {}).get("Name") == vm_name:
            types.add(event.get_type())
    return types


def enriched_alarms(display: CloudEventsDisplay) -> list[Any]:
    return [event for event in list(display.received) if event.get_type() == ENRICHED_ALARM]


def audit_types(running: Running) -> list[str]:
    result = subprocess.run(
        running.pipeline.vcstream_argv("audit", "query"),
        env={**os.environ, **running.pipeline.env},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [line["event"]["type"] for line in lines]


def test_vcsim_events_reach_knative_slack_and_audit_and_fill_the_dashboard(
    running: Running, tmp_path: Path
) -> None:
    vm_name, alarm_name = make_events(running.vcsim)

    power = {
        "com.vmware.vsphere.VmPoweredOffEvent.v0",
        "com.vmware.vsphere.VmPoweredOnEvent.v0",
    }
    wait_until(lambda: power <= knative_types_for(running.display, vm_name), 120, "power events")
    wait_until(lambda: bool(enriched_alarms(running.display)), 120, "an enriched alarm")
    alarm = enriched_alarms(running.display)[0]
    assert alarm.get_data()["AlarmInfo"]["Name"] == alarm_name
    assert alarm.get_data()["To"] == "red"

    wait_until(
        lambda: any(alarm_name in json.dumps(m) for m in running.slack.received),
        120,
        "the Slack alarm message",
    )

    wait_until(
        lambda: (
            {"com.vmware.vsphere.VmPoweredOffEvent.v0", ENRICHED_ALARM} <= set(audit_types(running))
        ),
        120,
        "audit records",
    )

    targets = {
        role.replace("-", "_"): [f"127.0.0.1:{port}"]
        for role, port in running.pipeline.metrics_ports.items()
    }
    alerts = REPO / "deploy" / "prometheus" / "alerts.yml"
    prometheus = LocalPrometheus(tmp_path / "prometheus", targets, rule_files=[alerts]).start()
    try:
        health = prometheus.wait_scraped(timeout=60)
        assert set(health.values()) == {"up"}, health
        # the shipped alerting rules load and evaluate on the real metrics without error
        wait_until(
            lambda: all(r["health"] != "unknown" for r in prometheus.rules()), 60, "rule runs"
        )
        broken = {r["name"]: r.get("lastError") for r in prometheus.rules() if r["health"] != "ok"}
        assert broken == {}, broken
        empty = []
        deadline = time.monotonic() + 60
        for query in dashboard_queries():
            while not prometheus.query(query.promql) and time.monotonic() < deadline:
                time.sleep(1)
            if not prometheus.query(query.promql):
                empty.append(f"{query.where}: {query.promql}")
        assert empty == [], "dashboard queries without data:\n" + "\n".join(empty)
    finally:
        prometheus.stop()

    running.pipeline.stop()
    exits = {role: child.returncode for role, child in running.pipeline.processes.items()}
    assert exits == dict.fromkeys(exits, 0), exits
