"""`./dev run`'s Horizon stand-in: configured beside vcsim, emitting now and then, and
stopping at once when it never started."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from devenv import LocalKafka, LocalVcsim
from devenv.horizon import HorizonActivity, HorizonStandIn
from devenv.pipeline import LocalPipeline, local_config
from devenv.process import free_port, wait_until
from vcstream.settings import load_settings


def test_dev_run_config_reads_the_stand_in_beside_vcsim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = LocalKafka(tmp_path / "kafka", port=free_port())  # never started: only its address
    vcsim = LocalVcsim(tmp_path / "vcsim", port=free_port(), login_required=False)
    horizon = HorizonStandIn(free_port())
    config = local_config(kafka, vcsim, tmp_path, "http://127.0.0.1:1", "http://x", horizon)
    monkeypatch.setenv("VCSIM_PASSWORD", "x")
    monkeypatch.setenv("HORIZON_PASSWORD", horizon.password)
    settings = load_settings(LocalPipeline.write_config(tmp_path, config))
    [server] = settings.horizon
    assert (server.url, server.username) == (horizon.url, horizon.username)
    assert server.password.get_secret_value() == horizon.password
    assert [vc.name for vc in settings.vcenters] == ["vcsim"]


def test_horizon_activity_emits_audit_events_until_stopped() -> None:
    horizon = HorizonStandIn()
    activity = HorizonActivity(horizon, period=0.05).start()
    wait_until(lambda: len(horizon.event_ids()) >= 3, 10, "three audit events")
    activity.stop()
    emitted = len(horizon.event_ids())
    # the thread is gone: nothing is emitted after stop()
    assert not activity._thread.is_alive()
    assert len(horizon.event_ids()) == emitted


def test_a_horizon_stand_in_that_never_started_stops_at_once() -> None:
    horizon = HorizonStandIn(free_port())
    stopping = threading.Thread(target=horizon.stop, daemon=True)
    stopping.start()
    stopping.join(timeout=10)
    assert not stopping.is_alive()
