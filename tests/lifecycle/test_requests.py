"""Requests as data: what `nodes.migrate`, `cluster.upgrade` and `access.migrate` hand their engines, built without
invoke. A request is frozen, checks what it can on its own (an upgrade's --to) and names its resume command."""
from __future__ import annotations

import dataclasses

import pytest

from infra.ops.lifecycle.access import API, AccessRequest
from infra.ops.lifecycle.errors import MigrationRefused, UpgradeRefused
from infra.ops.lifecycle.migrate import MigrationRequest
from infra.ops.lifecycle.upgrade import UpgradeRequest


@pytest.mark.parametrize(("to", "line"), [
    ("1.3", "--to 1.3 is outside the supported range 1.29..1.36; pick a version in that range"),
    ("latest", "--to: 'latest' is not a Kubernetes minor version"),
    ("1.32.1", "--to: '1.32.1' is not a Kubernetes minor version"),
])
def test_an_upgrade_request_checks_its_target_when_made(to, line):
    with pytest.raises(UpgradeRefused) as refused:
        UpgradeRequest(env="dev", to=to)
    assert str(refused.value).startswith(line) and refused.value.exit_code == 2


def test_requests_name_their_resume_command_and_are_frozen():
    migration = MigrationRequest(env="dev", pool="general", to="green")
    assert migration.resume_command == ("`invoke nodes.migrate --env dev --pool general --to green --resume` "
                                        "(or --rollback)")
    assert (migration.parallelism, migration.add, migration.resume) == (8, False, False)  # the CLI's defaults
    upgrade = UpgradeRequest(env="prod", to="1.33", resume=True)
    assert upgrade.resume_command == "`invoke cluster.upgrade --env prod --to 1.33 --resume`"
    assert AccessRequest(env="dev").to == API
    for request in (migration, upgrade, AccessRequest(env="dev")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            request.env = "prod"


def test_access_and_node_migrations_refuse_with_one_class():
    from infra.ops.lifecycle import access, migrate

    assert access.MigrationRefused is migrate.MigrationRefused is MigrationRefused
