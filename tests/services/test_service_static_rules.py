"""The rules `invoke service.check` reads from the Dockerfile and the manifests, before anything runs: each break is
named by its rule and says what to write; the reference services keep every one."""
from __future__ import annotations

from pathlib import Path

import pytest

from infra.ops.service import check as engine
from infra.ops.service import contract
from tests.support import REPO_ROOT
from tests.support.services import copy_repo, patch


def static(repo: Path, name: str) -> dict[str, tuple[bool, str]]:
    report = engine.Report(name, "static")
    engine.static_rules(contract.load(repo, name), report)
    return {r.rule: (r.ok, r.detail) for r in report.results}


@pytest.mark.parametrize("name", ["api", "worker", "scheduler"])
def test_reference_services_keep_every_static_rule(name):
    results = static(REPO_ROOT, name)
    assert all(ok for ok, _ in results.values()), results
    assert {"grace period", "probes", "non-root, read-only image"} <= set(results)


IMAGE = "non-root, read-only image"
BREAKS = {
    "no EXPOSE of the health port": ("api", "services/api/Dockerfile", "EXPOSE 8080\n", "", IMAGE, "EXPOSE 8080"),
    "no OCI title label": ("worker", "services/worker/Dockerfile", 'org.opencontainers.image.title="worker"',
                           'org.example.name="worker"', IMAGE, "an OCI title label"),
    "not built from the shared base": ("scheduler", "services/scheduler/Dockerfile", "FROM ${BASE_IMAGE}\nLABEL",
                                       "FROM python:3.12-slim\nLABEL", IMAGE, "FROM ${BASE_IMAGE}"),
    "writable root filesystem": ("api", "infra/k8s/base/api/deployment.yaml", "readOnlyRootFilesystem: true",
                                 "readOnlyRootFilesystem: false", IMAGE, "readOnlyRootFilesystem"),
    "liveness on the readiness path": ("worker", "infra/k8s/base/worker/deployment.yaml", "path: /healthz",
                                       "path: /readyz", "probes", "liveness must GET /healthz"),
    "cron without a starting deadline": ("scheduler", "infra/k8s/base/scheduler/cronjob.yaml",
                                         "startingDeadlineSeconds:", "x-startingDeadlineSeconds:",
                                         "one run at a time", "startingDeadlineSeconds on the CronJob"),
    "cron runs may overlap": ("scheduler", "infra/k8s/base/scheduler/cronjob.yaml", "concurrencyPolicy: Forbid",
                              "concurrencyPolicy: Allow", "one run at a time", "concurrencyPolicy: Forbid"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_each_static_break_is_named_with_its_fix(tmp_path, case):
    name, path, old, new, rule, fix = BREAKS[case]
    repo = copy_repo(tmp_path / "repo")
    patch(repo, path, old, new)
    results = static(repo, name)
    ok, detail = results[rule]
    assert not ok and fix in detail, detail
    assert [r for r, (passed, _) in results.items() if not passed] == [rule]  # only the rule that was broken


@pytest.mark.parametrize("status", [200, 503])
def test_an_answer_cut_mid_body_is_no_answer_not_a_crash(status):
    """A service that exits while answering (a cron run that is done) leaves the probe with a short body."""
    import socket
    import threading

    with socket.create_server(("127.0.0.1", 0)) as server:
        def answer_half():
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: 6\r\n\r\nok".encode())

        thread = threading.Thread(target=answer_half, daemon=True)
        thread.start()
        code, why = engine.http(f"http://127.0.0.1:{server.getsockname()[1]}/readyz")
        thread.join(timeout=10)
    assert (code, why) == ((None, "IncompleteRead(2 bytes read, 4 more expected)") if status == 200 else (503, ""))
