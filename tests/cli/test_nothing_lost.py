"""Nothing lost, nothing half-true: what the engines keep, refuse and say when something is off.

Deploy history that cannot be parsed is kept and refused (kubesim); stack-file edits keep the comments of
other keys; `deploy --tag` refuses an uncommitted overlay; `invoke up` asks on a terminal and refuses without
one (fake pulumi); one NAT rotation per stack across machines (moto SSM); resume hints only when there is
something to resume.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import pty
import select
import shutil
import subprocess
import time

import boto3
import pytest

from infra.config import ROOT, load_stack_config
from infra.lambdas.nat.health import DRAIN_TAG
from infra.ops.deploy import history
from infra.ops.deploy import target as catalog
from infra.ops.deploy.pipeline import Deploy
from infra.ops.deploy.report import Reporter
from infra.ops.deploy.requests import DeployRequest
from infra.ops.deploy.rollout import Reason
from infra.ops.deploy.target import BadInput
from infra.ops.io.kube import from_kubeconfig
from infra.ops.io.pulumi_cli import PulumiError
from infra.ops.io.stack_file import StackFile
from infra.ops.lifecycle.checkpoint import Checkpoint
from infra.ops.nat.rotation import RotationCheckpoint, RotationLocked
from tests.support import fake_pulumi
from tests.support.cli import invoke, one_line_error, spawn
from tests.support.deploy_world import NAMESPACE, REGION
from tests.support.identity import declare_identity
from tests.support.legacy import LEGACY_DEV
from tests.support.nat_rotation import install_pulumi, instance_tags, rotation
from tests.support.nat_world import build

# --- deploy history ------------------------------------------------------------------------------------------

HISTORY = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


def _history_map(kube, data: dict[str, str]) -> dict:
    return kube.request("POST", HISTORY, body={"apiVersion": "v1", "kind": "ConfigMap", "data": data,
                                                "metadata": {"name": "deploy-history-api", "namespace": NAMESPACE}})


def _record(tag: str) -> history.DeployRecord:
    return history.DeployRecord(service="api", env="dev", action="deploy", tag=tag, image=f"api:{tag}", who="w",
                                started="s", finished="f", verdict=Reason.Complete, ok=True)


@pytest.mark.parametrize(("data", "problem"), [
    ({"history.json": '[{"service": "api", "tag": "v1"'}, "history.json is not JSON"),
    ({"history.json": '{"service": "api"}'}, "holds a JSON dict, not a list of records"),
    ({"history.json": json.dumps([{"service": "api", "tag": "v1"}])}, "record 1 of 1 is not a deploy record"),
    ({"notes": "kept by hand"}, "it has no history.json key"),
], ids=["truncated", "object", "partial-record", "no-key"])
def test_unreadable_history_is_refused_and_kept_as_it_is(deploy_env, data, problem):
    kube = deploy_env.kube
    before = _history_map(kube, data)
    with pytest.raises(history.HistoryUnreadable) as refused:
        history.read(kube, NAMESPACE, "api")
    assert problem in str(refused.value) and f"{NAMESPACE}/deploy-history-api" in str(refused.value)
    assert refused.value.exit_code == 2
    with pytest.raises(history.HistoryUnreadable):
        history.append(kube, NAMESPACE, _record("v9"))
    after = kube.request("GET", f"{HISTORY}/deploy-history-api")
    assert after["data"] == data and after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_append_keeps_the_other_keys_of_the_history_map(deploy_env):
    _history_map(deploy_env.kube, {"history.json": "[]", "notes": "kept by hand"})
    history.append(deploy_env.kube, NAMESPACE, _record("v1"))
    found = deploy_env.kube.request("GET", f"{HISTORY}/deploy-history-api")["data"]
    assert found["notes"] == "kept by hand" and [r.tag for r in history.read(deploy_env.kube, NAMESPACE, "api")] == ["v1"]


def test_deploy_refuses_before_applying_anything_over_an_unreadable_history(deploy_env):
    _history_map(deploy_env.kube, {"history.json": "not json"})
    with pytest.raises(history.HistoryUnreadable, match="kubectl -n apps-dev get configmap deploy-history-api"):
        deploy_env.engine("v1").run()
    assert deploy_env.kube.request("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")["items"] == []
    assert deploy_env.kube.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases")["items"] == []
    assert deploy_env.kube.request("GET", f"{HISTORY}/deploy-history-api")["data"] == {"history.json": "not json"}
    preview = deploy_env.engine("v1", dry_run=True).run()  # a dry run shows its diff and says the deploy would refuse
    assert preview and "a deploy would be refused: deploy history ConfigMap" in deploy_env.output


def test_tasks_report_an_unreadable_history_in_one_line(deploy_env):
    _history_map(deploy_env.kube, {"history.json": "[1, 2"})
    declare_identity(deploy_env.cluster, "dev")
    kubeconfig = str(deploy_env.cluster.kubeconfig)
    shown = invoke("history", "api", "--env", "dev", "--kubeconfig", kubeconfig)
    one_line_error(shown, 2, "deploy history ConfigMap apps-dev/deploy-history-api cannot be read",
                   "history.json is not JSON", "kubectl -n apps-dev delete configmap deploy-history-api")
    deployed = invoke("deploy", "api", "--env", "dev", "--tag", "v1", "--kubeconfig", kubeconfig)
    one_line_error(deployed, 2, "apps-dev/deploy-history-api", "nothing was changed")
    assert deploy_env.kube.request("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")["items"] == []


# --- stack file comments ---------------------------------------------------------------------------------------

GENERATIONS = """\
      generations:
        blue:
          ami_type: AL2_x86_64
        green:
          ami_type: AL2023_x86_64_STANDARD
