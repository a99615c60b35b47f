"""Every outside failure is one line naming what could not be used, exit 1, in bounded time; bad numbers exit 2.

Tasks run as a user runs them (`python -m invoke` in a subprocess, tests/support/cli.py) against real
endpoints that fail: a closed local port, a kubeconfig that is not YAML, kubesim answering 401 to
everything, no AWS credentials at all, AWS_ENDPOINT_URL at a closed port. Waits are kept short with
EKS_PLATFORM_CONNECT_BUDGET_S, the budget production honours too (infra/ops/io/retry.py).
"""
from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import socket
import struct
import subprocess
import termios
import threading
from pathlib import Path

import boto3
import pytest
import urllib3

from infra.ops.errors import Refused
from infra.ops.io import aws, retry
from infra.ops.io.kube import Kube, KubeError, from_kubeconfig, load_client
from tests.kubesim import start
from tests.support.cli import invoke, one_line_error, spawn
from tests.support.fake_pulumi import FakePulumi
from tests.support.identity import declare_identity

BUDGET_S = "2"
OUTPUTS = {"clusterName": "eks-dev", "authenticationMode": "API_AND_CONFIG_MAP", "natMode": "dual-instance",
           "natRouteTableIds": {"eu-west-1a": "rtb-0a"}, "natRouteHomes": {"eu-west-1a": "eu-west-1a"},
           "natInstanceIds": {"eu-west-1a": "i-0a"},
           "natInstanceUrns": {"eu-west-1a": "urn:pulumi:dev::eks-platform::eks-platform:nat:Nat$aws:ec2/instance:"
                                             "Instance::nat-a"}}

# Every task that talks to the cluster, as a user would type it (dry runs where there is one).
CLUSTER_TASKS = {
    "history": ("history", "api", "--env", "dev"),
    "deploy": ("deploy", "api", "--env", "dev", "--tag", "abc1234"),
    "rollback": ("rollback", "api", "--env", "dev"),
    "nodes.migrate": ("nodes.migrate", "--env", "dev", "--pool", "general", "--to", "green", "--dry-run"),
    "cluster.upgrade": ("cluster.upgrade", "--env", "dev", "--to", "1.36", "--dry-run"),
    "platform.status": ("platform.status", "--env", "dev"),
    "access.migrate": ("access.migrate", "--env", "dev"),
}
# ... and every task that talks to AWS (the cluster ones do too: without a kubeconfig they ask EKS for it).
AWS_TASKS = {**CLUSTER_TASKS, "nat.status": ("nat.status", "--env", "dev"),
             "secrets.list": ("secrets.list", "--env", "dev")}


_HELD: list[socket.socket] = []


