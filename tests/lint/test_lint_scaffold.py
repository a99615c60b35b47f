"""new-service: the scaffold (code, Dockerfile, manifests) passes lint untouched, and bad requests are refused with
nothing written. That generated services also pass `service.check` is in tests/services/test_service_check.py."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.config import load_stack_config
from infra.lint import runner as lint
from infra.lint import scaffold
from infra.lint.edge_rules import EdgeFacts
from infra.lint.scaffold import ScaffoldError
from infra.lint.secret_rules import SecretFacts
from infra.ops.io import manifests
from tests.support import REPO_ROOT
from tests.support.cli import invoke
from tests.support.k8s_tree import FAST_CHECKS, VERSIONS
from tests.support.k8s_tree import copy_tree as copy_k8s

REPO = REPO_ROOT


def copy_tree(tmp_path: Path) -> Path:
    """infra/k8s and services/ (the reference services new-service generates from) under tmp_path; the k8s root."""
    shutil.copytree(REPO / "services", tmp_path / "services", ignore=shutil.ignore_patterns("__pycache__"))
    return copy_k8s(tmp_path)


def reference_files(service: str) -> int:
    return sum(1 for p in (REPO / "services" / service).rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_all_kinds_scaffold_into_a_tree_that_passes_lint(tmp_path):
    root = copy_tree(tmp_path)
    for name, kind in (("billing", "http"), ("mailer", "worker"), ("nightly-report", "cron")):
        scaffold.apply(scaffold.plan(name, kind, root))
    # The new public host is not on the stacks' certificates yet and the new services' secrets are not declared:
    # lint names the config lines to add, per stack.
    report = lint.run(root, checks=(*FAST_CHECKS, "dockerfiles"), versions=VERSIONS)
    reads = {"billing": ("database",), "mailer": ("database", "queue-token"), "nightly-report": ("database",)}
    kinds = {"billing": "Deployment", "mailer": "Deployment", "nightly-report": "CronJob"}
    assert sorted((f.rule, f.resource) for f in report.findings) == sorted(
        [("rules/edge-tls", f"Ingress/apps-{env}/billing") for env in ("dev", "prod")]
        + [("rules/secret-declared", f"{kinds[name]}/apps-{env}/{name}") for env in ("dev", "prod")
           for name, keys in reads.items() for _ in keys])
    assert all("add `billing: billing." in f.fix and "eks-platform:edge.hostnames" in f.fix
               for f in report.findings if f.rule == "rules/edge-tls")
    edges = {env: EdgeFacts(frozenset({"alb"}), frozenset({host, f"billing.{env}.example.com"}))
             for env, host in (("dev", "api.dev.example.com"), ("prod", "api.example.com"))}
    secrets = {env: SecretFacts({**SecretFacts.of(load_stack_config(env).secrets, "").declared,
                                 **{name: frozenset(keys) for name, keys in reads.items()}}) for env in ("dev", "prod")}
    assert lint.run(root, checks=(*FAST_CHECKS, "dockerfiles"), versions=VERSIONS, edges=edges,
                    secrets=secrets).findings == []
    assert manifests.services(root) == ["api", "billing", "mailer", "nightly-report", "scheduler", "worker"]
    code = tmp_path / "services"
    assert (code / "nightly-report/nightly_report/__init__.py").read_text().endswith('SERVICE = "nightly-report"\n')
    dockerfile = (code / "mailer/Dockerfile").read_text()
    assert 'title="mailer"' in dockerfile and "COPY mailer /app/mailer" in dockerfile and "COPY worker" not in dockerfile
    assert (code / "billing/contract.toml").read_text() == (REPO / "services/api/contract.toml").read_text()

    prod = manifests.render(root / "overlays/prod")
    kinds = {(m.kind, m.name) for m in prod if m.labels.get(manifests.NAME_LABEL) == "billing"}
    assert kinds == {("ServiceAccount", "billing"), ("Deployment", "billing"), ("Service", "billing"),
                     ("Ingress", "billing"), ("HorizontalPodAutoscaler", "billing"),
                     ("PodDisruptionBudget", "billing"), ("NetworkPolicy", "billing"),
                     ("NetworkPolicy", "billing-from-load-balancer")}
    mailer = next(m.obj for m in prod if m.kind == "Deployment" and m.name == "mailer")
    assert mailer["spec"]["replicas"] == scaffold.WORKER_REPLICAS
    assert mailer["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "222222222222.dkr.ecr.eu-west-1.amazonaws.com/mailer:0.1.0"
    cron = next(m.obj for m in prod if m.kind == "CronJob")  # the scaffolded one sorts first
    assert cron["metadata"]["name"] == "nightly-report"
    ingress = next(m.obj for m in prod if m.kind == "Ingress" and m.name == "billing")
    assert ingress["spec"]["rules"][0]["host"] == "billing.prod.example.com"


def test_overlay_edit_keeps_comments_and_existing_entries(tmp_path):
    root = copy_tree(tmp_path)
    before = (root / "overlays/dev/kustomization.yaml").read_text()
    scaffold.apply(scaffold.plan("mailer", "worker", root))
    after = (root / "overlays/dev/kustomization.yaml").read_text()
    assert after.startswith(before.split("\n", 2)[0] + "\n" + before.split("\n", 2)[1])  # header comment kept
    for line in before.splitlines():
        assert line in after.splitlines()
    assert "  - ../../base/mailer" in after and "  - name: mailer\n    count: 2" in after


def test_dry_run_plan_writes_nothing_and_describes_every_file(tmp_path):
    root = copy_tree(tmp_path)
    before = snapshot(root)
    changes = scaffold.plan("billing", "cron", root)
    lines = scaffold.describe(changes)
    assert snapshot(root) == before
    # base files + a patch per overlay + the code and Dockerfile copied from services/scheduler
    assert sum(line.startswith("create ") for line in lines) == 5 + 2 + reference_files("scheduler")
    assert "create services/billing/billing/__main__.py" in "\n".join(lines).replace(str(tmp_path) + "/", "")
    assert sum(line.startswith("update ") for line in lines) == 2
    assert "+  - ../../base/billing" in lines


@pytest.mark.parametrize("name, kind, message", [
    ("Billing", "http", "NAME 'Billing' is not a valid service name"),
    ("9lives", "http", "starting with a letter"),
    ("bad-", "worker", "not ending with '-'"),
    ("a" * 41, "cron", "1-40 lowercase"),
    ("shared", "http", "reserved"),
    ("service-base", "http", "reserved for the shared base"),  # the base image's ECR repository
    ("api", "worker", "service exists already"),
    ("base", "http", "services/base exists already"),
    ("billing", "daemon", "--kind 'daemon' is not a service kind; use one of http, worker, cron"),
    ("billing", "", "--kind is required"),
])
def test_bad_requests_are_refused_and_nothing_is_written(tmp_path, name, kind, message):
    root = copy_tree(tmp_path)
    before = snapshot(root)
    with pytest.raises(ScaffoldError, match=message.replace("(", r"\(").replace("[", r"\[")):
        scaffold.plan(name, kind, root)
    assert snapshot(root) == before


def test_leftover_patch_file_is_not_overwritten(tmp_path):
    root = copy_tree(tmp_path)
    leftover = root / "overlays/prod/patches/ghost.yaml"
    leftover.write_text("# someone's notes\n")
    with pytest.raises(ScaffoldError, match="patches/ghost.yaml exists already"):
        scaffold.plan("ghost", "http", root)
    assert leftover.read_text() == "# someone's notes\n"


def test_stale_overlay_entry_is_refused(tmp_path):
    root = copy_tree(tmp_path)
    kustomization = root / "overlays/prod/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("  - ../../base/scheduler\n",
                                                               "  - ../../base/scheduler\n  - ../../base/ghost\n"))
    with pytest.raises(ScaffoldError, match="prod overlay already lists base/ghost"):
        scaffold.plan("ghost", "worker", root)


def test_tasks_exit_2_with_one_line_errors():
    bad_name = invoke("new-service", "Bad_Name", "--kind", "http")
    assert bad_name.returncode == 2
    assert bad_name.stderr.strip().splitlines() == [
        "error: NAME 'Bad_Name' is not a valid service name; use 1-40 lowercase letters, digits and '-' "
        "(DNS-1123), starting with a letter and not ending with '-'"]
    existing = invoke("new-service", "api", "--kind", "http", "--dry-run")
    assert existing.returncode == 2 and "service exists already" in existing.stderr
    bad_check = invoke("lint", "--only", "yamllint,spelling")
    assert bad_check.returncode == 2 and "unknown check spelling" in bad_check.stderr


def test_new_service_dry_run_task_prints_the_plan_and_writes_nothing():
    done = invoke("new-service", "billing", "--kind", "worker", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "create infra/k8s/base/billing/deployment.yaml" in done.stdout
    assert "dry run: nothing written" in done.stdout
    assert not (REPO / "infra/k8s/base/billing").exists()


def test_scaffold_joins_the_cd_workflow_so_ci_check_stays_clean(tmp_path):
    from infra.lint import workflows as ci_check

    root = copy_tree(tmp_path)
    shutil.copytree(REPO / ".github", tmp_path / ".github")
    before = (tmp_path / ".github/workflows/cd.yml").read_text()
    scaffold.apply(scaffold.plan("billing", "http", root))
    after = (tmp_path / ".github/workflows/cd.yml").read_text()
    assert "options: [api, billing, scheduler, worker]" in after
    assert "'infra/k8s/base/billing/**'" in after and "'services/billing/**'" in after
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    # the filter's name and its three paths (manifests, code, the shared base image) and the rewritten choices line
    assert len(added) == 4, added  # 'services/base/**' is already a line of the other filters; nothing restyled
    assert after.count("'services/base/**'") == before.count("'services/base/**'") + 1
    src = ci_check.Sources.of(tmp_path)
    assert [f for f in ci_check.rules(src) if f.rule == "cd-services"] == []
