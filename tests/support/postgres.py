"""A real PostgreSQL (Debian's binaries) for the secrets rotation tests: TLS on, SCRAM logins, one `api` user.

initdb refuses root, so the server runs as the `postgres` user (runuser) from a data directory it owns; the
certificate is self-signed (openssl), which `tls: require` accepts and `verify-full` must refuse.
"""
from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
SUPERUSER_PASSWORD = "superuser-pw"
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Server:
    host: str
    port: int

    def admin(self):
        """A superuser connection (TLS, certificate not checked: it is self-signed)."""
        import pg8000.native

        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return pg8000.native.Connection(user="postgres", password=SUPERUSER_PASSWORD, host=self.host, port=self.port,
                                        database="postgres", ssl_context=context, timeout=10)

    def set_password(self, user: str, password: str) -> None:
        import pg8000.native

        connection = self.admin()
        try:
            connection.run(f"ALTER USER {pg8000.native.identifier(user)} WITH PASSWORD "
                           f"{pg8000.native.literal(password)}")
        finally:
            connection.close()


def _as_postgres(*command: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True,
                          timeout=START_TIMEOUT_S, **options)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tls_server() -> Iterator[Server]:
    """Start the server, yield it, stop it (the `tls_postgres` fixture, tests/support/fixtures/secrets.py)."""
    if not BINARIES or os.geteuid() != 0 or not shutil.which("openssl"):
        pytest.skip("needs Debian's postgresql, root (to run it as the postgres user) and openssl")
    bin_dir = BINARIES[-1]
    # Not under pytest's tmp dir: that one is private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="eks-platform-postgres-"))
    shutil.chown(root, "postgres")
    try:
        yield from _serve(bin_dir, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _serve(bin_dir: Path, root: Path) -> Iterator[Server]:
    data, sockets, password_file = root / "data", root / "run", root / "pw"
    sockets.mkdir()
    shutil.chown(sockets, "postgres")
    password_file.write_text(SUPERUSER_PASSWORD)
    shutil.chown(password_file, "postgres")
    done = _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "scram-sha-256",
                        f"--pwfile={password_file}", "--no-sync")
    assert done.returncode == 0, done.stderr
    done = _as_postgres("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=db.internal", "-keyout", str(data / "server.key"), "-out", str(data / "server.crt"))
    assert done.returncode == 0, done.stderr
    os.chmod(data / "server.key", 0o600)
    (data / "pg_hba.conf").write_text("local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
    port = _free_port()
    done = _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t",
                        str(START_TIMEOUT_S), "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c ssl=on",
                        "start")
    assert done.returncode == 0, done.stderr + (root / "log").read_text()
    server = Server("127.0.0.1", port)
    try:
        admin = server.admin()
        admin.run("CREATE USER api WITH PASSWORD 'the-real-password'")
        admin.run("CREATE DATABASE api OWNER api")
        admin.close()
        yield server
    finally:
        _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
