"""VMware Event Broker Appliance's event router, run as VEBA ran it, for bench.producer_router:
a process reading vcsim, and the CloudEvents receiver its Knative processor delivers to.

The router is `vmware-event-router` of VEBA's release v0.8.0 (commit 9de52bf, its main
package `cmd/router`; the code is that of v0.7.5, the last appliance that shipped the
router, with newer dependencies). Nothing of VEBA is in this repository: its binary is
looked for at `.cache/veba-router-v0.8.0/router` (or `--router PATH`), built by whoever
runs the bench from VEBA's own source.

Its configuration is the appliance's (v0.7.5 `vmware-event-router-config-template.yaml`,
run with `-log-level info`): the vCenter provider with `checkpoint: false`, the Knative
processor with `encoding: binary`, TLS verified (vcsim's CA as `certificates.rootCAs`,
where the appliance trusts a real vCenter's certificate). The router's fixed behaviour:
ReadNextEvents of up to 100 events once a second, and after a read that found none a
sleep of 1, 2, 4, then 5 s (no jitter) before the next tick.

The one change from the appliance: its Knative Broker becomes a `destination.uri` on
127.0.0.1. The Knative processor still asks for Kubernetes' in-cluster configuration
(`rest.InClusterConfig`, which reads a service-account token at a fixed path under
/var/run/secrets) although a URI destination never calls the API: the router runs in a
mount namespace of its own (`unshare`) with a tmpfs over /run holding a dummy token, so
nothing on the machine changes, and KUBERNETES_SERVICE_HOST points at a closed port.
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import shutil
import signal
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.producer import CommittedReader
from devenv import LocalVcsim
from devenv.process import ChildProcess, cache_dir, free_port

VERSION = "v0.8.0"
COMMIT = "9de52bfa1ea66478a73c8539ed9a4ae00b66994d"
# what the router calls an EventEx posted by devenv.event_flood: its eventTypeId
BENCH_SUBJECT = "com.example.bench"
TOKEN_DIR = "secrets/kubernetes.io/serviceaccount"  # under /var/run, as client-go reads it


def router_binary(given: Path | None = None) -> Path:
    path = given or cache_dir() / f"veba-router-{VERSION}" / "router"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise FileNotFoundError(
            f"no VEBA event router at {path}: this bench needs the binary of "
            f"vmware-samples/vcenter-event-broker-appliance {VERSION} ({COMMIT[:7]}), "
            "main package vmware-event-router/cmd/router, at that path or given with --router"
        )
    return path


def write_config(
    path: Path, sim: LocalVcsim, receiver_port: int, checkpoint: bool, workdir: Path
) -> Path:
    checkpoint_dir = f"\n    checkpointDir: {workdir / 'checkpoints'}" if checkpoint else ""
    if checkpoint:
        (workdir / "checkpoints").mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""apiVersion: event-router.vmware.com/v1alpha1
kind: RouterConfig
metadata:
  name: bench
eventProvider:
  type: vcenter
  name: bench
  vcenter:
    address: {sim.url}
    insecureSSL: false
    checkpoint: {str(checkpoint).lower()}{checkpoint_dir}
    auth:
      type: basic_auth
      basicAuth:
        username: {sim.username}
        password: {sim.password}
eventProcessor:
  type: knative
  name: bench
  knative:
    encoding: binary
    insecureSSL: false
    destination:
      uri:
        scheme: http
        host: 127.0.0.1:{receiver_port}
metricsProvider:
  type: default
  name: bench
  default:
    bindAddress: 127.0.0.1:{free_port()}
certificates:
  rootCAs:
    - {sim.ca_file}
"""
    )
    return path


def in_own_mount_namespace(argv: list[str]) -> list[str]:
    """`argv` run where /var/run holds a dummy service-account token only it sees.

    unshare execs the shell, which execs the router: the pid Popen returns is the
    router's, so /proc accounts for it alone."""
    run = Path("/var/run").resolve()
    token_dir = run / TOKEN_DIR
    script = (
        f"mount -t tmpfs -o size=64k bench-router {run} && mkdir -p {token_dir} "
        f'&& echo bench > {token_dir}/token && exec "$@"'
    )
    # root makes a mount namespace directly; anyone else needs a user namespace for it
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    unshare = shutil.which("unshare")
    if unshare is None:
        raise FileNotFoundError("unshare (util-linux) is needed to run the router")
    return [unshare, *user, "--mount", "--propagation", "private", "--", "sh", "-c", script,
            "sh", *argv]  # fmt: skip


class RouterUnderTest:
    """The router in its own process, logging as the appliance runs it (info)."""

    def __init__(self, binary: Path, config: Path, workdir: Path) -> None:
        self.child = ChildProcess("router", workdir)
        argv = [str(binary), "-config", str(config), "-log-level", "info"]
        self.child.spawn(
            in_own_mount_namespace(argv),
            # in-cluster configuration: an address nothing listens on (never called)
            env={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "1"},
        )

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def log_path(self) -> Path:
        return self.child.log_path

    def wait_until_streaming(self, timeout: float = 60) -> None:
        def streaming() -> bool:
            return "begin of event stream" in self.child.log_path.read_text(errors="replace")

        self.child.wait_ready(streaming, timeout, "the VEBA router")
        comm = Path(f"/proc/{self.pid}/comm").read_text().strip()
        if comm != "router":  # the CPU and RSS read would be the wrapper's
            raise RuntimeError(f"pid {self.pid} is {comm!r}, not the router")

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def peak_rss_mb(self) -> float:
        return self.child.rss_bytes() / 2**20

    def stop(self) -> None:
        self.child.stop()


def receive(port: int, out: Any, ready: Any) -> None:
    """In its own process, so nothing else delays a timestamp: answers every POST 202 as
    a Knative Broker's ingress does, over kept-alive HTTP/1.1 connections (HTTP/1.0 would
    make the router connect anew per event), and sends (received at, created at) for each
    bench event."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            seen_at = time.time()
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            # binary encoding: the attributes are headers; time is the event's createdTime
            if self.headers.get("ce-subject") == BENCH_SUBJECT:
                created = datetime.fromisoformat(self.headers["ce-time"].replace("Z", "+00:00"))
                out.put([(seen_at, created.timestamp())])

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    ready.set()
    server.serve_forever()


class EventReceiver(CommittedReader):
    """The HTTP receiver the router delivers to, counted as CommittedReader counts what
    the producer committed: its collect and settle, another source."""

    def __init__(self) -> None:  # CommittedReader's state without its consumer process
        self.port = free_port()
        self.queue = multiprocessing.Queue()
        self.ready = multiprocessing.Event()
        self.process = multiprocessing.Process(
            target=receive, args=(self.port, self.queue, self.ready), daemon=True
        )
        self.seen = []

    def start(self) -> None:
        self.process.start()
        if not self.ready.wait(30):
            raise TimeoutError("the CloudEvents receiver did not start")

    def stop(self) -> None:
        self.process.terminate()  # it serves until then
        self.process.join(10)


def describe(binary: Path, checkpoint: bool) -> dict[str, Any]:
    return {
        "version": VERSION,
        "commit": COMMIT,
        "binary": str(binary),
        "command": shlex.join([binary.name, "-config", "FILE", "-log-level", "info"]),
        "provider": "vcenter: ReadNextEvents(100) every 1 s, 1-5 s back-off when empty",
        "checkpoint": checkpoint,
        "processor": "knative, encoding binary, destination.uri: HTTP receiver (202)",
    }
