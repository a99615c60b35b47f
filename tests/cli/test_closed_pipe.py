"""Offline tasks that print a table end quietly (exit 0, nothing on stderr) when their reader leaves early, as
`| head -1` does, however soon it leaves (rich's own default would exit 1 with no message)."""
from __future__ import annotations

import pytest

from tests.support.cli import invoke_into_reader

TODAY = {"EKS_PLATFORM_TODAY": "2026-12-05"}


@pytest.mark.parametrize("lines", [0, 1], ids=["closed-before-output", "closes-after-one-line"])
@pytest.mark.parametrize("command", ["cluster.versions", "ci.check", "plan --env prod", "lint --only yamllint"])
def test_a_table_into_a_reader_that_stops_early_ends_quietly(command, lines):
    code, taken, errors = invoke_into_reader(*command.split(), lines=lines, env=TODAY)
    assert (code, errors) == (0, ""), errors
    assert all(taken)  # what was read arrived whole
