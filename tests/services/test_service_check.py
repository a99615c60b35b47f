"""`invoke service.check`: passes for every reference service and for freshly generated ones, and fails, naming the
rule, for services that break it: a liveness probe that checks the database, a worker that exits on SIGTERM
mid-task, multi-line logs, a startup that blocks on the broker."""
from __future__ import annotations

import pytest

from infra.lint import scaffold
from infra.ops.service import check as engine
from infra.ops.service.contract import UnknownService
from tests.support import REPO_ROOT
from tests.support.cli import invoke
from tests.support.services import copy_repo, patch

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def deps(postgres, rabbitmq):
    return engine.Dependencies({"postgres": postgres, "rabbitmq": rabbitmq})


def failed(report: engine.Report) -> dict[str, str]:
    return {r.rule: r.detail for r in report.results if not r.ok}


@pytest.mark.parametrize("name", ["api", "worker", "scheduler"])
def test_reference_services_keep_the_contract(deps, name):
    report = engine.run_check(REPO_ROOT, name, deps)
    assert report.how == "process"  # no Docker engine on these machines
    assert failed(report) == {}
    rules = {r.rule for r in report.results}
    assert {"grace period", "probes", "non-root, read-only image", "healthz before dependencies",
            "readyz down, then up", "JSON log lines", "metrics", "SIGTERM: unfinishable work given back"} <= rules
    if name != "scheduler":
        assert {"SIGTERM: in-flight work finished", "readyz 503 from SIGTERM on"} <= rules
    else:
        assert {"one run at a time", "run exits 0 when done", "second run idempotent"} <= rules


BREAKS = {
    "liveness probe checks the database": (
        "api", "services/api/api/app.py",
        '        return PlainTextResponse("ok\\n")',
        '        store.ping(self.db.resource, 1)\n        return PlainTextResponse("ok\\n")',
        "healthz before dependencies"),
    "worker exits on SIGTERM mid-task": (
        "worker", "services/base/service_kit/lifecycle.py",
        "        self.requested.set()\n",
        "        self.requested.set()\n        os._exit(0)\n",
        "SIGTERM: in-flight work finished"),
    "multi-line logs": (
        "scheduler", "services/scheduler/scheduler/__main__.py",
        '    period = snapshot.window(datetime.now(UTC), minutes)\n',
        '    period = snapshot.window(datetime.now(UTC), minutes)\n    print(f"starting run\\n  window {period}")\n',
        "JSON log lines"),
    "startup blocks on the broker": (
        "worker", "services/worker/worker/__main__.py",
        "    consumer = Consumer(queue, broker, db, shutdown, max_attempts)\n",
        "    connect_broker_until_up = broker._connect\n"
        "    while True:\n"
        "        try:\n"
        "            connect_broker_until_up()\n"
        "            break\n"
        "        except Exception:\n"
        "            import time\n"
        "            time.sleep(0.5)\n"
        "    consumer = Consumer(queue, broker, db, shutdown, max_attempts)\n",
        "healthz before dependencies"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_a_service_that_breaks_a_rule_fails_that_rule(deps, tmp_path, case):
    name, path, old, new, rule = BREAKS[case]
    repo = copy_repo(tmp_path / "repo")
    patch(repo, path, old, new)
    report = engine.run_check(repo, name, deps)
    assert rule in failed(report), [(r.rule, r.ok, r.detail) for r in report.results]


def test_static_rules_catch_a_wrong_grace_env_and_a_root_image(deps, tmp_path):
    repo = copy_repo(tmp_path / "repo")
    patch(repo, "infra/k8s/base/api/deployment.yaml", 'value: "35"', 'value: "45"')
    patch(repo, "services/api/Dockerfile", "USER 10001:10001\nCMD", "USER 0:0\nCMD")
    report = engine.run_check(repo, "api", deps)
    broken = failed(report)
    assert "set GRACE_SECONDS to 35" in broken["grace period"]
    assert "USER 0:0" in broken["non-root, read-only image"]


@pytest.mark.parametrize("name, kind", [("billing", "http"), ("mailer", "worker"), ("nightly-report", "cron")])
def test_generated_services_keep_the_contract_as_generated(deps, tmp_path, name, kind):
    repo = copy_repo(tmp_path / "repo")
    scaffold.apply(scaffold.plan(name, kind, repo / "infra" / "k8s"))
    report = engine.run_check(repo, name, deps)
    assert failed(report) == {}
    package = name.replace("-", "_")
    assert (repo / "services" / name / package / "__init__.py").read_text().count(f'SERVICE = "{name}"') == 1
    assert f'CMD ["python", "-m", "{package}"]' in (repo / "services" / name / "Dockerfile").read_text()


def test_unknown_service_is_refused_naming_the_valid_ones():
    with pytest.raises(UnknownService, match="choose from api, scheduler, worker"):
        engine.run_check(REPO_ROOT, "nope")
    done = invoke("service.check", "nope")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: SVC 'nope' is not a service; choose from api, scheduler, worker (a service has "
        "services/<svc>/Dockerfile and infra/k8s/base/<svc>)"]