"""
COMMENTED = """\
      generations:
        # before blue
        blue:
          ami_type: AL2_x86_64  # on blue's line
          # inside blue, after its last key
        # before green
        green:
          # inside green, first line
          ami_type: AL2023_x86_64_STANDARD

        # before red
        red: {ami_type: AL2023_x86_64_STANDARD}  # on red's line
        # end of the generations
"""


@pytest.fixture
def stacks(tmp_path):
    for env in ("dev", "prod"):
        shutil.copy(ROOT / f"Pulumi.{env}.yaml", tmp_path / f"Pulumi.{env}.yaml")
    return tmp_path


@pytest.fixture
def legacy_stacks(tmp_path):
    """dev as an older cluster has it (1.32, blue AL2 beside green AL2023): generations without own keys."""
    shutil.copy(LEGACY_DEV, tmp_path / "Pulumi.dev.yaml")
    return tmp_path


@pytest.mark.parametrize(("generation", "block"), [
    ("blue", ["        blue:", "          ami_type: AL2_x86_64  # on blue's line",
              "          # inside blue, after its last key"]),
    ("green", ["        green:", "          # inside green, first line", "          ami_type: AL2023_x86_64_STANDARD"]),
    ("red", ["        red: {ami_type: AL2023_x86_64_STANDARD}  # on red's line"]),
], ids=["first", "middle", "last"])
def test_removing_a_generation_keeps_the_comments_of_everything_else(legacy_stacks, generation, block):
    stacks = legacy_stacks
    path = stacks / "Pulumi.dev.yaml"
    assert GENERATIONS in path.read_text()
    path.write_text(path.read_text().replace(GENERATIONS, COMMENTED))
    before = path.read_text().splitlines()
    StackFile("dev", stacks).remove_generation("general", generation)
    after = path.read_text().splitlines()
    assert after == [line for line in before if line not in block]  # its block and the comments inside it only
    assert set(load_stack_config("dev", stacks).node_pools["general"].generations) == {"blue", "green", "red"} - {
        generation}


def test_removing_the_last_generation_keeps_the_comment_of_the_next_section(legacy_stacks):
    """The bug as it was: nodes.migrate retiring `green` of dev took the `# Cluster access` comment with it."""
    stacks = legacy_stacks
    path = stacks / "Pulumi.dev.yaml"
    before = path.read_text().splitlines()
    StackFile("dev", stacks).remove_generation("general", "green")
    assert path.read_text().splitlines() == [line for line in before if line not in (
        "        green:", "          ami_type: AL2023_x86_64_STANDARD")]
    StackFile("dev", stacks).add_generation("general", "green", "AL2023_x86_64_STANDARD")
    assert path.read_text().splitlines() == before  # and adding it back puts it before that comment again


def test_upgrade_pins_and_unpins_around_the_comments(stacks):
    """cluster.upgrade pins node versions (a key appended to each generation) and drops the pins again: the comment
    after the last generation stays in front of the section it describes."""
    path = stacks / "Pulumi.dev.yaml"
    before = path.read_text()
    stack = StackFile("dev", stacks)
    stack.update_cluster(version="1.36", addons={"kube-proxy": "v1.36.0-eksbuild.1"}, pin_generations="1.35")
    pinned = path.read_text()
    assert ('          instance_types: [t3a.large]\n          version: "1.35"\n  # Cluster access: dev stays'
            in pinned)
    stack.follow_cluster_version()
    assert path.read_text() == before.replace('version: "1.35"', 'version: "1.36"').replace(
        "kube-proxy: v1.35.3-eksbuild.13", "kube-proxy: v1.36.0-eksbuild.1")


def test_unpinning_keeps_the_comments_after_the_pin(legacy_stacks):
    stacks = legacy_stacks
    path = stacks / "Pulumi.dev.yaml"
    path.write_text(path.read_text().replace(
        "          ami_type: AL2023_x86_64_STANDARD\n",
        '          ami_type: AL2023_x86_64_STANDARD\n          version: "1.32"  # pinned for the upgrade\n'
        "            # more about the pin\n          # about green, after the pin\n"))
    before = path.read_text().splitlines()
    StackFile("dev", stacks).follow_cluster_version()
    assert path.read_text().splitlines() == [line for line in before if line not in (
        '          version: "1.32"  # pinned for the upgrade', "            # more about the pin")]


# --- deploy --tag and uncommitted manifests ---------------------------------------------------------------------

@pytest.fixture
def checkout(tmp_path):
    """A git checkout holding a copy of infra/k8s, committed."""
    shutil.copytree(ROOT / "infra" / "k8s", tmp_path / "repo" / "infra" / "k8s")
    repo = tmp_path / "repo"

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo, check=True,
                       capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "manifests")
    return repo


def _tag_deploy(env, repo, **options) -> Deploy:
    request = DeployRequest(catalog.resolve("api", "dev", k8s_root=repo / "infra" / "k8s"), region=REGION, tag="v1",
                            who="tester", timeout_s=30, smoke_budget_s=3, **options)
    return Deploy(env.kube, request, reporter=Reporter(mode="json", stream=io.StringIO()))


def test_tag_deploy_refuses_uncommitted_manifests_unless_allowed(deploy_env, checkout):
    overlay = checkout / "infra" / "k8s" / "overlays" / "dev" / "kustomization.yaml"
    overlay.write_text(overlay.read_text() + "\n# edited, not committed\n")
    with pytest.raises(BadInput, match=r"1 uncommitted change\(s\) under infra/k8s \(infra/k8s/overlays/dev/"
                                       r"kustomization.yaml\); commit them, or pass --allow-dirty"):
        _tag_deploy(deploy_env, checkout).run()
    assert deploy_env.kube.request("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")["items"] == []
    assert _tag_deploy(deploy_env, checkout, dry_run=True).run()  # a dry run changes nothing: allowed
    record = _tag_deploy(deploy_env, checkout, allow_dirty=True).run()
    assert record.ok and deploy_env.running_images() == {deploy_env.image("v1")}


def test_tag_deploy_outside_a_checkout_needs_allow_dirty(deploy_env, tmp_path):
    shutil.copytree(ROOT / "infra" / "k8s", tmp_path / "plain" / "infra" / "k8s")
    with pytest.raises(BadInput, match="is not in a git checkout.*pass --allow-dirty"):
        _tag_deploy(deploy_env, tmp_path / "plain").run()


# --- invoke up ---------------------------------------------------------------------------------------------------

def _on_a_terminal(args: list[str], answer: bytes, pulumi) -> tuple[int, str, list[dict]]:
    """Run invoke with a pty as stdin/stdout/stderr; type `answer` at the prompt. (exit code, output, pulumi calls
    seen while the prompt waited)."""
    leader, follower = pty.openpty()
    proc = spawn(*args, stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    output, at_prompt = b"", None
    deadline = time.monotonic() + 120  # a bound, not a measurement: the loop ends as soon as the output does
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if at_prompt is None and b"Apply this preview" in output:
                at_prompt = pulumi.calls()  # every pulumi run so far has exited
                os.write(leader, answer)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
        os.close(leader)
    assert at_prompt is not None, output.decode(errors="replace")
    return code, output.decode(errors="replace"), at_prompt


def _argv(calls: list[dict]) -> list[list[str]]:
    return [call["argv"][:call["argv"].index("--stack")] for call in calls]


def test_up_on_a_terminal_shows_the_preview_and_applies_once_confirmed(tmp_path, monkeypatch):
    pulumi = fake_pulumi.install(tmp_path, monkeypatch)
    code, output, at_prompt = _on_a_terminal(["up", "--env", "dev"], b"y\n", pulumi)
    assert code == 0, output
    pack = ["--policy-pack", "infra/policy"]
    assert _argv(at_prompt) == [["stack", "output", "--json"], ["preview", "--diff", *pack]]  # preview, then the question
    assert _argv(pulumi.calls())[2:] == [["up", "--yes", "--skip-preview", *pack]]


def test_up_on_a_terminal_declined_applies_nothing(tmp_path, monkeypatch):
    pulumi = fake_pulumi.install(tmp_path, monkeypatch)
    code, output, _ = _on_a_terminal(["up", "--env", "dev"], b"n\n", pulumi)
    assert code == 1 and "not confirmed: nothing was applied to stack dev" in output
    assert [argv[0] for argv in _argv(pulumi.calls())] == ["stack", "preview"]


def test_up_without_a_terminal_needs_yes(tmp_path, monkeypatch):
    pulumi = fake_pulumi.install(tmp_path, monkeypatch)
    refused = invoke("up", "--env", "dev", stdin="")
    one_line_error(refused, 2, "stdin is not a terminal", "pass --yes")
    assert pulumi.calls() == []
    applied = invoke("up", "--env", "dev", "--yes", stdin="")
    assert applied.returncode == 0, applied.stderr
    assert _argv(pulumi.calls()) == [["stack", "output", "--json"],
                                             ["up", "--yes", "--skip-preview", "--policy-pack", "infra/policy"]]


# --- nat.rotate: one rotation per stack, from any machine --------------------------------------------------------

@pytest.fixture
def nat_world(aws, tmp_path, monkeypatch):
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    return build(2)


def test_a_second_rotation_is_refused_naming_the_holder(nat_world, tmp_path, monkeypatch):
    fake = install_pulumi(nat_world, tmp_path, monkeypatch)
    refusals: list[str] = []

    def meanwhile_on_another_laptop(line: str) -> None:
        if refusals:
            return
        other, _ = rotation(nat_world, tmp_path, holder="bob@laptop-b pid 22")
        for attempt in (other.run, other.abort):
            with pytest.raises(RotationLocked) as refused:
                attempt()
            refusals.append(str(refused.value))

    first, _ = rotation(nat_world, tmp_path, holder="alice@laptop-a pid 11", report=meanwhile_on_another_laptop)
    first.run()
    assert len(refusals) == 2 and all("in progress by alice@laptop-a pid 11 since " in r and "--take-over" in r
                                      for r in refusals)
    assert len(fake.ups()) == 2  # only alice's rotation replaced instances
    assert first.checkpoint.lock() is None and first.checkpoint.load() is None  # released at the end


def test_an_interrupted_rotation_resumes_from_another_machine(nat_world, tmp_path, monkeypatch):
    fake = install_pulumi(nat_world, tmp_path, monkeypatch, fail_on_up=1)
    first, _ = rotation(nat_world, tmp_path, holder="alice@laptop-a pid 11")
    with pytest.raises(PulumiError):
        first.run()
    assert first.checkpoint.lock() is None  # released on failure; the progress stays
    other, lines = rotation(nat_world, tmp_path, holder="bob@laptop-b pid 22")
    assert other.checkpoint.load()["phases"] == ["eu-west-1a/drain"]  # A's replacement is the next step
    other.run()
    assert lines[0] == "resuming rotation of dev at eu-west-1a: replace" and len(fake.ups()) == 3
    assert other.checkpoint.load() is None and other.checkpoint.lock() is None


def test_a_lock_left_by_a_killed_rotation_is_taken_over_only_when_asked(nat_world, tmp_path, monkeypatch):
    install_pulumi(nat_world, tmp_path, monkeypatch, fail_on_up=1)
    gone, _ = rotation(nat_world, tmp_path, holder="alice@laptop-a pid 11")
    with pytest.raises(PulumiError):
        gone.run()
    gone.checkpoint.acquire()  # alice reran, and that process was killed: its lock stays behind
    drained = nat_world.instances["eu-west-1a"]
    assert instance_tags(nat_world, drained)[DRAIN_TAG].startswith("rotate;until=")
    other, lines = rotation(nat_world, tmp_path, holder="bob@laptop-b pid 22")
    with pytest.raises(RotationLocked, match="by alice@laptop-a pid 11 since"):
        other.abort()
    assert instance_tags(nat_world, drained)[DRAIN_TAG].startswith("rotate;until=") and other.checkpoint.load() is not None
    assert any("locked by alice@laptop-a pid 11" in line for line in other.plan())
    other.request = dataclasses.replace(other.request, take_over=True)
    other.abort()
    assert DRAIN_TAG not in instance_tags(nat_world, drained)
    assert other.checkpoint.lock() is None and other.checkpoint.load() is None  # --abort released both
    assert "eu-west-1a step replace" in lines[-1]


def test_task_refuses_a_second_rotation_in_one_line(nat_world, tmp_path, monkeypatch):
    fake = install_pulumi(nat_world, tmp_path, monkeypatch)
    held = RotationCheckpoint(boto3.client("ssm", region_name=REGION), "dev", holder="alice@laptop-a pid 11")
    held.acquire()
    before = nat_world.targets()
    refused = invoke("nat.rotate", "--env", "dev")
    one_line_error(refused, 1, "a NAT rotation of dev is in progress by alice@laptop-a pid 11 since",
                   "/eks-platform/dev/nat-rotation/lock", "--take-over")
    assert nat_world.targets() == before and fake.ups() == [] and held.lock().holder == "alice@laptop-a pid 11"


# --- resume hints only when there is something to resume ---------------------------------------------------------

def _lifecycle_message(call, checkpoint) -> tuple[int, str]:
    """How a migration stopping in `call` reads on the command line: the engine's guard adds what to do next, the
    task wrapper prints it as one line with its exit code."""
    from invoke import Context
    from invoke.exceptions import Exit

    from infra.cli.common import task
    from infra.ops.lifecycle.checkpoint import stops

    @task
    def migrating(c):
        with stops(checkpoint, "`invoke nodes.migrate --env dev --pool general --to green --resume`"):
            call()

    with pytest.raises(Exit) as stopped:
        migrating(Context())
    return stopped.value.code, str(stopped.value.message)


def _failing_up():
    raise PulumiError("`pulumi up` failed for stack dev (exit 255)")


def test_resume_hint_only_with_a_checkpoint(kubesim):
    checkpoint = Checkpoint(from_kubeconfig(kubesim.kubeconfig), "migrate-general")
    assert checkpoint.load() is None
    code, message = _lifecycle_message(_failing_up, checkpoint)
    assert code == 1 and "--resume" not in message and "\n" not in message
    assert message.endswith("exit 255); nothing was checkpointed: fix the cause, then rerun")

    def interrupted():
        raise KeyboardInterrupt

    assert _lifecycle_message(interrupted, checkpoint) == (130, "interrupted: nothing was checkpointed: fix the "
                                                                "cause, then rerun")
    checkpoint.save({"phases": ["declare"]})
    code, message = _lifecycle_message(_failing_up, checkpoint)
    assert code == 1 and message.endswith("progress is checkpointed: fix the cause, then `invoke nodes.migrate "
                                          "--env dev --pool general --to green --resume`")
    elsewhere = Checkpoint(from_kubeconfig(kubesim.kubeconfig), "migrate-general")  # another machine finds the progress
    elsewhere.load()
    assert "--resume" in _lifecycle_message(_failing_up, elsewhere)[1]
    checkpoint.clear()
    assert "--resume" not in _lifecycle_message(_failing_up, checkpoint)[1]


def test_an_upgrade_failing_in_its_first_up_can_be_resumed(aws, kubesim_factory, tmp_path, monkeypatch):
    """The stack file is edited before the first `pulumi up`: a failure there must leave a checkpoint (the rerun
    would otherwise be refused, the file saying 1.33 while EKS runs 1.32)."""
    from tests.support import node_world as world
    from tests.support.upgrade_world import AZS, legacy_stack, upgrade

    sim = kubesim_factory(nodes=False)
    sim.add_nodes("general", "green", zones=AZS, per_zone=1)
    kube = from_kubeconfig(sim.kubeconfig)
    world.namespace(kube.api)
    stack = legacy_stack(tmp_path, al2=False)
    fake_pulumi.seed_eks(stack.config())
    pulumi = fake_pulumi.install(tmp_path, monkeypatch, fail_on_up=1)
    engine = upgrade(stack, kube, "1.33")
    with pytest.raises(PulumiError):
        engine.execute(engine.plan())
    assert engine.checkpoint.exists and 'version: "1.33"' in stack.path.read_text()
    pulumi.set(fail_on_up=None)
    resumed = upgrade(stack, kube, "1.33", resume=True)
    with fake_pulumi.EksFollower(pulumi.log):
        resumed.execute(resumed.plan())
    assert resumed.checkpoint.load() is None and load_stack_config("dev", tmp_path).cluster.version == "1.33"
