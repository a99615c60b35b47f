"""The layout of tests/ kept honest (tests/support/layout.py): the real tree keeps every rule, and each rule, broken
once in a small synthetic tree, is reported with the file and line that break it."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import REPO_ROOT
from tests.support.layout import FAKE_PULUMI, RULES, RUNNER, sources, violations

INVOKE = "invoke"  # spelled apart below, or this file would break the rule it tests
FIXTURE = "import pytest\n\n\n@pytest.fixture\ndef project():\n    return 1\n"
REGISTERED = 'pytest_plugins = ["tests.support.fixtures.bad"]\n'


@pytest.fixture(scope="module")
def real_tree():
    """The real tests/ parsed once for every rule below (parsing is most of a rule's time)."""
    return sources(REPO_ROOT)


@pytest.mark.parametrize("rule", RULES)
def test_the_real_tree_keeps_the_rule(rule, real_tree):
    assert violations(REPO_ROOT, rule, real_tree) == []


def test_the_real_tree_is_what_the_rules_read(real_tree):
    rels = {source.rel for source in real_tree}
    assert {RUNNER, FAKE_PULUMI, "tests/conftest.py", "tests/support/tests/test_layout.py"} <= rels
    assert sum(source.is_test for source in real_tree) > 50


@pytest.mark.parametrize(("rule", "real"), [("one invoke runner", RUNNER), ("one fake pulumi", FAKE_PULUMI)])
def test_the_one_runner_and_the_one_fake_break_the_rule_anywhere_else(tmp_path, rule, real):
    """The rule exempts the one file by its place, not by what it holds: a copy elsewhere is a second one."""
    copy = tmp_path / "tests/deploy/test_copy.py"
    copy.parent.mkdir(parents=True)
    shutil.copy(REPO_ROOT / real, copy)
    assert violations(tmp_path, rule), f"a copy of {real} outside its place was not reported"


# (rule, files of the synthetic tree, the one violation expected as "file:line: start of the message").
BROKEN = [
    ("no test module imports another", {"tests/cli/test_a.py": "from tests.stack.test_plan_task import calls\n"},
     "tests/cli/test_a.py:1: imports tests.stack.test_plan_task"),
    ("no test module imports another", {"tests/services/test_api.py": "import os\n\nfrom tests.services.conftest "
                                                                      "import ready\n"},
     "tests/services/test_api.py:3: imports tests.services.conftest"),
    ("no test module imports another", {"tests/cli/test_b.py": "def test_b():\n    from tests.cli import helpers\n"},
     "tests/cli/test_b.py:2: imports tests.cli"),
    ("no test module imports another", {"tests/support/world.py": "from ..cli.test_a import x\n"},
     "tests/support/world.py:1: imports tests.cli.test_a"),
    ("no test module imports another", {"tests/conftest.py": 'import os\npytest_plugins = ["tests.nat.test_ops"]\n'},
     "tests/conftest.py:2: pytest_plugins names tests.nat.test_ops"),
    ("one invoke runner", {"tests/cli/test_help.py": "import subprocess\nimport sys\n\n"
                                                     f'subprocess.run([sys.executable, "-m", "{INVOKE}", "--list"])\n'},
     "tests/cli/test_help.py:4: runs invoke by hand"),
    ("one invoke runner", {"tests/deploy/test_x.py": f'import shlex\nARGV = shlex.split("python -m {INVOKE} up")\n'},
     "tests/deploy/test_x.py:2: runs invoke by hand"),
    ("one fake pulumi", {"tests/stack/test_plan.py": 'def install(tmp_path):\n    (tmp_path / "pulumi").touch()\n'},
     "tests/stack/test_plan.py:2: makes a path named pulumi"),
    ("one fake pulumi", {"tests/support/bins.py": 'import os\n\nBIN = os.path.join("bin", "pulumi")\n'},
     "tests/support/bins.py:3: makes a path named pulumi"),
    ("one fake pulumi", {"tests/nat/test_nat.py": "import os\n\n\nclass FakePulumiCli:\n    pass\n"},
     "tests/nat/test_nat.py:4: defines FakePulumiCli"),
    ("test files in area folders", {"tests/test_flat.py": ""}, "tests/test_flat.py:1: not in an area folder"),
    ("test files in area folders", {"tests/cli/deep/test_deep.py": ""},
     "tests/cli/deep/test_deep.py:1: not in an area folder"),
    ("test files in area folders", {"tests/support/test_world.py": ""},
     "tests/support/test_world.py:1: not in an area folder"),
    ("conftest holds fixtures only", {"tests/services/conftest.py": f"{FIXTURE}\n\ndef wait_for(url):\n    pass\n"},
     "tests/services/conftest.py:9: helper wait_for in a conftest"),
    ("fixtures registered through pytest_plugins", {"tests/support/world.py": FIXTURE},
     "tests/support/world.py:1: defines fixture project"),
    ("fixtures registered through pytest_plugins", {"tests/conftest.py": "", "tests/support/fixtures/bad.py": FIXTURE},
     "tests/support/fixtures/bad.py:1: not in tests/conftest.py pytest_plugins"),
    ("fixtures not rebound as globals", {"tests/conftest.py": REGISTERED, "tests/support/fixtures/bad.py": FIXTURE,
                                         "tests/cli/test_a.py": "from tests.support.fixtures import bad\n\n"
                                                                "project = bad.project\n"},
     "tests/cli/test_a.py:3: rebinds fixture project as a global"),
    ("fixtures not rebound as globals", {"tests/conftest.py": REGISTERED, "tests/support/fixtures/bad.py": FIXTURE,
                                         "tests/cli/test_a.py": "from tests.support.fixtures.bad import project\n"},
     "tests/cli/test_a.py:1: imports fixture project"),
    ("fixtures not rebound as globals", {"tests/lifecycle/test_a.py": "world = None\n\n\ndef test_a(kubesim):\n"
                                                                      "    global world\n    world = kubesim\n"},
     "tests/lifecycle/test_a.py:5: global world"),
]


def plant(root: Path, files: dict[str, str]) -> None:
    for file, text in files.items():
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        (root / file).write_text(text)


@pytest.mark.parametrize(("rule", "files", "expected"), BROKEN, ids=[case[2].split(": ")[0] for case in BROKEN])
def test_a_broken_rule_is_reported_with_file_and_line(tmp_path, rule, files, expected):
    plant(tmp_path, files)
    found = violations(tmp_path, rule)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_what_the_house_allows_is_not_reported(tmp_path):
    """Shared pieces imported from support and kubesim, prose about invoke, a variable or test named after the one
    fake, a conftest with fixtures, hooks and a constant, a fixture module that pytest_plugins lists."""
    plant(tmp_path, {
        "tests/conftest.py": f"{REGISTERED}DAY = '2026-12-05'\n\n\ndef pytest_configure(config):\n    pass\n\n\n"
                             "@pytest.fixture\ndef day():\n    return DAY\n",
        "tests/support/fixtures/bad.py": FIXTURE,
        "tests/support/cli.py": "def command(*args):\n    return args\n",
        "tests/support/tests/test_cli.py": "from tests.support.cli import command\n",
        "tests/kubesim/server.py": "from .store import Store\n",
        "tests/kubesim/tests/test_server.py": "from ..server import Store\n",
        "tests/stack/test_plan.py": f'"""Runs `python -m {INVOKE} plan` through tests/support/cli.py."""\n'
                                    "from tests import support\nfrom tests.kubesim import server\n"
                                    "from tests.support.fake_pulumi import FakePulumi\n\n\n"
                                    "def test_fake_pulumi_logs(tmp_path, project):\n"
                                    "    fake_pulumi = FakePulumi(tmp_path)\n    assert fake_pulumi\n",
    })
    assert {rule: violations(tmp_path, rule) for rule in RULES} == {rule: [] for rule in RULES}