def closed_port() -> int:
    """A local port nothing listens on: bound and held, never listening, so it refuses connections and no
    server started meanwhile (kubesim, moto, another suite) can take it."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    _HELD.append(probe)
    return probe.getsockname()[1]


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


@pytest.fixture
def machine(tmp_path, monkeypatch) -> Path:
    """A fresh machine: no kubeconfig, no AWS credentials or profile, a `pulumi` that prints the stack's outputs,
    and a short connect budget. Tests add what their case needs to the environment."""
    home = tmp_path / "home"
    home.mkdir()
    for name in ("KUBECONFIG", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    pulumi = FakePulumi(tmp_path, outputs=OUTPUTS)
    for name, value in {"HOME": str(home), "AWS_CONFIG_FILE": str(home / "no-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
                        "AWS_EC2_METADATA_DISABLED": "true",  # not on EC2: do not wait for an instance role
                        "EKS_PLATFORM_CONNECT_BUDGET_S": BUDGET_S,
                        "PATH": pulumi.path}.items():
        monkeypatch.setenv(name, value)
    return tmp_path


@pytest.fixture(scope="module")
def refusing_cluster(tmp_path_factory):
    """kubesim answering every request 401 Unauthorized, as EKS does for a token it does not accept."""
    cluster = start(nodes=False, workdir=str(tmp_path_factory.mktemp("kubesim-401")))
    cluster.inject_fault(status=401, times=None, message="Unauthorized")
    yield cluster
    cluster.stop()
    assert not cluster.internal_errors, cluster.internal_errors


# -- the Kubernetes API server cannot be used ---------------------------------------------------------------

@pytest.mark.parametrize("task", CLUSTER_TASKS)
def test_unreachable_api_server_is_one_line_naming_it(task, machine, monkeypatch):
    server = f"https://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(machine / "kubeconfig", server)))
    one_line_error(invoke(*CLUSTER_TASKS[task]), 1, f"cannot reach the Kubernetes API at {server}",
                   "connection refused", "attempts in")


@pytest.mark.parametrize("task", CLUSTER_TASKS)
def test_malformed_kubeconfig_is_one_line_naming_the_file(task, machine, monkeypatch):
    broken = machine / "kubeconfig"
    broken.write_text("apiVersion: v1\nclusters: [\n  - {name: c\nusers:\n- token: s3cr3t-token\n")
    monkeypatch.setenv("KUBECONFIG", str(broken))
    line = one_line_error(invoke(*CLUSTER_TASKS[task]), 1, f"kubeconfig {broken} is not valid YAML", "line 3")
    assert "s3cr3t" not in line


@pytest.mark.parametrize("task", CLUSTER_TASKS)
def test_refused_credentials_are_one_line_before_any_engine_starts(task, machine, monkeypatch, refusing_cluster):
    monkeypatch.setenv("KUBECONFIG", refusing_cluster.kubeconfig)
    seen = len(refusing_cluster.requests)
    one_line_error(invoke(*CLUSTER_TASKS[task]), 1, f"the Kubernetes API at {refusing_cluster.url} refused the "
                                                    f"credentials (401 Unauthorized)", "aws eks update-kubeconfig")
    asked = [path for _, path, _ in list(refusing_cluster.requests)[seen:]]
    assert asked == ["/version"], "only the connect check may run: no engine starts against a server that refuses"


def test_platform_status_fails_when_the_api_server_goes_away_after_connecting(tmp_path):
    """Reached at connect time, gone when the sources are read: one failure, not a screen of problems."""
    from infra.config import load_stack_config
    from infra.ops.platform.status import collect

    kube = from_kubeconfig(str(kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{closed_port()}")))
    with pytest.raises(KubeError, match=r"cannot reach the Kubernetes API at http://127\.0\.0\.1:\d+: connection "
                                        r"refused.*\(while reading autoscaler\)"):
        collect(kube, load_stack_config("dev"), lambda names: {}, retry_budget_s=0.5)


def test_platform_status_keeps_an_aws_failure_as_a_problem_while_the_cluster_answers(machine, monkeypatch, kubesim):
    declare_identity(kubesim, "dev")
    monkeypatch.setenv("KUBECONFIG", kubesim.kubeconfig)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint := f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    result = invoke("platform.status", "--env", "dev", "--json")
    assert result.returncode == 0, result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert problems == [f"EKS node group sizes: cannot reach AWS at {endpoint}: connection refused; check that "
                        f"something serves AWS_ENDPOINT_URL={endpoint}, or unset it",
                        'Alertmanager: services "kps-alertmanager" not found',  # a source, not the server
                        f"public edge: cannot reach AWS at {endpoint}: connection refused; check that something "
                        f"serves AWS_ENDPOINT_URL={endpoint}, or unset it"]


# -- AWS cannot be used -------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", AWS_TASKS)
def test_no_aws_credentials_is_one_line_saying_how_to_get_them(task, machine):
    one_line_error(invoke(*AWS_TASKS[task]), 1, "no AWS credentials found", "AWS_PROFILE", "aws sso login")


@pytest.mark.parametrize("task", AWS_TASKS)
def test_aws_endpoint_down_is_one_line_naming_it(task, machine, monkeypatch):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    one_line_error(invoke(*AWS_TASKS[task]), 1, f"cannot reach AWS at {endpoint}: connection refused",
                   f"AWS_ENDPOINT_URL={endpoint}")


@pytest.mark.parametrize("body", ["html", "empty"])
@pytest.mark.parametrize("task", AWS_TASKS)
def test_an_endpoint_that_is_not_aws_is_one_line_naming_it(task, body, machine, monkeypatch):
    """A proxy's or a wrong endpoint's 404 (an HTML page; an empty body, which EC2 and STS cannot even parse):
    the standard line naming the endpoint and the fix, for every task that asks AWS."""
    from tests.support.not_aws import NotAws

    server = NotAws(404, body)
    try:
        for name, value in {"AWS_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing"}.items():
            monkeypatch.setenv(name, value)
        line = one_line_error(invoke(*AWS_TASKS[task]), 1, f"cannot reach AWS at {server.url}: ",
                              f"AWS_ENDPOINT_URL={server.url}")
    finally:
        server.stop()
    assert "HTTP 404" in line or "not an AWS response" in line


# -- progress while waiting, only on a terminal ---------------------------------------------------------------

def _stderr_on_a_terminal(*args: str) -> tuple[int, str]:
    """Run `invoke ARGS` with stderr on a pseudo-terminal (stdout piped); its exit code and what stderr showed."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))  # wide: no wrapped lines
    process = spawn(*args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal,
                    env={"TERM": "xterm", "COLUMNS": "250"})  # rich may not ask the pty
    os.close(terminal)
    shown = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        shown.append(chunk)
    os.close(controller)
    process.stdout.close()
    return process.wait(timeout=120), b"".join(shown).decode(errors="replace")


