"""Shared fixtures. Fixtures start real local endpoints (moto server, kubesim); tests talk to them over HTTP."""
from __future__ import annotations

import urllib.request

import pytest

# Every fixture shared across folders, one module per world (tests/support/fixtures/), and kubesim's own.
pytest_plugins = [
    "tests.kubesim.fixtures",  # kubesim / kubesim_factory: the Kubernetes API emulator
    "tests.support.fixtures.bad_input",  # bad_input_project / bad_input_cluster: one per bad-input table
    "tests.support.fixtures.deploy",  # deploy_env / deployed_v1 / fake_docker / webhook
    "tests.support.fixtures.secrets",  # tls_postgres: the PostgreSQL whose login the rotation Lambda rotates
    "tests.support.fixtures.services",  # postgres / rabbitmq / database / services: the services' dependencies
    "tests.support.fixtures.upgrade",  # upgrade_cluster: moto EKS + kubesim for cluster.upgrade
]

# The day tests judge Kubernetes versions against (the EKS calendar was checked then): the same verdicts on any
# day the suite runs, subprocesses included. A test about the real date unsets it.
CALENDAR_DAY = "2026-12-05"


@pytest.fixture(autouse=True)
def calendar_day(monkeypatch):
    monkeypatch.setenv("EKS_PLATFORM_TODAY", CALENDAR_DAY)
    return CALENDAR_DAY


# rich sizes tables from COLUMNS when it is set (tasks keep 160 columns into a pipe only when it is not): every
# test sees the same width, whatever terminal or CI runner starts the suite, subprocesses included.
TERMINAL_COLUMNS = "200"


@pytest.fixture(autouse=True)
def terminal_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", TERMINAL_COLUMNS)
    return TERMINAL_COLUMNS


@pytest.fixture(scope="session")
def moto_server():
    """A moto server on 127.0.0.1 (random port) for the whole session; yields its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    """boto3 pointed at a freshly reset moto server through AWS_ENDPOINT_URL, with dummy credentials."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10)
    for key, value in {"AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                       "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    return moto_server


@pytest.fixture(scope="session")
def stack_plans():
    """The offline plan of both real stack files, computed once per session (read-only: do not mutate)."""
    from infra.plan.offline import plan_stack

    return {env: plan_stack(env) for env in ("dev", "prod")}
