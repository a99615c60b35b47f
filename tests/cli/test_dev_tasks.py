"""`invoke test` and `invoke fmt`: the dev loop runs what CI runs, passes its exit code on, and refuses a bad area
in one line. fmt runs in a git copy of the project, so its fixes touch nothing real."""
from __future__ import annotations

import pytest

from tests.support.bad_input import copy_project
from tests.support.cli import ROOT, invoke, one_line_error

# The areas are the folders of tests/ that hold tests: read from the tree, so a new area needs no edit here.
AREAS = ", ".join(sorted(p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and any(p.rglob("test_*.py"))))


@pytest.mark.parametrize("area", ["nope", "", "tests/cli", "CLI", "cli,deploy"])
def test_an_unknown_area_is_one_line_naming_the_valid_ones(area):
    one_line_error(invoke("test", "--area", area), 2, f"--area {area!r} is not a folder of tests/", AREAS)


def test_one_area_runs_pytest_on_that_folder_with_the_k_expression():
    result = invoke("test", "--area", "support", "-k", "keeps_the_contract and components")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout, result.stdout


@pytest.mark.parametrize("expression", ["(((", "rollback and", "not", "a b"])
def test_a_bad_k_expression_is_one_line_before_pytest_runs(expression):
    line = one_line_error(invoke("test", "--area", "cli", "-k", expression), 2, f"-k {expression!r} is not a pytest "
                          "-k expression", "e.g. -k 'rollback and not prod'")
    assert "INTERNALERROR" not in line


def test_the_k_check_is_pytests_own_parser():
    """What `pytest -k` compiles with: the check refuses exactly what pytest would (pinned: a private module)."""
    from _pytest.mark.expression import Expression

    from infra.cli.dev import _keyword_expression

    assert _keyword_expression("rollback and not prod") == "rollback and not prod"
    Expression.compile("rollback and not prod")
    with pytest.raises(SyntaxError):
        Expression.compile("(((")


def test_pytest_exit_code_is_the_task_exit_code():
    result = invoke("test", "--area", "support", "-k", "no_test_is_named_like_this")
    assert result.returncode == 5, result.stdout + result.stderr  # pytest: no tests collected
    assert "Traceback" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("project"))


def test_fmt_check_reports_a_fixable_finding_and_changes_nothing_then_fmt_fixes_it(project):
    unsorted = "import sys\nimport os\n\nprint(os.sep, sys.argv)\n"
    path = project / "infra" / "zz_unsorted.py"
    path.write_text(unsorted)
    try:
        checked = invoke("fmt", "--check", cwd=project)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert "infra/zz_unsorted.py" in checked.stdout and "I001" in checked.stdout, checked.stdout
        assert path.read_text() == unsorted

        fixed = invoke("fmt", cwd=project)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert path.read_text() == "import os\nimport sys\n\nprint(os.sep, sys.argv)\n"
        assert invoke("fmt", "--check", cwd=project).returncode == 0
    finally:
        path.unlink(missing_ok=True)


def test_fmt_exits_1_on_a_finding_it_cannot_fix(project):
    path = project / "infra" / "zz_undefined.py"
    path.write_text("print(no_such_name)\n")
    try:
        result = invoke("fmt", cwd=project)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "infra/zz_undefined.py" in result.stdout and "F821" in result.stdout, result.stdout
    finally:
        path.unlink(missing_ok=True)