def test_a_terminal_shows_what_the_task_waits_for(machine, monkeypatch):
    server = f"https://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(machine / "kubeconfig", server)))
    code, shown = _stderr_on_a_terminal("history", "api", "--env", "dev")
    assert code == 1
    assert re.search(rf"waiting for the Kubernetes API at {server}: connection refused \(attempt \d, \d s of 2 s\)",
                     shown), shown
    assert f"error: cannot reach the Kubernetes API at {server}" in shown


def test_a_terminal_shows_aws_retries(machine, monkeypatch):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    code, shown = _stderr_on_a_terminal("secrets.list", "--env", "dev")
    assert code == 1
    assert re.search(rf"waiting for AWS [a-z]+ at {endpoint}: connection refused \(attempt \d, \d s of 2 s\)",
                     shown), shown
    assert f"cannot reach AWS at {endpoint}: connection refused" in shown


# -- one retry layer, one budget ---------------------------------------------------------------------------

class Hangup:
    """A TCP server that accepts each connection and closes it at once, counting them."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def hangup():
    server = Hangup()
    yield server
    server.close()


def test_kube_calls_retry_in_one_layer_and_announce_each_wait(tmp_path, hangup):
    kube = Kube(load_client(str(kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{hangup.port}"))),
                retry_budget_s=1.0)
    notices: list[str | None] = []
    with retry.listening(notices.append), pytest.raises(urllib3.exceptions.MaxRetryError) as failure:
        kube.request("GET", "/api/v1/nodes")
    assert retry.is_transient(failure.value)
    waits = [n for n in notices if n]
    assert waits and all(n.startswith(f"waiting for the Kubernetes API at http://127.0.0.1:{hangup.port}: ")
                         for n in waits)
    assert hangup.accepted == len(waits) + 1, "each attempt is one connection: urllib3 must not retry underneath"
    assert notices[-1] is None, "the wait notice ends with the call"


def test_aws_stops_retrying_an_endpoint_that_does_not_answer_once_the_budget_is_spent(hangup, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    eks = boto3.client("eks", region_name="eu-west-1", endpoint_url=f"http://127.0.0.1:{hangup.port}",
                       config=aws.RETRIES)
    ticks = iter(range(0, 1000, 10))  # each look at the clock is 10 s later: the 5 s budget is gone by the 2nd
    aws.RetryWatch("eks", budget_s=5, clock=lambda: float(next(ticks))).attach(eks)
    notices: list[str | None] = []
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    with retry.listening(notices.append), pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        eks.describe_cluster(name="eks-dev")
    assert hangup.accepted == 2, f"{hangup.accepted} attempts; botocore alone would make {aws.MAX_ATTEMPTS}"
    assert [n for n in notices if n] == [f"waiting for AWS eks at http://127.0.0.1:{hangup.port}: connection "
                                         f"closed by the server (attempt 2, 0 s of 5 s)"]
    assert notices[-1] is None


@pytest.mark.parametrize("value", ["abc", "0", "-3", "inf"])
def test_connect_budget_must_be_a_positive_number(value, monkeypatch):
    monkeypatch.setenv("EKS_PLATFORM_CONNECT_BUDGET_S", value)
    with pytest.raises(Refused, match="EKS_PLATFORM_CONNECT_BUDGET_S="):
        retry.connect_budget_s()


# -- bad numbers are bad input: exit 2 naming the flag, before anything is contacted --------------------------

@pytest.mark.parametrize("args, flag", [
    (("rollback", "api", "--env", "dev", "--timeout", "abc"), "--timeout"),
    (("rollback", "api", "--env", "dev", "--timeout", "1.5"), "--timeout"),
    (("rollback", "api", "--env", "dev", "--timeout", "-1"), "--timeout"),
    (("rollback", "api", "--env", "dev", "--to-revision", "x"), "--to-revision"),
    (("rollback", "api", "--env", "dev", "--to-revision", "0"), "--to-revision"),
    (("deploy", "api", "--env", "dev", "--timeout", "abc"), "--timeout"),
    (("deploy", "api", "--env", "dev", "--timeout", "0"), "--timeout"),
    (("deploy", "api", "--env", "dev", "--readiness-grace", "-1"), "--readiness-grace"),
    (("deploy", "api", "--env", "dev", "--readiness-grace", "1.5"), "--readiness-grace"),
    (("nodes.migrate", "--env", "dev", "--pool", "general", "--to", "green", "--parallelism", "abc"),
     "--parallelism"),
    (("nodes.migrate", "--env", "dev", "--pool", "general", "--to", "green", "--parallelism", "0"), "--parallelism"),
    (("nat.rotate", "--env", "dev", "--timeout", "abc"), "--timeout"),
    (("nat.rotate", "--env", "dev", "--timeout", "1.5"), "--timeout"),
])
def test_bad_numbers_exit_2_naming_the_flag(args, flag, machine):
    line = one_line_error(invoke(*args), 2, f"error: {flag} takes ", f"got {args[-1]!r}", f"e.g. {flag} ")
    assert "cannot reach" not in line


def test_a_bad_connect_budget_is_bad_input(machine, monkeypatch):
    monkeypatch.setenv("EKS_PLATFORM_CONNECT_BUDGET_S", "soon")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(machine / "kubeconfig", f"https://127.0.0.1:{closed_port()}")))
    one_line_error(invoke("history", "api", "--env", "dev"), 2, "EKS_PLATFORM_CONNECT_BUDGET_S='soon'")


# -- a reader that stops early ------------------------------------------------------------------------------

def test_plan_json_into_a_reader_that_stops_after_one_line_ends_quietly():
    process = spawn("plan", "--env", "dev", "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline().strip() == b"{"
    process.stdout.close()  # what `| head -1` does; the plan is far bigger than a pipe buffer
    errors = process.stderr.read().decode()
    assert process.wait(timeout=240) == 0, errors
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
