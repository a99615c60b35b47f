"""`invoke service.check SVC`: the service contract (docs/service-contract.md) as rules that pass or fail.

Static rules read the manifests and the Dockerfile. Live rules run the service (container or process, see
launch.py) against real PostgreSQL/RabbitMQ reached through relays, so "dependencies down", "up" and "stalled
mid-request" are switched by the check while the servers keep running.
"""
from __future__ import annotations

import contextlib
import json
import re
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path

from infra.ops.errors import Failed
from infra.ops.service import contract
from infra.ops.service.contract import NEEDS, Service
from infra.ops.service.launch import Running, launcher
from infra.ops.service.local import LocalPostgres, LocalRabbitMQ, free_port
from infra.ops.service.relay import Relay

UID = 10001
START_S = 30.0          # from start to /healthz answering
READY_S = 60.0          # from dependencies up to /readyz 200
ABANDON_GRACE_S = 3.0   # GRACE_SECONDS for the give-back case (the manifests' own value is checked statically)
SLACK_S = 5.0           # process exit and interpreter teardown beyond a deadline
RELEASE_AFTER_S = 1.0   # a stalled dependency comes back this long after SIGTERM: well inside any grace period


class ContractBroken(Failed):
    """One or more rules failed (exit 1); the table names them."""


@dataclass
class Result:
    rule: str
    ok: bool
    detail: str


@dataclass
class Report:
    service: str
    how: str
    results: list[Result] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def failed(self) -> list[str]:
        return [r.rule for r in self.results if not r.ok]

    def add(self, rule: str, ok: bool, detail: str) -> bool:
        self.results.append(Result(rule, ok, detail))
        return ok


class Dependencies:
    """Running dependency servers by name; started on first use and stopped by `close` (unless given)."""

    def __init__(self, given: dict[str, LocalPostgres | LocalRabbitMQ] | None = None,
                 say: Callable[[str], None] = lambda _: None) -> None:
        self.servers = dict(given or {})
        self.owned: list[LocalPostgres | LocalRabbitMQ] = []
        self.say = say

    def get(self, name: str) -> LocalPostgres | LocalRabbitMQ:
        if name not in self.servers:
            server = LocalPostgres() if name == "postgres" else LocalRabbitMQ()
            self.say(f"starting {server.name} (Debian package, temporary data directory)")
            server.start()
            self.servers[name] = server
            self.owned.append(server)
        return self.servers[name]

    def close(self) -> None:
        for server in self.owned:
            server.stop()
        self.owned.clear()


