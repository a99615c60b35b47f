"""nodes.migrate end to end on kubesim with a fake `pulumi`: AL2 blue -> AL2023 green in two AZs.

The fake pulumi cannot reach the emulator, so a provisioner thread plays EKS: when it sees the first
`pulumi up` in the fake's log it registers the new generation's nodes, on the second it terminates
the old ones. The engine only observes the cluster, as it would in AWS.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from infra.config import ROOT
from infra.ops.errors import Interrupted
from infra.ops.io.kube import from_kubeconfig
from infra.ops.io.pulumi_cli import PulumiCLI
from infra.ops.io.stack_file import StackFile
from infra.ops.lifecycle.drain import DrainPolicy
from infra.ops.lifecycle.migrate import (
    Migration,
    MigrationRefused,
    MigrationRequest,
    MigrationTimeouts,
    PreflightFailed,
)
from infra.ops.lifecycle.preflight import FAIL
from tests.support import fake_pulumi
from tests.support import node_world as world
from tests.support.identity import declare_identity
from tests.support.legacy import LEGACY_DEV

AZS = ("eu-west-1a", "eu-west-1b")
PER_ZONE = 2


class Provisioner(threading.Thread):
    """Plays EKS for the fake pulumi: 1st up -> new nodes Ready, 2nd up -> old nodes gone."""

    def __init__(self, cluster, log: Path):
        super().__init__(daemon=True)
        self.cluster, self.log, self.handled = cluster, log, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            ups = [c for c in fake_pulumi.calls(self.log) if c["argv"][:1] == ["up"]]
            for call in ups[self.handled:]:
                generations = {key.split("/")[1] for key in fake_pulumi.snapshot(call)["generations"]}
                present = {n["metadata"]["labels"]["generation"] for n in self.cluster.nodes(pool="general")}
                for generation in sorted(generations - present):
                    time.sleep(0.2)  # instances take a moment to join
                    self.cluster.add_nodes("general", generation, zones=AZS, per_zone=PER_ZONE)
                for generation in sorted(present - generations):
                    for node in self.cluster.nodes(pool="general", generation=generation):
                        self.cluster.remove_node(node["metadata"]["name"])
                self.handled += 1
            time.sleep(0.05)


@pytest.fixture
def world_dev(kubesim_factory, tmp_path, monkeypatch):
    """dev stack copy with pool general = blue (AL2) only, 2 nodes per AZ, running api, db (volumes), logs."""
    shutil.copy(LEGACY_DEV, tmp_path / "Pulumi.dev.yaml")  # 1.32, blue AL2 (the real dev has no AL2 left)
    stack = StackFile("dev", tmp_path)
    with stack.edit() as config:
        pool = config["eks-platform:node_pools"]["general"]
        pool["desired_size"], pool["max_size"] = PER_ZONE, 3
        del pool["generations"]["green"]
    log = fake_pulumi.install(tmp_path, monkeypatch).log
    sim = kubesim_factory(nodes=False)
    sim.add_nodes("general", "blue", zones=AZS, per_zone=PER_ZONE)
    kube = from_kubeconfig(sim.kubeconfig)  # the engines' client, as the CLI builds it
    api = kube.api
    world.namespace(api)
    world.deployment(api, "api", 4, max_unavailable=1, grace=5)
    world.statefulset(api, "db", 2, min_available=1)
    world.daemonset(api, "logs")
    world.wait_running(sim, 4 + 2 + 4)
    provisioner = Provisioner(sim, log)
    provisioner.start()
    yield sim, stack, log, kube
    provisioner.stop.set()
    provisioner.join()


def _migration(stack, kube, tmp_path, on_event=lambda *_: None, **request) -> Migration:
    """The engine as a test builds it: a request object, no invoke."""
    request = MigrationRequest(**{"env": "dev", "pool": "general", "to": "green", "add": True, "parallelism": 4,
                                  **request})
    return Migration(request, stack, kube, PulumiCLI(stack="dev", cwd=stack.root),
                     policy=DrainPolicy(backoff=0.05, backoff_max=0.3),
                     timeouts=MigrationTimeouts(nodes_ready=20, healthy=20, poll=0.05), on_event=on_event)


def _ups(log):
    return [{**c, "config": fake_pulumi.snapshot(c)} for c in fake_pulumi.calls(log) if c["argv"][:1] == ["up"]]


def _checkpoint(kube):
    return [cm.metadata.name for cm in kube.core.list_namespaced_config_map("kube-system").items
            if cm.metadata.name.startswith("eks-platform-migrate")]


def test_migration_end_to_end(world_dev, tmp_path):
    sim, stack, log, kube = world_dev
    zones_before = {p["metadata"]["name"]: world.zone_of(sim, p["spec"]["nodeName"])
                    for p in world.running(sim) if p["metadata"]["labels"]["app"] == "db"}
    engine = _migration(stack, kube, tmp_path)
    plan = engine.plan()
    assert (plan.source, plan.target, plan.target_ami, plan.declared) == ("blue", "green", "AL2023_x86_64_STANDARD",
                                                                          False)
    assert [len(z.nodes) for z in plan.zones] == [2, 2] and sum(len(z.pods) for z in plan.zones) == 6
    assert sorted(p for z in plan.zones for p in z.zone_bound) == ["apps-dev/db-0", "apps-dev/db-1"]
    assert not plan.blocked
    with world.BudgetWatch(sim, {"api": 3, "db": 1}) as watch:
        engine.run(plan)
    assert watch.violations == []
    ups = _ups(log)
    assert len(ups) == 2 and all("--yes" in u["argv"] for u in ups)
    assert set(ups[0]["config"]["generations"]) == {"general/blue", "general/green"}
    assert ups[0]["config"]["generations"]["general/green"]["ami_type"] == "AL2023_x86_64_STANDARD"
    assert set(ups[1]["config"]["generations"]) == {"general/green"}
    text = stack.path.read_text()
    assert text.startswith("# dev: two AZs") and "green:\n          ami_type: AL2023_x86_64_STANDARD" in text
    assert "blue" not in text
    apps = [p for p in world.running(sim) if p["metadata"]["labels"]["app"] in ("api", "db")]
    green = {n["metadata"]["name"] for n in sim.nodes(generation="green")}
    assert len(apps) == 6 and all(p["spec"]["nodeName"] in green for p in apps)
    zones_after = {p["metadata"]["name"]: world.zone_of(sim, p["spec"]["nodeName"])
                   for p in apps if p["metadata"]["labels"]["app"] == "db"}
    assert zones_after == zones_before
    assert sim.nodes(generation="blue") == [] and _checkpoint(kube) == []


def _interrupt_after_first_zone(event, message):
    if event == "drained":
        raise KeyboardInterrupt


def test_interrupted_migration_resumes_where_it_stopped(world_dev, tmp_path):
    sim, stack, log, kube = world_dev
    events: list[tuple[str, str]] = []
    engine = _migration(stack, kube, tmp_path, on_event=_interrupt_after_first_zone)
    with pytest.raises(Interrupted, match="^progress is checkpointed: fix the cause, then `invoke nodes.migrate "
                                          "--env dev --pool general --to green --resume`"):
        engine.run(engine.plan())
    assert _checkpoint(kube) == ["eks-platform-migrate-general"]
    fresh = _migration(stack, kube, tmp_path)
    with pytest.raises(MigrationRefused, match="in progress.*--resume or --rollback"):
        fresh.run(fresh.plan())
    resumed = _migration(stack, kube, tmp_path, on_event=lambda e, m: events.append((e, m)), resume=True)
    resumed.run(resumed.plan())
    phases = [m for e, m in events if e == "phase"]
    assert phases == ["drain", "verify", "retire"]
    assert [m.split(":")[0] for e, m in events if e == "drained"] == ["eu-west-1b"]
    assert len(_ups(log)) == 2 and sim.nodes(generation="blue") == [] and _checkpoint(kube) == []
    with pytest.raises(MigrationRefused, match="runs only generation green; nothing to migrate"):
        resumed.run(resumed.plan())


def test_rollback_uncordons_old_and_cordons_new(world_dev, tmp_path):
    sim, stack, log, kube = world_dev
    engine = _migration(stack, kube, tmp_path, on_event=_interrupt_after_first_zone)
    with pytest.raises(Interrupted):
        engine.run(engine.plan())
    message = _migration(stack, kube, tmp_path, rollback=True).rollback()
    assert "blue uncordoned, green cordoned" in message
    assert not any(n["spec"].get("unschedulable") for n in sim.nodes(generation="blue"))
    assert all(n["spec"].get("unschedulable") for n in sim.nodes(generation="green"))
    assert _checkpoint(kube) == [] and "green" in stack.path.read_text()
    with pytest.raises(MigrationRefused, match="no migration of pool general in progress"):
        _migration(stack, kube, tmp_path, rollback=True).rollback()


def test_blocking_budget_and_short_capacity_stop_before_any_change(world_dev, tmp_path):
    sim, stack, log, kube = world_dev
    world.deployment(kube.api, "pinned", 2, max_unavailable=0)
    sim.add_nodes("general", "blue", zones=AZS[:1], per_zone=1)  # 3 old nodes in 1a, the new gen starts 2
    sim.add_nodes("general", "blue", zones=("eu-west-1c",), per_zone=1)  # a stray outside the pool's AZs
    world.wait_running(sim, 12 + 2)
    before = stack.path.read_text()
    engine = _migration(stack, kube, tmp_path)
    plan = engine.plan()
    assert [z.az for z in plan.zones] == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]  # strays are drained too
    failed = {c.check: c for c in plan.checks if c.status == FAIL}
    assert set(failed) == {"PodDisruptionBudgets", "capacity per AZ"}
    assert "apps-dev/pinned (maxUnavailable is 0)" in failed["PodDisruptionBudgets"].detail
    assert "maxUnavailable: 1" in failed["PodDisruptionBudgets"].fix
    assert "eu-west-1a runs 3 old node(s)" in failed["capacity per AZ"].detail
    assert "desired_size to 3" in failed["capacity per AZ"].fix
    with pytest.raises(PreflightFailed):
        engine.run(plan)
    assert stack.path.read_text() == before and _ups(log) == [] and _checkpoint(kube) == []
    assert not any(n["spec"].get("unschedulable") for n in sim.nodes())


def test_undeclared_target_without_add_is_refused(world_dev, tmp_path):
    _, stack, _, kube = world_dev
    with pytest.raises(MigrationRefused, match="'green' is not declared.*pass --add"):
        _migration(stack, kube, tmp_path, add=False).plan()
    with pytest.raises(MigrationRefused, match="--add would make an invalid stack config.*needs arm64"):
        _migration(stack, kube, tmp_path, ami_type="AL2023_ARM_64_STANDARD").plan()
    assert "green" not in stack.path.read_text()
    with pytest.raises(MigrationRefused, match="--pool 'gpu' is not a node pool of dev; use one of: general"):
        Migration(MigrationRequest(env="dev", pool="gpu", to="green"), stack, kube, PulumiCLI(stack="dev")).plan()


def test_task_dry_run_prints_plan_and_changes_nothing(world_dev):
    sim, _, log, _ = world_dev
    declare_identity(sim, "dev")
    before = (ROOT / "Pulumi.dev.yaml").read_text()
    result = subprocess.run([str(ROOT / ".venv/bin/invoke"), "nodes.migrate", "--env", "dev", "--pool", "general",
                             "--to", "green", "--dry-run", "--kubeconfig", sim.kubeconfig],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    # The real dev file starts 1 node per AZ, the world runs 2: a FAIL, so exit 1 with the plan still printed.
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "blue (AL2023_x86_64_STANDARD) -> green (AL2023_x86_64_STANDARD)" in out and "preflight" in out
    assert "drain eu-west-1a" in out and "capacity per AZ" in out and "FAIL" in out  # the table is printed
    assert result.stderr.strip().splitlines() == [
        "error: dry run, nothing changed: 1 preflight check(s) FAIL (capacity per AZ); the migration would stop "
        "before step 1"]
    assert "apps-dev/db-" in out  # pods to move are named, zone-bound ones too
    assert (ROOT / "Pulumi.dev.yaml").read_text() == before and _ups(log) == []
    from invoke import Context
    from invoke.exceptions import Exit

    from infra.cli.nodes import nodes_migrate

    with pytest.raises(Exit) as refused:
        nodes_migrate(Context(), env="dev", pool="nope", to="green", dry_run=True, kubeconfig="/nonexistent")
    assert refused.value.code == 2 and "--pool 'nope' is not a node pool" in str(refused.value.message)
