"""What keeps `./dev run` from leaving processes behind or hanging: services die with the
process that started them, a busy port is named before anything starts, a stand-in that
never started stops at once, and the broker readiness check accepts only its own broker."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devenv import LocalKafka
from devenv.process import REPO, free_port, wait_until
from devenv.receivers import CloudEventsDisplay

# a parent that starts one service the devenv way, prints its pid and waits to be killed
PARENT = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from devenv.process import ChildProcess\n"
    "child = ChildProcess('sleeper', Path(sys.argv[1]))\n"
    "child.spawn([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for init to reap it counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_a_service_dies_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert not gone(child)
    parent.kill()  # no clean-up runs: only the kernel's parent-death signal is left
    parent.wait()
    wait_until(lambda: gone(child), 30, "the orphaned service's exit")


def test_a_busy_port_is_named_with_its_option_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        kafka = free_port()
        result = subprocess.run(
            [
                *(sys.executable, "-m", "devenv.up", "--workdir", str(tmp_path)),
                *("--kafka-port", str(kafka), "--vcsim-port", str(free_port())),
                *("--knative-port", str(busy), "--slack-port", str(free_port())),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {busy} is in use (--knative-port)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "kafka").exists()  # nothing was started


def test_a_stand_in_that_never_started_stops_at_once() -> None:
    display = CloudEventsDisplay(free_port(), None)
    stopping = threading.Thread(target=display.stop, daemon=True)
    stopping.start()
    stopping.join(timeout=10)
    assert not stopping.is_alive(), "stop() waited for a server loop that never ran"


@pytest.mark.integration
def test_broker_readiness_accepts_only_its_own_cluster(kafka: LocalKafka, tmp_path: Path) -> None:
    # a second broker's storage, formatted with another cluster id, on the port where the
    # session's broker answers (as another instance's broker on 9092 would)
    other = LocalKafka(tmp_path / "other", port=kafka.port)
    (other.workdir / "data").mkdir(parents=True)
    (other.workdir / "data" / "meta.properties").write_text("cluster.id=not-that-cluster\n")
    assert other.cluster_id == "not-that-cluster"
    assert not other._answers_metadata()  # start() waits on this: it never accepts it
    assert kafka.cluster_id is not None and kafka._answers_metadata()


@pytest.mark.integration
def test_vcsim_for_dev_run_has_no_password_on_its_command_line(tmp_path: Path) -> None:
    from devenv import LocalVcsim
    from devenv.activity import connect

    sim = LocalVcsim(tmp_path, login_required=False, password="not-in-ps-" + str(free_port()))
    sim.start()
    try:
        argv = Path(f"/proc/{sim.child.pid}/cmdline").read_bytes().split(b"\0")
        assert not [arg for arg in argv if sim.password.encode() in arg]
        connect(sim).content.sessionManager.Logout()  # the pipeline's login still works
    finally:
        sim.stop()
