"""PR previews in .github/workflows/infra.yml: read-only, environment-scoped credentials, out of PR code's reach.

The preview job runs the pull request's code, so it may hold nothing that writes: no repository-level Pulumi
secrets, no write token, only the preview environment's credentials, which the previewer role trusts alone.
"""
from __future__ import annotations

import json
import re

import pytest
from ruamel.yaml import YAML

from infra.config import load_stack_config
from tests.support import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "infra.yml"
REPOSITORY_SECRETS = ("secrets.PULUMI_ACCESS_TOKEN", "secrets.PULUMI_CONFIG_PASSPHRASE")


@pytest.fixture(scope="module")
def jobs() -> dict:
    return YAML(typ="safe").load(WORKFLOW.read_text())["jobs"]


def _text(job: dict) -> str:
    return json.dumps(job)


def test_preview_job_holds_no_write_token_and_no_repository_level_secret(jobs):
    preview = jobs["preview"]
    assert preview["permissions"] == {"contents": "read", "id-token": "write"}
    assert not any(name in _text(preview) for name in REPOSITORY_SECRETS)
    secrets = set(re.findall(r"secrets\.([A-Z_]+)", _text(preview)))
    assert secrets == {"PULUMI_PREVIEW_ACCESS_TOKEN", "PULUMI_PREVIEW_CONFIG_PASSPHRASE"}, \
        "environment-only names: a missing environment secret must not fall back to a repository one"
    assert "github.token" not in _text(preview)


def test_preview_runs_in_the_environment_the_previewer_role_trusts(jobs, stack_plans):
    preview = jobs["preview"]
    assert preview["environment"]["name"] == "preview-${{ matrix.stack }}"
    for env in [row["stack"] for row in preview["strategy"]["matrix"]["include"]]:
        github = load_stack_config(env).access.github
        environment = github.preview_environment or f"preview-{env}"
        assert environment == f"preview-{env}"
        roles = {r.inputs.get("name"): r for r in stack_plans[env].of_type("aws:iam/role:Role")}
        trust = json.loads(roles[f"eks-platform-{env}-pulumi-previewer"].inputs["assumeRolePolicy"])
        subject = trust["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
        assert subject == f"repo:{github.repository}:environment:{environment}"


def test_the_write_token_lives_in_a_job_that_runs_no_pull_request_code(jobs):
    comment = jobs["comment"]
    assert comment["permissions"] == {"pull-requests": "write"}
    assert comment["needs"] == "preview"
    steps = comment["steps"]
    assert not [s for s in steps if "uses" in s], "no checkout, no action: nothing of the PR runs here"
    assert not [s for s in steps if ".venv" in s.get("run", "") or "invoke" in s.get("run", "")]
    assert "github.event.pull_request.title" not in _text(comment) and "head_ref" not in _text(comment)