# -- small clients -----------------------------------------------------------------------------------------
def http(url: str, timeout_s: float = 3.0, method: str = "GET") -> tuple[int | None, str]:
    """(status, body) of one request, or (None, why) when no whole answer came: refused, reset, or cut mid-body
    (a process that exits while answering, as a cron run does when it is done)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout_s) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        with contextlib.suppress(OSError, HTTPException):
            return error.code, error.read().decode(errors="replace")
        return error.code, ""
    except (OSError, HTTPException) as error:  # URLError is an OSError
        return None, str(getattr(error, "reason", error)) or type(error).__name__


def until(condition: Callable[[], bool], timeout_s: float, every_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return condition()


def last_line(run: Running) -> str:
    lines = run.output()
    return lines[-1][:200] if lines else "(no output)"


# -- static rules ------------------------------------------------------------------------------------------
def static_rules(service: Service, report: Report) -> None:
    w = service.workload
    grace_env = w.env.get("GRACE_SECONDS", "")
    want = (w.grace_s or 30) - w.prestop_s
    report.add("grace period", grace_env.isdigit() and int(grace_env) == want and w.grace_s is not None
               and w.prestop_s > 0,
               f"GRACE_SECONDS {grace_env or '(unset)'} = terminationGracePeriodSeconds {w.grace_s} - preStop "
               f"{w.prestop_s} s" if grace_env.isdigit() and int(grace_env) == want else
               f"set GRACE_SECONDS to {want} (terminationGracePeriodSeconds {w.grace_s} - preStop sleep "
               f"{w.prestop_s}); a preStop sleep and the grace period must both be set")
    port_ok = w.port is not None and w.port in w.ports.values() and \
        w.ports.get(str(w.probe_port), w.probe_port) == w.port
    probes_ok = w.liveness == "/healthz" and w.readiness == "/readyz" and port_ok
    report.add("probes", probes_ok, f"liveness {w.liveness}, readiness {w.readiness} on PORT {w.port}" if probes_ok
               else f"liveness must GET /healthz and readiness /readyz on the container port named by PORT "
                    f"(found {w.liveness}, {w.readiness}, PORT {w.env.get('PORT') or 'unset'}, ports {w.ports})")
    user = w.container_security.get("runAsUser", w.pod_security.get("runAsUser"))
    final = re.split(r"(?im)^\s*FROM\s+", service.dockerfile)[-1]  # the final stage, from its base image on
    users = re.findall(r"^\s*USER\s+(\S+)", final, flags=re.MULTILINE)
    exposed = re.findall(r"^\s*EXPOSE\s+(\d+)", final, flags=re.MULTILINE)
    image_ok = bool(users) and users[-1].split(":")[0] == str(UID) and user == UID and \
        w.container_security.get("readOnlyRootFilesystem") is True and str(w.port) in exposed and \
        "org.opencontainers.image.title" in final and final.startswith("${BASE_IMAGE}")  # the final stage's FROM
    report.add("non-root, read-only image", image_ok,
               f"USER {UID}, runAsUser {UID}, readOnlyRootFilesystem, EXPOSE {w.port}, FROM the shared base"
               if image_ok else f"the final stage needs USER {UID}, EXPOSE {w.port}, an OCI title label and FROM "
               f"${{BASE_IMAGE}}; the pod runAsUser {UID} with readOnlyRootFilesystem (found USER "
               f"{users[-1] if users else 'none'}, runAsUser {user}, EXPOSE {exposed or 'none'})")
    if service.kind == "cron":
        ok = w.spec.get("concurrencyPolicy") == "Forbid" and isinstance(w.spec.get("startingDeadlineSeconds"), int)
        report.add("one run at a time", ok, "concurrencyPolicy Forbid, startingDeadlineSeconds "
                   f"{w.spec.get('startingDeadlineSeconds')}" if ok else
                   "set concurrencyPolicy: Forbid and startingDeadlineSeconds on the CronJob")


def json_lines(lines: list[str]) -> tuple[bool, str]:
    if not lines:
        return False, "no output at all: log JSON lines on stdout"
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            return False, f"not a JSON line: {line[:120]!r}"
        if not isinstance(entry, dict) or not {"service", "level", "message"} <= set(entry):
            return False, f"a JSON line without service/level/message: {line[:120]!r}"
    return True, f"{len(lines)} line(s), each one JSON object with service, level and message"


# -- the live check ------------------------------------------------------------------------------------------
class Check:
    """One service under check: relays, a fresh database and queue, the service started as often as needed."""

    def __init__(self, service: Service, deps: Dependencies, scratch: Path, say: Callable[[str], None],
                 docker=None) -> None:
        self.service = service
        self.deps = deps
        self.scratch = scratch
        self.say = say
        self.relays: dict[str, Relay] = {}
        self.urls: dict[str, str] = {}
        self.queue = f"contract-check-{uuid.uuid4().hex[:8]}"
        self.database = f"check_{uuid.uuid4().hex[:10]}"
        self.launch = launcher(service, scratch, docker)
        self.running: list[Running] = []

    # dependencies -------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        for need in self.service.workload.needs:
            server = self.deps.get(need)
            relay = self.relays[need] = Relay(server.port)
            if need == "postgres":
                import psycopg

                with psycopg.connect(server.url, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{self.database}"')
                self.urls["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{relay.port}/{self.database}"
            else:
                self.urls["AMQP_URL"] = f"amqp://guest:guest@127.0.0.1:{relay.port}/%2F"

    def cleanup(self) -> None:
        for run in self.running:
            run.kill()
        for relay in self.relays.values():
            relay.close()
        if "rabbitmq" in self.relays:
            with contextlib.suppress(Exception), self.channel() as channel:
                channel.queue_delete(self.queue)
                channel.queue_delete(f"{self.queue}.dead")
        if "postgres" in self.relays:
            import psycopg

            with contextlib.suppress(Exception), psycopg.connect(self.deps.get("postgres").url, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    @contextlib.contextmanager
    def channel(self) -> Iterator:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.deps.get("rabbitmq").url))
        try:
            yield connection.channel()
        finally:
            connection.close()

    def queued(self) -> int:
        with self.channel() as channel:
            return channel.queue_declare(self.queue, passive=True).method.message_count

    def up(self) -> None:
        for relay in self.relays.values():
            relay.up()

    @property
    def store(self) -> Relay | None:
        """The relay stalled to put work in flight: the database (a worker's broker keeps flowing, to ack)."""
        return self.relays.get("postgres") or next(iter(self.relays.values()), None)

    def hold(self) -> None:
        if self.store is not None:
            self.store.hold()

    def release(self) -> None:
        if self.store is not None:
            self.store.release()

    def held(self, timeout_s: float) -> bool:
        return self.store is not None and self.store.wait_held(timeout_s)

    def stop_in_flight(self, run: Running, wait_s: float) -> tuple[int | None, float] | None:
        """SIGTERM once work is held in flight: (exit code, or None if still running after wait_s; seconds from the
        signal). None when no work reached the stalled dependency (the relay is released then)."""
        if not self.held(30):
            self.release()
            return None
        sent = run.signal()
        code = run.wait(wait_s)
        return code, time.monotonic() - sent

    # the service ---------------------------------------------------------------------------------------------
    def start(self, grace_s: float | None = None) -> tuple[Running, str]:
        port = free_port()
        log_config = self.scratch / "logging" / "logging.yaml"
        log_config.parent.mkdir(exist_ok=True)
        log_config.write_text("version: 1\nroot:\n  level: INFO\n")
        manifest = {k: v for k, v in self.service.workload.env.items() if v and k.removesuffix("_FILE") not in NEEDS}
        env = {**manifest, **self.urls, "PORT": str(port),
               "LOG_CONFIG": str(log_config), "QUEUE": self.queue, "HOST": "127.0.0.1"}
        if grace_s is not None:
            env["GRACE_SECONDS"] = f"{grace_s:g}"
        run = self.launch.start(env)
        self.running.append(run)
        return run, f"http://127.0.0.1:{port}"

    def grace(self) -> float:
        return float(self.service.workload.env.get("GRACE_SECONDS") or 30)

    def publish(self, body: str | None = None) -> str:
        import pika

        message_id = f"contract-check-{uuid.uuid4().hex[:8]}"
        with self.channel() as channel:
            channel.basic_publish("", self.queue, (body or self.service.work.get("body") or "{}").encode(),
                                  pika.BasicProperties(message_id=message_id, delivery_mode=2))
        return message_id

    def work_request(self, base: str) -> dict:
        """The declared in-flight request (contract.toml [work]), sent in a thread; its answer lands in the dict."""
        answer: dict = {}
        path = self.service.work.get("path", "/")
        method = self.service.work.get("method", "GET")
        def send() -> None:
            answer["status"], answer["body"] = http(base + path, 60, method)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        answer["thread"] = thread
        return answer


def run_check(repo: Path, name: str, deps: Dependencies | None = None, say: Callable[[str], None] = lambda _: None,
              docker=None) -> Report:
    """Every rule for one service; the report says which failed. Refused (exit 2) for an unknown service."""
    service = contract.load(repo, name)
    owned = deps is None
    deps = deps or Dependencies(say=say)
    with tempfile.TemporaryDirectory(prefix=f"check-{name}-") as scratch:
        check = Check(service, deps, Path(scratch), say, docker)
        report = Report(name, check.launch.how)
        static_rules(service, report)
        try:
            check.prepare()
            live_rules(check, report)
        finally:
            check.cleanup()
            if owned:
                deps.close()
    return report


def live_rules(check: Check, report: Report) -> None:
    kind = check.service.kind
    check.say(f"starting {check.service.name} ({check.launch.how}) with its dependencies down")
    run, base = check.start()
    if not report.add("healthz before dependencies", until(lambda: http(base + "/healthz")[0] == 200 or
                                                           run.exited is not None, START_S)
                      and http(base + "/healthz")[0] == 200,
                      "/healthz 200 while every dependency is down" if run.exited is None else
                      f"exited {run.exited} with its dependencies down: {last_line(run)}"):
        report.add("readyz down, then up", False, "not reached: the process never answered /healthz in "
                   f"{START_S:g} s with its dependencies down (startup must not block on them)")
        report.add("JSON log lines", *json_lines(run.output()))
        return
    status, body = http(base + "/readyz")
    down_ok = status == 503
    metrics_status, metrics = http(base + "/metrics")
    report.add("metrics", metrics_status == 200 and "# TYPE" in metrics,
               "/metrics serves Prometheus text" if metrics_status == 200 and "# TYPE" in metrics
               else f"/metrics answered {metrics_status}: serve prometheus_client's text there")
    check.say("dependencies up")
    check.up()
    if kind == "cron":
        came_up = until(lambda: http(base + "/readyz")[0] == 200 or run.exited is not None, READY_S)
        code = run.wait(READY_S)
        report.add("readyz down, then up", down_ok and came_up,
                   f"/readyz 503 while down ({body.strip()[:60]}), then 200 or the run finished" if down_ok and came_up
                   else f"/readyz answered {status} with the database down (want 503), or never came up")
        report.add("run exits 0 when done", code == 0, "first run done, exit 0" if code == 0 else
                   f"exit {code}: {last_line(run)}")
        report.add("JSON log lines", *json_lines(run.output()))
        cron_sigterm(check, report)
        return
    ready = until(lambda: http(base + "/readyz")[0] == 200 or run.exited is not None, READY_S)
    report.add("readyz down, then up", down_ok and ready and run.exited is None,
               "/readyz 503 while down, 200 once they are up, no restart" if down_ok and ready and run.exited is None
               else f"/readyz answered {status} with dependencies down (want 503)" if not down_ok else
               f"/readyz not 200 within {READY_S:g} s of the dependencies coming up: {last_line(run)}")
    if not (down_ok and ready and run.exited is None):
        report.add("JSON log lines", *json_lines(run.output()))
        return
    sigterm_finishes(check, report, run, base)
    sigterm_gives_back(check, report)


def sigterm_finishes(check: Check, report: Report, run: Running, base: str) -> None:
    """Work in flight at SIGTERM, the dependency back inside the grace period: the work must finish."""
    kind = check.service.kind
    check.hold()
    message = check.publish() if kind == "worker" else None
    answer = check.work_request(base) if kind == "http" else {}
    if not check.held(30):
        check.release()
        report.add("SIGTERM: in-flight work finished", False, "could not put work in flight: the declared work "
                   "(contract.toml [work]) never reached the database")
        report.add("JSON log lines", *json_lines(run.output()))
        return
    sent = run.signal()
    until(lambda: http(base + "/readyz", 1)[0] != 200, RELEASE_AFTER_S)
    ready_after, _ = http(base + "/readyz", 1)
    time.sleep(max(RELEASE_AFTER_S - (time.monotonic() - sent), 0))
    check.release()
    code = run.wait(check.grace() + SLACK_S)
    took = time.monotonic() - sent
    if kind == "http":
        answer["thread"].join(10)
        report.add("readyz 503 from SIGTERM on", ready_after == 503,
                   "503 while draining" if ready_after == 503 else f"/readyz answered {ready_after} after SIGTERM")
        ok = code == 0 and answer.get("status") is not None and answer["status"] < 500
        report.add("SIGTERM: in-flight work finished", ok,
                   f"in-flight request answered {answer.get('status')}, exit 0 after {took:.1f} s" if ok else
                   f"in-flight request got {answer.get('status') or answer.get('body')}, exit {code} "
                   f"({last_line(run)})")
    else:
        left = check.queued()
        ok = code == 0 and left == 0
        report.add("readyz 503 from SIGTERM on", ready_after in (503, None),
                   "503 (or closed) while stopping" if ready_after in (503, None) else
                   f"/readyz answered {ready_after} after SIGTERM")
        report.add("SIGTERM: in-flight work finished", ok,
                   f"message {message} finished and acked, exit 0 after {took:.1f} s" if ok else
                   f"exit {code} after {took:.1f} s with {left} message(s) back in the queue: the message in "
                   f"flight was not finished although its dependency came back {RELEASE_AFTER_S:g} s after SIGTERM "
                   f"({last_line(run)})")
    report.add("JSON log lines", *json_lines(run.output()))


def sigterm_gives_back(check: Check, report: Report) -> None:
    """Work that cannot finish by the deadline: given back (unacked / answered) and the process gone in time."""
    kind = check.service.kind
    run, base = check.start(grace_s=ABANDON_GRACE_S)
    if not until(lambda: http(base + "/readyz")[0] == 200 or run.exited is not None, READY_S) or run.exited is not None:
        report.add("SIGTERM: unfinishable work given back", False, f"restart not ready: {last_line(run)}")
        return
    check.hold()
    if kind == "worker":
        check.publish()
    else:
        check.work_request(base)
    stopped = check.stop_in_flight(run, ABANDON_GRACE_S + SLACK_S)
    if stopped is None:
        report.add("SIGTERM: unfinishable work given back", False, "could not put work in flight")
        return
    code, took = stopped
    if code is None:
        run.kill()
        check.release()
        report.add("SIGTERM: unfinishable work given back", False,
                   f"still running {ABANDON_GRACE_S + SLACK_S:g} s after SIGTERM with GRACE_SECONDS "
                   f"{ABANDON_GRACE_S:g}: it would be SIGKILLed")
        return
    if kind == "worker":
        returned = until(lambda: check.queued() == 1, 15)
        check.release()
        report.add("SIGTERM: unfinishable work given back", returned,
                   f"exit {code} after {took:.1f} s, the message back in the queue for redelivery" if returned else
                   "the process exited but the message is not back in the queue")
    else:
        check.release()
        report.add("SIGTERM: unfinishable work given back", True, f"exit {code} after {took:.1f} s (GRACE_SECONDS "
                   f"{ABANDON_GRACE_S:g})")
    ok, detail = json_lines(run.output())
    if not ok:
        report.add("JSON log lines", ok, detail)


def cron_sigterm(check: Check, report: Report) -> None:
    """A run stalled on its database at SIGTERM ends by the deadline with a reason; a rerun completes."""
    check.hold()
    run, _ = check.start(grace_s=ABANDON_GRACE_S)
    stopped = check.stop_in_flight(run, ABANDON_GRACE_S + SLACK_S)
    if stopped is None:
        report.add("SIGTERM: unfinishable work given back", False, "the run never reached its database")
        return
    code, took = stopped
    check.release()
    if code is None:
        run.kill()
    errors = [line for line in run.output() if '"ERROR"' in line]
    ok = code not in (None, 0) and bool(errors) or code == 0
    report.add("SIGTERM: unfinishable work given back", ok,
               f"exit {code} after {took:.1f} s: {json.loads(errors[-1]).get('message', '')[:100]}" if ok and errors
               else f"exit 0 after {took:.1f} s (done before the deadline)" if ok else
               f"exit {code} after {took:.1f} s with no ERROR line saying why (want: exit by the deadline, "
               "non-zero with a reason, or 0 when done)")
    rerun, _ = check.start()
    code = rerun.wait(READY_S)
    report.add("second run idempotent", code == 0, "a second run exits 0" if code == 0 else
               f"second run exit {code}: {last_line(rerun)}")
