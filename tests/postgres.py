"""A real PostgreSQL for the service's tests, from Debian's packages
(``scripts/install-test-deps.sh`` installs ``postgresql``).

initdb refuses to run as root, so the cluster is made and run as the ``postgres`` user (when
the tests run as root; as the current user otherwise), in a private directory under /tmp that
the user owns, listening on a Unix socket only (no TCP port to collide with). ``fsync`` is off:
the cluster is thrown away. :func:`start` returns it running; :meth:`Postgres.stop` always
ends it, and the fixtures call it in a ``finally``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

MISSING = "PostgreSQL is not installed (scripts/install-test-deps.sh installs Debian's postgresql)"


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` with initdb and pg_ctl, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _as_owner(argv: list[str]) -> list[str]:
    """Run as ``postgres`` when we are root (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class Postgres:
    """A running cluster: its socket directory, data directory and binaries."""

    bin: Path
    root: Path

    @property
    def socket_dir(self) -> Path:
        """Where the server's Unix socket is."""
        return self.root / "socket"

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    @property
    def user(self) -> str:
        """The database superuser."""
        return "postgres"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` over the Unix socket."""
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.socket_dir}"

    def create_database(self, prefix: str = "vmimage") -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=str(self.socket_dir), user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server at once and remove its directory."""
        try:
            subprocess.run(_as_owner([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m",
                                      "immediate", "-w", "stop"]),
                           capture_output=True, timeout=60, check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start() -> Postgres:
    """A fresh cluster, running; skips the test when PostgreSQL is not installed."""
    bin_dir = binaries()
    if bin_dir is None or (shutil.which("runuser") is None and os.geteuid() == 0):
        pytest.skip(MISSING)
    root = Path(tempfile.mkdtemp(prefix="vmimage-pg-"))
    server = Postgres(bin_dir, root)
    try:
        server.socket_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
            shutil.chown(server.socket_dir, "postgres")
        subprocess.run(_as_owner([str(bin_dir / "initdb"), "-D", str(server.data), "-A", "trust",
                                  "-U", server.user, "-E", "UTF8", "--locale=C", "--no-sync"]),
                       capture_output=True, timeout=120, check=True)
        options = (f"-k {server.socket_dir} -c listen_addresses='' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(server.data), "-w", "-t",
                                  "60", "-l", str(root / "server.log"), "-o", options, "start"]),
                       capture_output=True, timeout=90, check=True)
    except BaseException:
        server.stop()
        raise
    return server
