"""The workflows as data: every job bounded and least-privileged, pins exact, CD covering exactly the services."""
from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from infra.config import known_envs
from infra.ops.io.manifests import REPO, services
from tests.support.github_tree import ACTIONS, THIRD_PARTY, WORKFLOWS, jobs, load, scripts, steps

SERVICES = services()


def test_the_three_workflows_and_two_actions_exist():
    assert set(WORKFLOWS) == {"ci", "cd", "infra"}
    assert set(ACTIONS) == {"setup", "deploy-service"}


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_every_job_has_a_timeout_and_its_own_permissions(name):
    doc = load(WORKFLOWS[name])
    assert doc["permissions"] == {}, "workflow-wide permissions must be empty; jobs grant their own"
    for job_name, job in doc["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int) and 0 < job["timeout-minutes"] <= 60, job_name
        assert isinstance(job.get("permissions"), dict) and job["permissions"], job_name
        assert "write-all" not in str(job["permissions"])
        writes = {scope for scope, level in job["permissions"].items() if level == "write"}
        assert writes <= {"id-token", "checks", "pull-requests"}, f"{name}.{job_name} writes {writes}"


def test_only_jobs_that_talk_to_aws_get_an_oidc_token():
    for name in WORKFLOWS:
        for job_name, job in jobs(name).items():
            assumes_role = any(s.get("with", {}).get("aws-role-arn") for s in job.get("steps", []))
            assert (job["permissions"].get("id-token") == "write") == assumes_role, f"{name}.{job_name}"


def test_every_third_party_action_is_pinned_to_a_commit_with_its_version():
    pins: dict[str, set[str]] = {}
    for path in [*WORKFLOWS.values(), *ACTIONS.values()]:
        for line in path.read_text().splitlines():
            match = THIRD_PARTY.match(line)
            if not match:
                continue
            action, _, ref = match["ref"].partition("@")
            assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{path.name}: {match['ref']} is not a full commit SHA"
            assert re.search(r"#\s*v\d+\.\d+\.\d+", match["rest"]), f"{path.name}: {action} has no # vX.Y.Z"
            pins.setdefault(action, set()).add(ref)
    assert {"actions/checkout", "actions/setup-python", "aws-actions/configure-aws-credentials", "pulumi/actions",
            "dorny/paths-filter", "mikepenz/action-junit-report", "actions/upload-artifact"} <= set(pins)
    assert all(len(refs) == 1 for refs in pins.values()), f"one SHA per action everywhere: {pins}"


def test_no_privileged_trigger_and_no_expression_inside_a_script():
    for name, path in WORKFLOWS.items():
        assert "pull_request_target" not in load(path)["on"], name
    for where, script in scripts().items():
        assert "${{" not in script, f"{where}: pass values through env:, never into the script text"


def test_checkouts_leave_no_token_behind():
    for path in WORKFLOWS.values():
        for step in steps(load(path)):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


# --- ci.yml -----------------------------------------------------------------------------------------------------

def test_ci_runs_lint_tests_with_a_junit_report_and_plans_every_stack():
    doc = load(WORKFLOWS["ci"])
    assert set(doc["on"]) == {"pull_request", "push"}
    assert doc["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    ci = doc["jobs"]
    lint = " ".join(s.get("run", "") for s in ci["lint"]["steps"])
    assert "invoke lint" in lint and "ruff check" in lint
    test = ci["test"]["steps"]
    junit = re.search(r"--junitxml=(\S+)", next(s["run"] for s in test if "pytest" in s.get("run", "")))[1]
    report = next(s for s in test if s.get("uses", "").startswith("mikepenz/action-junit-report@"))
    assert report["with"]["report_paths"] == junit and report["if"] == "${{ !cancelled() }}"
    assert ci["test"]["permissions"]["checks"] == "write"
    assert ci["plan"]["strategy"]["matrix"]["stack"] == known_envs()
    assert 'invoke plan --env "$STACK"' in ci["plan"]["steps"][-1]["run"]


# --- cd.yml -----------------------------------------------------------------------------------------------------

def _filters() -> dict[str, list[str]]:
    step = next(s for s in jobs("cd")["changes"]["steps"] if s.get("uses", "").startswith("dorny/paths-filter@"))
    return yaml.safe_load(step["with"]["filters"])


def test_cd_has_a_path_filter_for_exactly_each_service_in_the_catalog():
    assert SERVICES == ["api", "scheduler", "worker"]
    filters = _filters()
    assert sorted(filters) == SERVICES
    for svc, paths in filters.items():
        assert paths == [f"infra/k8s/base/{svc}/**", f"services/{svc}/**", "services/base/**"]
        assert any((REPO / "infra/k8s/base" / svc).rglob("*.yaml")), f"{svc}'s filter matches its manifests"
        assert (REPO / "services" / svc / "Dockerfile").is_file(), f"{svc}'s filter matches its source"
        assert (REPO / "services/base/Dockerfile").is_file(), "the shared base image every service builds on"


def test_cd_matrix_is_the_changed_services_and_dispatch_offers_exactly_the_services():
    doc = load(WORKFLOWS["cd"])
    dispatch = doc["on"]["workflow_dispatch"]["inputs"]
    assert dispatch["service"]["options"] == SERVICES
    assert dispatch["environment"]["options"] == known_envs()
    changes = doc["jobs"]["changes"]
    assert changes["outputs"]["services"] == "${{ steps.pick.outputs.services || steps.filter.outputs.changes }}"
    for job in ("deploy-dev", "deploy-prod"):
        matrix = doc["jobs"][job]["strategy"]["matrix"]
        assert matrix == {"service": "${{ fromJSON(needs.changes.outputs.services) }}"}
        assert doc["jobs"][job]["strategy"]["fail-fast"] is False
        assert "needs.changes.outputs.services != '[]'" in doc["jobs"][job]["if"]


def test_cd_goes_dev_then_prod_behind_the_prod_environment():
    cd = jobs("cd")
    assert cd["deploy-dev"]["environment"]["name"] == "dev"
    assert cd["deploy-prod"]["environment"]["name"] == "prod"
    assert cd["deploy-prod"]["needs"] == ["changes", "deploy-dev"]
    assert "needs.deploy-dev.result == 'success'" in cd["deploy-prod"]["if"]
    for env in ("dev", "prod"):
        job = cd[f"deploy-{env}"]
        deploy = next(s for s in job["steps"] if s["uses"] == "$/.github/actions/deploy-service")
        assert deploy["with"] == {"service": "${{ matrix.service }}", "environment": env, "tag": "${{ inputs.tag }}",
                                  "webhook-url": "${{ secrets.DEPLOY_WEBHOOK_URL }}"}
        setup = next(s for s in job["steps"] if s["uses"] == "$/.github/actions/setup")
        assert setup["with"]["stack"] == env and setup["with"]["kubeconfig"] == "true"


def test_cd_deploys_of_one_service_and_env_queue_and_are_never_cancelled():
    doc = load(WORKFLOWS["cd"])
    assert "concurrency" not in doc, "a workflow-level group would hold back other services' deploys"
    for env in ("dev", "prod"):
        group = doc["jobs"][f"deploy-{env}"]["concurrency"]
        assert group == {"group": f"deploy-${{{{ matrix.service }}}}-{env}", "cancel-in-progress": False}
    assert "cancel-in-progress: false" in WORKFLOWS["cd"].read_text().split("name: cd")[0], "documented up top"


# --- infra.yml --------------------------------------------------------------------------------------------------

def test_infra_previews_pull_requests_and_comments_the_summary():
    doc = load(WORKFLOWS["infra"])
    assert doc["on"]["pull_request"]["paths"] == doc["on"]["push"]["paths"]
    for program_file in ("Pulumi.dev.yaml", "__main__.py", "infra/stack.py", "infra/components/cluster.py"):
        assert any(re.fullmatch(p.replace(".", r"\.").replace("**", ".+").replace("*", "[^/]+"), program_file)
                   for p in doc["on"]["push"]["paths"]), program_file
    preview = doc["jobs"]["preview"]
    assert "head.repo.full_name == github.repository" in preview["if"], "no cloud credentials for fork PRs"
    rows = preview["strategy"]["matrix"]["include"]  # one row per stack, on a runner that reaches its API
    assert [row["stack"] for row in rows] == known_envs() and preview["runs-on"] == "${{ matrix.runs-on }}"
    assert preview["permissions"] == {"contents": "read", "id-token": "write"}  # PR code holds no write token
    runs = [s.get("run", "") for s in preview["steps"]]
    assert any('invoke preview --env "$STACK"' in r for r in runs)
    summary = next(s for s in preview["steps"] if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert summary["if"] == "${{ !cancelled() }}"
    comment_job = doc["jobs"]["comment"]
    assert comment_job["needs"] == "preview" and "!cancelled()" in comment_job["if"]
    comment = next(s for s in comment_job["steps"] if "gh pr comment" in s.get("run", ""))
    assert comment["env"]["PR_NUMBER"] == "${{ github.event.pull_request.number }}"


def test_infra_ups_dev_then_prod_on_merge_behind_approval():
    infra = jobs("infra")
    assert infra["up-dev"]["if"] == "github.event_name == 'push'"
    assert infra["up-prod"]["needs"] == "up-dev"
    assert infra["up-dev"]["environment"]["name"] == "infra-dev"
    assert infra["up-prod"]["environment"]["name"] == "infra-prod"
    for env in ("dev", "prod"):
        job = infra[f"up-{env}"]
        assert f"invoke up --env {env} --yes" in job["steps"][-1]["run"]
        assert job["concurrency"] == {"group": f"pulumi-up-{env}", "cancel-in-progress": False}


def test_every_invoke_command_in_the_workflows_is_a_real_task():
    from tasks import ns

    used = {m for script in scripts().values() for m in re.findall(r"\binvoke ([\w.-]+)", script)}
    assert used == {"lint", "plan", "preview", "up", "deploy", "service.check"}
    assert used <= set(ns.task_names)


PREVIEW = """\
Previewing update (dev):
     Type                 Name              Plan
     pulumi:pulumi:Stack  eks-platform-dev
 +   └─ aws:ec2:Vpc       vpc               create

Resources:
    + 1 to create
    12 unchanged
"""


def test_the_preview_summary_lands_on_the_run_page(tmp_path):
    step = next(s for s in jobs("infra")["preview"]["steps"] if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    (tmp_path / "preview.txt").write_text(PREVIEW)
    env = {**os.environ, "STACK": "dev", "OUTCOME": "success", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}
    done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "summary").read_text()
    assert summary.startswith("### `pulumi preview` on **dev**: success")
    assert "Resources:\n    + 1 to create\n    12 unchanged\n" in summary


@pytest.mark.parametrize("existing", ["", "4242"])
def test_the_preview_comment_is_posted_once_and_then_updated(tmp_path, existing):
    step = next(s for s in jobs("infra")["comment"]["steps"] if "gh pr comment" in s.get("run", ""))
    bin_dir, calls = tmp_path / "bin", tmp_path / "gh-calls"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(f'#!/usr/bin/env bash\necho "$*" >> "{calls}"\n'
                                f'if [ "$1 $2" = "api --paginate" ]; then echo "{existing}"; fi\n')
    (bin_dir / "gh").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PR_NUMBER": "17", "GH_REPO": "acme/eks-platform",
           "OUTCOME": "success", "RUN_URL": "https://github.com/acme/eks-platform/actions/runs/9"}
    done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    comment = (tmp_path / "comment.md").read_text()
    assert comment.startswith("<!-- eks-platform:pulumi-preview -->\n### `pulumi preview` (dev, prod): success")
    assert "https://github.com/acme/eks-platform/actions/runs/9" in comment
    posted = calls.read_text().splitlines()
    assert posted[0].startswith("api --paginate repos/acme/eks-platform/issues/17/comments")
    if existing:
        assert posted[1:] == ["api --method PATCH repos/acme/eks-platform/issues/comments/4242 -F body=@comment.md"]
    else:
        assert posted[1:] == ["pr comment 17 --body-file comment.md"]
