"""govmomi's vCenter simulator, over TLS with a certificate made for 127.0.0.1."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path

from devenv.process import ChildProcess, cache_dir, free_port

# vcsim v0.46.3 rejects every login when its -username contains "@" (it compares the
# URL-escaped form), so the simulator user is a plain name
USERNAME = "vcstream"
PASSWORD = "vcsim-password"


def vcsim_binary() -> str:
    candidate = cache_dir() / "bin" / "vcsim"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("vcsim")
    if found:
        return found
    raise FileNotFoundError(f"no vcsim in {candidate.parent}: run deploy/local/install.sh first")


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; it is also the CA to trust."""
    cert, key = directory / "vcsim.crt", directory / "vcsim.key"
    if not cert.exists():
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return cert, key


class LocalVcsim:
    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        tls: bool = True,
        datacenters: int = 1,
        clusters: int = 1,
        hosts: int = 2,
        vms: int = 2,
        username: str = USERNAME,
        password: str = PASSWORD,
        login_required: bool = True,
    ) -> None:
        self.workdir = workdir
        # vcsim takes its credentials only as flags, which `ps` shows to every user:
        # without them it accepts any login. Tests of a refused login need them; ./dev run
        # does not, so its password stays off the command line
        self.login_required = login_required
        self.port = port or free_port()
        self.tls = tls
        self.inventory = {"-dc": datacenters, "-cluster": clusters, "-host": hosts, "-vm": vms}
        self.username = username
        self.password = password
        self.child = ChildProcess("vcsim", workdir)
        self.ca_file: Path | None = None

    @property
    def url(self) -> str:
        """The SDK URL as a user would configure it (and as CloudEvent `source` shows it)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/sdk"

    def start(self, timeout: float = 30) -> LocalVcsim:
        argv = [vcsim_binary(), "-l", f"127.0.0.1:{self.port}", f"-tls={str(self.tls).lower()}"]
        if self.login_required:
            argv += ["-username", self.username, "-password", self.password]
        for flag, count in self.inventory.items():
            argv += [flag, str(count)]
        if self.tls:
            cert, key = make_certificate(self.workdir)
            self.ca_file = cert
            argv += ["-tlscert", str(cert), "-tlskey", str(key)]
        self.child.spawn(argv)
        self.child.wait_ready(self._answers, timeout, "vcsim")
        return self

    def ssl_context(self) -> ssl.SSLContext:
        if self.ca_file is None:
            return ssl.create_default_context()
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(
                self.url.replace("/sdk", "/about"), timeout=1, context=self.ssl_context()
            ):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.child.stop()

    def kill(self) -> None:
        self.child.kill()

    def restart(self) -> None:
        """A vCenter restart: the same address, a fresh inventory and no sessions."""
        self.stop()
        self.start()
