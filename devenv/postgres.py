"""A throw-away PostgreSQL server from Debian's package, on a port of our choosing."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from devenv.process import free_port, wait_until


def postgres_bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if not candidates:
        raise FileNotFoundError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: "
            "run deploy/local/install.sh (it installs Debian's postgresql package)"
        )
    return candidates[0].parent


class LocalPostgres:
    """Runs as the `postgres` system user when we are root: the server refuses root."""

    def __init__(self, workdir: Path, port: int | None = None, database: str = "vcstream") -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.database = database
        self.user = "vcstream"
        self.password = "vcstream-test"
        self.bindir = postgres_bindir()
        self.datadir = workdir / "pgdata"
        self.logfile = workdir / "postgres.log"
        self._run_as = "postgres" if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _cmd(self, argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        full = list(argv)
        if self._run_as:
            full = [shutil.which("runuser") or "runuser", "-u", self._run_as, "--", *full]
        return subprocess.run(full, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            entry = pwd.getpwnam(self._run_as)
            for path in (self.workdir, *self.workdir.parents):
                if path == Path("/"):
                    break
                # the server user must be able to reach its data dir
                path.chmod(path.stat().st_mode | 0o011)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        if not (self.datadir / "PG_VERSION").exists():
            pwfile = self.workdir / "pwfile"
            pwfile.write_text(self.password + "\n")
            if self._run_as:
                entry = pwd.getpwnam(self._run_as)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            self._cmd(
                [
                    str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", self.user,
                    "--pwfile", str(pwfile), "-A", "scram-sha-256", "--no-sync", "-E", "UTF8",
                ]
            )  # fmt: skip

    def start(self, timeout: float = 30) -> LocalPostgres:
        self._prepare()
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._cmd(
            [
                str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
                "-o", options, "-w", "-t", str(int(timeout)), "start",
            ]
        )  # fmt: skip
        wait_until(self._accepts, timeout, "PostgreSQL")
        self._create_database()
        return self

    def _accepts(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self._dsn_for("postgres"), connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def _dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self._dsn_for("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self, mode: str = "fast") -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._cmd([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "stop"])

    def restart(self) -> None:
        self.stop()
        self.start()
