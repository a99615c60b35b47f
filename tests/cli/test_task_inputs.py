"""Task flags that select nothing or name something malformed are refused with one line and exit 2, before any work."""
from __future__ import annotations

import pytest

from tests.support.cli import invoke, one_line_error


@pytest.mark.parametrize("args", [("--only", "checkov", "--skip", "checkov"),
                                  ("--only", "workflows", "--skip", "workflows,rules")], ids=["same", "subset"])
def test_lint_refuses_a_selection_that_runs_nothing(args):
    result = invoke("lint", *args, timeout=120)
    one_line_error(result, 2, "leaves no check to run")
    assert "lint passed" not in result.stdout + result.stderr


def _checks() -> tuple[str, ...]:
    from infra.lint import runner, workflows

    return (*runner.CHECKS, workflows.NAME)


def test_lint_refuses_an_unknown_check_listing_the_valid_ones():
    line = one_line_error(invoke("lint", "--skip", "chekov", timeout=120), 2, "--skip: unknown check chekov")
    assert ", ".join(_checks()) in line


def test_lint_help_names_every_check():
    text = "".join(invoke("--help", "lint").stdout.split())  # invoke wraps the help mid-word
    assert ",".join(_checks()) in text


@pytest.fixture
def unreachable(tmp_path):
    """A kubeconfig whose API server nobody listens on, and no AWS: reaching either would fail with exit 1."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n"
                          "    server: https://127.0.0.1:9\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\n"
                          "users:\n- name: u\n  user: {token: t}\n")
    return {"KUBECONFIG": str(kubeconfig), "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}


@pytest.mark.parametrize("tag, words", [
    ("", "--tag is empty"),
    ("bad tag!", "--tag 'bad tag!' is not an OCI image tag"),
    ("-rc1", "not starting with '.' or '-'"),
    ("x" * 129, "1-128 letters"),
])
def test_deploy_refuses_a_malformed_tag_before_connecting(unreachable, tag, words):
    result = invoke("deploy", "api", "--env", "dev", f"--tag={tag}", env=unreachable, timeout=120)
    one_line_error(result, 2, words)


def test_deploy_tag_rule_accepts_real_tags():
    from infra.ops.deploy.target import check_tag

    for tag in ("3f2c9a1b7e0d", "v1.2.3", "0.1.0-rc.1", "release_2026.12", "_x", "x" * 128):
        assert check_tag(tag) == tag
    assert check_tag(None) is None


def test_deploy_refuses_an_empty_tag_given_as_its_own_argument(unreachable):
    one_line_error(invoke("deploy", "api", "--env", "dev", "--tag", "", env=unreachable, timeout=120), 2,
                   "--tag is empty", "omit --tag to build the current commit")
