"""A short flag is one option: read from `invoke --help TASK` of every task, as a person reads it.

`-k` is `--kubeconfig` in every task that talks to a cluster; `nat.rotate` once gave it to `--take-over`, so the
letter that reads a kubeconfig everywhere else took another operator's lock there. Other letters still mean
different options in unrelated tasks (SHARED, each with every option it names today); that list only shrinks: a
new task or option giving a letter a new meaning fails here.
"""
from __future__ import annotations

import re
from collections import defaultdict

from tests.support.cli import invoke, task_names

OPTION = re.compile(r"^  -(\w)(?:[ =][^\s,]+)?(?:, --([\w-]+))?", re.MULTILINE)  # "  -e STRING, --env=STRING", "  -k STRING"

# Letters that name different options in different tasks today (a pre-existing spread, not this rule's intent);
# `test -k` is pytest's own -k expression, kept for muscle memory. Each may only lose meanings.
SHARED = {
    "a": {"--abort", "--add", "--against", "--allow-dirty", "--area", "--az"},
    "d": {"--dry-run", "--diff"},
    "f": {"--fault", "--force-conflicts", "--from"},
    "j": {"--json", "--json-logs"},
    "k": {"--kubeconfig", "--key", "--kind", "-k"},
    "n": {"--name", "--no-rollback"},
    "o": {"--only", "--rollback"},
    "p": {"--plan-only", "--pool"},
    "r": {"--readiness-grace", "--resume"},
    "s": {"--service", "--skip", "--strict", "--svc"},
    "t": {"--tag", "--timeout", "--to", "--to-revision"},
}


def short_flags() -> dict[str, dict[str, set[str]]]:
    """letter -> option it stands for -> tasks, from each task's --help."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for task in task_names():
        shown = invoke("--help", task)
        assert shown.returncode == 0, shown.stderr
        for letter, long in OPTION.findall(shown.stdout):
            found[letter][f"--{long}" if long else f"-{letter}"].add(task)
    return found


def test_no_short_flag_takes_a_new_meaning():
    found = short_flags()
    assert "--take-over" not in {option for options in found.values() for option in options}
    assert found["k"]["--kubeconfig"] >= {"nodes.migrate", "cluster.upgrade", "deploy", "rollback", "history",
                                          "platform.status", "access.migrate"}
    assert found["e"].keys() == {"--env"}  # the letter every stack task shares
    spread = {letter: set(options) for letter, options in found.items() if len(options) > 1}
    grown = {letter: sorted(options - SHARED.get(letter, set())) for letter, options in spread.items()
             if options - SHARED.get(letter, set())}
    assert not grown, f"a short flag gained a second meaning: {grown} (give the new option no short flag: " \
                      f"klass=infra.cli.flags.long_only(...))"
