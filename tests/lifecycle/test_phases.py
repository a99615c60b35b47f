"""The phase runner behind nodes.migrate, cluster.upgrade and nat.rotate: one table of runs from a saved state.

Each row starts from what the store holds, runs (or resumes, or dry-runs) three steps where one may fail or
be interrupted, and checks which steps ran, what the store holds afterwards, and the one line a stop reads
as (with its exit code). The store is in memory here; the two real stores (the ConfigMap on kubesim, the
SSM parameters on moto) are checked against the same load/save/clear protocol below.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import boto3
import pytest

from infra.ops.errors import Failed, PlatformError, Refused
from infra.ops.io.kube import from_kubeconfig
from infra.ops.lifecycle.checkpoint import Checkpoint
from infra.ops.lifecycle.migrate import MigrationState
from infra.ops.lifecycle.phases import (
    FINISHED,
    CorruptState,
    Finished,
    NextStep,
    PhaseRunner,
    ResumeHint,
    State,
    Step,
    UnknownStep,
    read_state,
)
from infra.ops.lifecycle.upgrade import UpgradeState
from infra.ops.nat.rotation import RotationCheckpoint, RotationState

STEPS = ("declare", "create", "drain")
RESUME = "`invoke nodes.migrate --env dev --pool general --to green --resume`"
KEPT = f"progress is checkpointed: fix the cause, then {RESUME}"
LOST = "nothing was checkpointed: fix the cause, then rerun"


class StepFailed(Failed):
    """A failure a rerun continues from (listed in the hint)."""


class Unlisted(Failed):
    """A failure the hint does not list: its line stays as it is."""


@dataclass
class MemoryStore:
    """The Store protocol in a dict: what each save wrote, in order (None: cleared)."""

    state: State | None = None
    exists: bool = False
    writes: list[list[str] | None] = field(default_factory=list)
    where: str = "memory store"

    def load(self) -> State | None:
        self.exists = self.state is not None
        return copy.deepcopy(self.state)

    def save(self, state: State) -> None:
        self.state, self.exists = copy.deepcopy(state), True
        self.writes.append(list(state[FINISHED]))

    def clear(self) -> None:
        self.state, self.exists = None, False
        self.writes.append(None)


@dataclass(frozen=True)
class Case:
    id: str
    saved: list[str] | None        # finished steps the store holds before the run; None: nothing saved
    ran: tuple[str, ...]           # steps that ran, in order
    left: list[str] | None         # finished steps the store holds afterwards; None: cleared (or never saved)
    resume: bool = False
    dry_run: bool = False
    stop_at: str | None = None     # the step that stops the run ...
    stop: type[BaseException] = StepFailed  # ... with this
    line: str = ""                 # the message the stop carries (the task prints it as its one line)
    code: int = 0                  # its exit code


CASES = [
    Case("fresh-run", None, STEPS, None),
    Case("fresh-dry-run-runs-nothing", None, (), None, dry_run=True),
    Case("resume-mid-way", ["declare"], ("create", "drain"), None, resume=True),
    Case("resume-dry-run-runs-nothing", ["declare"], (), ["declare"], resume=True, dry_run=True),
    Case("resume-with-everything-finished-clears", list(STEPS), (), None, resume=True),
    Case("resume-with-nothing-saved", None, (), None, resume=True,
         line="no migration of pool general to resume; run without --resume", code=2),
    Case("start-over-a-run-in-progress", ["declare"], (), ["declare"],
         line="migration of pool general is already in progress (done: declare); use --resume or --rollback", code=2),
    Case("unknown-saved-step-refused", ["declare", "resize"], (), ["declare", "resize"], resume=True,
         line="memory store records step(s) resize that this run does not have (declare, create, drain); roll it "
              "back with --rollback", code=2),
    Case("failure-saves-progress", None, ("declare", "create"), ["declare"], stop_at="create",
         line=f"create failed; {KEPT}", code=1),
    Case("failure-in-the-first-step-leaves-a-checkpoint", None, ("declare",), [], stop_at="declare",
         line=f"declare failed; {KEPT}", code=1),
    Case("failure-after-resume", ["declare"], ("create", "drain"), ["declare", "create"], resume=True,
         stop_at="drain", line=f"drain failed; {KEPT}", code=1),
    Case("failure-the-hint-does-not-list", None, ("declare", "create"), ["declare"], stop_at="create",
         stop=Unlisted, line="create failed", code=1),
    Case("interrupt-saves-progress", None, ("declare", "create"), ["declare"], stop_at="create",
         stop=KeyboardInterrupt, line=KEPT, code=130),  # the task prints "interrupted: <line>"
]


def _run(case: Case) -> tuple[MemoryStore, list[str], list, str, int]:
    store = MemoryStore(state=None if case.saved is None else {FINISHED: list(case.saved)})
    ran: list[str] = []

    def step(name: str):
        def run(state: State) -> None:
            ran.append(name)
            if name == case.stop_at:
                raise case.stop(f"{name} failed")
        return run

    events: list = []
    runner = PhaseRunner(store, [Step(name, step(name)) for name in STEPS], events.append,
                         abandon="roll it back with --rollback")
    hint = ResumeHint(kept=KEPT, lost=LOST, failures=(StepFailed,), interrupts=True)
    line, code = "", 0
    try:
        with hint.around(store):
            state = runner.saved(case.resume, "migration of pool general",
                                 lambda s: f"done: {', '.join(s[FINISHED]) or 'nothing'}",
                                 "use --resume or --rollback", Refused)
            runner.run(state or {FINISHED: []}, dry_run=case.dry_run)
    except PlatformError as error:
        line, code = str(error), error.exit_code
    return store, ran, events, line, code


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_runs_from_a_saved_state(case):
    store, ran, _, line, code = _run(case)
    assert tuple(ran) == case.ran
    assert (store.state[FINISHED] if store.state else None) == case.left
    assert (line, code) == (case.line, case.code)
    if case.dry_run or case.code == 2:
        assert store.writes == [], "a dry run or a refusal saves nothing"


def test_progress_is_saved_after_every_step_and_reported_as_events():
    store, _, events, _, _ = _run(CASES[0])
    assert store.writes == [[], ["declare"], ["declare", "create"], list(STEPS), None]
    assert [(type(e).__name__, e.step.name) for e in events] == [
        ("NextStep", "declare"), ("Finished", "declare"), ("NextStep", "create"), ("Finished", "create"),
        ("NextStep", "drain"), ("Finished", "drain")]
    assert all(isinstance(e, NextStep | Finished) for e in events)


def test_dry_run_returns_the_steps_a_run_would_take():
    store = MemoryStore()
    runner = PhaseRunner(store, [Step(name, lambda state: pytest.fail("ran")) for name in STEPS])
    assert [s.name for s in runner.run({FINISHED: ["declare"]}, dry_run=True)] == ["create", "drain"]
    assert store.writes == []


def test_a_step_keeps_finer_progress_of_its_own():
    """The drain step saves each drained AZ; a failure in the next AZ keeps it, so the resumed run skips that AZ."""
    store, blocked, drained = MemoryStore(), {"eu-west-1b"}, []

    def drain(state: State) -> None:
        for az in ("eu-west-1a", "eu-west-1b"):
            if az in state.setdefault("azs", []):
                continue
            if az in blocked:
                raise StepFailed(f"{az} blocked")
            drained.append(az)
            state["azs"].append(az)
            store.save(state)

    runner = PhaseRunner(store, [Step("drain", drain)])
    with pytest.raises(StepFailed):
        runner.run({FINISHED: []})
    assert store.state == {FINISHED: [], "azs": ["eu-west-1a"]}
    blocked.clear()
    runner.run(store.load())
    assert drained == ["eu-west-1a", "eu-west-1b"] and store.state is None


def test_resume_hint_only_when_the_store_holds_progress():
    store, hint = MemoryStore(), ResumeHint(kept=KEPT, lost=LOST, failures=(StepFailed,), interrupts=True)
    with pytest.raises(StepFailed) as failed:  # the type is kept: callers still catch what the engine raised
        with hint.around(store):
            raise StepFailed("reading the cluster failed")
    assert str(failed.value) == f"reading the cluster failed; {LOST}"
    quiet = ResumeHint(kept="progress is kept, rerun `invoke nat.rotate --env dev` to resume", failures=(StepFailed,))
    with pytest.raises(StepFailed, match=r"^reading the cluster failed$"), quiet.around(store):
        raise StepFailed("reading the cluster failed")
    with pytest.raises(KeyboardInterrupt), quiet.around(store):  # without `interrupts`, Ctrl-C stays Ctrl-C
        raise KeyboardInterrupt
    store.save({FINISHED: ["declare"]})
    with pytest.raises(StepFailed, match="; progress is kept, rerun `invoke nat.rotate --env dev` to resume$"), \
            quiet.around(store):
        raise StepFailed("`pulumi up` failed")


def test_unknown_step_is_a_refusal():
    assert issubclass(UnknownStep, Refused)


# --- the two stores keep one protocol ----------------------------------------------------------------------------

@pytest.fixture(params=["configmap", "ssm"])
def open_store(request):
    """Opens the real store, as each machine would: a fresh object over the same ConfigMap or SSM parameters."""
    if request.param == "configmap":
        sim = request.getfixturevalue("kubesim")
        return lambda: Checkpoint(from_kubeconfig(sim.kubeconfig), "migrate-general")
    request.getfixturevalue("aws")
    return lambda: RotationCheckpoint(boto3.client("ssm", region_name="eu-west-1"), "dev", holder="test")


def test_store_load_save_clear(open_store):
    store = open_store()
    assert store.load() is None and not store.exists
    state = {"env": "dev", FINISHED: ["eu-west-1a/drain"], "old": "i-1"}
    store.save(state)
    assert store.exists
    elsewhere = open_store()
    assert not elsewhere.exists and elsewhere.load() == state and elsewhere.exists
    store.clear()
    assert store.load() is None and not store.exists
    store.clear()  # clearing nothing is fine
    assert store.where.endswith(("kube-system/eks-platform-migrate-general", "/eks-platform/dev/nat-rotation/checkpoint"))


def test_runner_resumes_from_either_store(open_store):
    store, ran = open_store(), []
    steps = [Step(name, lambda state, name=name: ran.append(name)) for name in STEPS]
    store.save({"env": "dev", FINISHED: ["declare"]})
    resumed = open_store()
    PhaseRunner(resumed, steps).run(resumed.load())
    assert ran == ["create", "drain"] and store.load() is None


# --- a saved state of the wrong shape is refused where the store reads it -------------------------------------------

MIGRATION = {"pool": "general", "source": "blue", "target": "green", FINISHED: ["declare"], "azs": []}
UPGRADE = {"from": "1.31", "to": "1.33", FINISHED: ["1.32/control-plane"]}
ROTATION = {"env": "dev", FINISHED: ["eu-west-1a/drain"], "old": "i-1"}
SHAPES = {"migration": (MigrationState, MIGRATION), "upgrade": (UpgradeState, UPGRADE),
          "rotation": (RotationState, ROTATION)}
CORRUPT = [  # (id, shape, the saved text, what the line says about it)
    ("migration-not-json", "migration", "{bad", "its state is not valid JSON (Expecting property name"),
    ("migration-other-object", "migration", '{"x": 1}', "its state lacks phases, pool, source, target, azs"),
    ("migration-list", "migration", "[1]", "its state is a JSON list, not an object"),
    ("migration-null", "migration", "null", "its state is a JSON null, not an object"),
    ("migration-missing-keys", "migration", json.dumps({k: v for k, v in MIGRATION.items() if k != "target"}),
     "its state lacks target;"),
    ("migration-phases-not-a-list", "migration", json.dumps({**MIGRATION, FINISHED: "declare"}),
     "its state phases: input should be a valid list"),
    ("upgrade-not-json", "upgrade", "", "its state is not valid JSON (Expecting value at character 0)"),
    ("upgrade-other-object", "upgrade", '{"x": 1}', "its state lacks phases, from, to"),
    ("upgrade-version-not-a-minor", "upgrade", json.dumps({**UPGRADE, "to": "latest"}),
     "its state to: 'latest' is not a Kubernetes minor version"),
    ("upgrade-version-a-number", "upgrade", json.dumps({**UPGRADE, "from": 1.31}),
     "its state from: input should be a valid string"),
    ("rotation-list", "rotation", "[1]", "its state is a JSON list, not an object"),
    ("rotation-of-another-stack", "rotation", json.dumps({**ROTATION, "env": "prod"}),
     "its state describes a rotation of prod, not of dev"),
]


@pytest.mark.parametrize(("shape", "raw", "problem"), [case[1:] for case in CORRUPT], ids=[c[0] for c in CORRUPT])
def test_a_state_of_the_wrong_shape_is_one_refusal(shape, raw, problem):
    with pytest.raises(CorruptState) as refused:
        read_state(raw, SHAPES[shape][0], "ConfigMap kube-system/eks-platform-x", "Delete it to start over.",
                   context={"env": "dev"})
    line = str(refused.value)
    assert line.startswith("ConfigMap kube-system/eks-platform-x does not hold a readable checkpoint: ") and problem in line
    assert line.endswith("nothing was changed and it is kept as found. Delete it to start over.") and "\n" not in line
    assert refused.value.exit_code == 2 and isinstance(refused.value, Refused)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_state_of_the_right_shape_comes_back_whole(shape):
    model, state = SHAPES[shape]
    assert read_state(json.dumps(state), model, "store", "", context={"env": "dev"}) == state  # extra keys kept


def test_the_configmap_store_refuses_a_corrupt_state_and_keeps_it(kubesim):
    kube = from_kubeconfig(kubesim.kubeconfig)
    kube.core.create_namespaced_config_map("kube-system", {"metadata": {"name": "eks-platform-migrate-general"},
                                                           "data": {"state": '{"x": 1}'}})
    before = kube.core.read_namespaced_config_map("eks-platform-migrate-general", "kube-system")
    store = Checkpoint(kube, "migrate-general", MigrationState)
    with pytest.raises(CorruptState, match=r"^ConfigMap kube-system/eks-platform-migrate-general does not hold a "
                                           r"readable checkpoint: its state lacks .*\(`kubectl -n kube-system delete "
                                           r"configmap eks-platform-migrate-general`\)$"):
        store.load()
    after = kube.core.read_namespaced_config_map("eks-platform-migrate-general", "kube-system")
    assert after.metadata.resource_version == before.metadata.resource_version and after.data == before.data
    kube.core.replace_namespaced_config_map("eks-platform-migrate-general", "kube-system", {
        "metadata": {"name": "eks-platform-migrate-general"}, "data": {"other": "x"}})
    with pytest.raises(CorruptState, match="its state is missing"):
        store.load()


def test_the_ssm_store_refuses_a_corrupt_state_and_keeps_it(aws):
    ssm = boto3.client("ssm", region_name="eu-west-1")
    ssm.put_parameter(Name="/eks-platform/dev/nat-rotation/checkpoint", Value="[1]", Type="String")
    store = RotationCheckpoint(ssm, "dev", holder="test")
    with pytest.raises(CorruptState, match=r"^SSM parameter /eks-platform/dev/nat-rotation/checkpoint does not hold "
                                           r"a readable checkpoint: .*`invoke nat.rotate --env dev --abort` drops it"):
        store.load()
    found = ssm.get_parameter(Name="/eks-platform/dev/nat-rotation/checkpoint")["Parameter"]
    assert (found["Value"], found["Version"]) == ("[1]", 1)
