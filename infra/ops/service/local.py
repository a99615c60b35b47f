"""PostgreSQL and RabbitMQ from the Debian packages, each started on free ports under a temporary directory.

`invoke service.check` runs a service against them and the tests use them as fixtures: real servers, never
mocks. Both refuse to run as root (initdb) or switch users (rabbitmq-server), so as root each runs as its
package's system user with a data directory that user owns. Every process started here is stopped by its id.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from infra.ops.errors import Failed

READY_TIMEOUT_S = 120.0  # RabbitMQ takes ~35 s to boot on a loaded 2-core machine
APT_HINT = ("install it: apt-get install -y --no-install-recommends rabbitmq-server postgresql")


class DependencyFailed(Failed):
    """A local dependency could not be started or did not become ready in time; the message says which and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_user(user: str) -> list[str]:
    """The command prefix that runs as `user` when we are root (no prefix otherwise)."""
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


def _owned_dir(user: str, prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)
    return path


@dataclass
class LocalServer(ABC):
    """One server process (and its helpers), started in its own process group and stopped by that group's id."""

    name: str
    ready_timeout_s: float = READY_TIMEOUT_S
    root: Path | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)
    started_in_s: float = 0.0

    def _spawn(self, args: list[str], env: dict[str, str] | None = None, log_name: str = "server.log") -> None:
        assert self.root is not None
        log = open(self.root.parent / f"{self.root.name}-{log_name}", "ab")  # noqa: SIM115 - closed with the process
        self.processes.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               env={**os.environ, **(env or {})}, start_new_session=True))
        log.close()

    def _wait(self, ready, what: str) -> None:
        started = time.monotonic()
        last = "not started"
        while time.monotonic() - started < self.ready_timeout_s:
            exited = next((p for p in self.processes if p.poll() is not None and p.returncode != 0), None)
            if exited is not None:
                raise DependencyFailed(f"{self.name} exited with {exited.returncode} while starting; "
                                       f"see {self.log_tail()}")
            try:
                ready()
                self.started_in_s = time.monotonic() - started
                return
            except Exception as error:  # noqa: BLE001 - not ready yet, whatever the client says
                last = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            time.sleep(0.3)
        self.stop()
        raise DependencyFailed(f"{self.name} was not ready on {what} after {self.ready_timeout_s:g} s ({last})")

    def log_tail(self) -> str:
        return str(self.root.parent / f"{self.root.name}-server.log") if self.root else "(no log)"

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop every process this server started: a polite signal to its group, then SIGKILL after timeout_s."""
        for process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, self.stop_signal)
        for process in reversed(self.processes):
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        self.processes.clear()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            for log in self.root.parent.glob(f"{self.root.name}-*.log"):
                log.unlink(missing_ok=True)
            self.root = None

    stop_signal = signal.SIGTERM

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    @abstractmethod
    def start(self) -> None:
        """Initialise and start the server on `self.port`; each kind of server says how."""


@dataclass
class LocalPostgres(LocalServer):
    """A throwaway cluster: trust auth on 127.0.0.1 only, fsync off (test data), user `postgres`."""

    name: str = "postgresql"
    port: int = 0
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, exit

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def bin_dir() -> Path:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
        if not found:
            raise DependencyFailed(f"PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); {APT_HINT}")
        return found[-1].parent

    def start(self) -> None:
        binaries = self.bin_dir()
        self.root = _owned_dir("postgres", "pg-")
        data = self.root / "data"
        init = subprocess.run([*_as_user("postgres"), str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
                               "-A", "trust", "-E", "UTF8", "--no-sync"], capture_output=True, text=True, check=False)
        if init.returncode != 0:
            self.stop()
            raise DependencyFailed(f"initdb failed: {(init.stderr or init.stdout).strip().splitlines()[-1:]}")
        self.port = self.port or free_port()
        self._spawn([*_as_user("postgres"), str(binaries / "postgres"), "-D", str(data), "-p", str(self.port),
                     "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                     "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                     "-c", "max_connections=200"])
        self._wait(self._ping, f"127.0.0.1:{self.port}")

    def _ping(self) -> None:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")


@dataclass
class LocalRabbitMQ(LocalServer):
    """A single node with a unique name, its own epmd, free AMQP and distribution ports, no plugins."""

    name: str = "rabbitmq"
    port: int = 0
    stop_signal = signal.SIGTERM

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self) -> None:
        server = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        epmd = shutil.which("epmd") or next(iter(sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))), None)
        if not server.exists() or not epmd:
            raise DependencyFailed(f"RabbitMQ is not installed (no {server} or epmd); {APT_HINT}")
        self.root = _owned_dir("rabbitmq", "rabbitmq-")
        self.port = self.port or free_port()
        epmd_port, dist_port = free_port(), free_port()
        node = f"rabbit-{uuid.uuid4().hex[:8]}@localhost"
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
                                                 "loopback_users.guest = true\n")
        if os.geteuid() == 0:
            entry = pwd.getpwnam("rabbitmq")
            for path in self.root.iterdir():
                os.chown(path, entry.pw_uid, entry.pw_gid)
        env = {"HOME": str(self.root), "RABBITMQ_NODENAME": node, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
               "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(dist_port),
               "ERL_EPMD_PORT": str(epmd_port), "RABBITMQ_BASE": str(self.root),
               "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"), "RABBITMQ_LOG_BASE": str(self.root / "log"),
               "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
               "RABBITMQ_PID_FILE": str(self.root / "rabbit.pid"), "RABBITMQ_LOGS": "-",
               "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config")}
        # Our own epmd on a private port, in the foreground, so it is stopped with the node (not left behind).
        self._spawn([*_as_user("rabbitmq"), str(epmd), "-port", str(epmd_port)], env=env, log_name="epmd.log")
        self._spawn([*_as_user("rabbitmq"), "env", *(f"{k}={v}" for k, v in env.items()), str(server)], env=env)
        self._wait(self._ping, f"127.0.0.1:{self.port}")

    def _ping(self) -> None:
        import pika

        params = pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2&blocked_connection_timeout=2")
        pika.BlockingConnection(params).close()
