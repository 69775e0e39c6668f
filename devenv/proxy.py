"""A forward HTTP proxy (Debian's tinyproxy) on a free port, for the tests of outbound
proxies: it logs every request it passes on, CONNECT tunnels included."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from devenv.process import ChildProcess, free_port


class LocalProxy:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.child = ChildProcess("tinyproxy", workdir)
        self.log_path = workdir / "requests.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> LocalProxy:
        binary = shutil.which("tinyproxy")
        if binary is None:
            raise FileNotFoundError("no tinyproxy: run deploy/local/install.sh first")
        config = self.workdir / "tinyproxy.conf"
        config.write_text(
            f"Port {self.port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 20\n"
            f'LogFile "{self.log_path}"\nLogLevel Info\nAllow 127.0.0.1\n'
            # no ConnectPort line: CONNECT to any port (the test services' are random)
        )
        self.child.spawn([binary, "-d", "-c", str(config)])  # -d: in the foreground
        self.child.wait_ready(self._listening, timeout, "tinyproxy")
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def requests(self) -> list[str]:
        """The request lines it passed on, e.g. `CONNECT 127.0.0.1:8989 HTTP/1.1`."""
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line.split("): ", 1)[1] for line in lines if "Request (file descriptor" in line]

    def stop(self) -> None:
        self.child.stop()
