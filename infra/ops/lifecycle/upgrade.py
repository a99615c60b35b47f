"""Sequential Kubernetes version upgrades: plan the one-minor steps, preflight each, then carry them out.

EKS moves the control plane one minor at a time and node kubelets may only lag so far, so a jump from
1.29 to 1.32 is three upgrades, each: control plane (with kube-proxy, which must match it), then the
managed node groups, then the other add-ons, then a health check. Every change is a stack-file edit
plus `pulumi up`, and progress is checkpointed in the cluster so an interrupted upgrade resumes.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import Field, field_validator

from infra import deprecations, eks_calendar
from infra.config import StackConfig
from infra.ops.io.eks import AddonBuild, ClusterFacts, Eks, EksError, NotOffered, addon_versions
from infra.ops.io.kube import Kube
from infra.ops.io.pulumi_cli import PulumiCLI
from infra.ops.io.stack_file import StackFile
from infra.ops.lifecycle import preflight
from infra.ops.lifecycle.checkpoint import Checkpoint, stops
from infra.ops.lifecycle.drain import Events, quiet
from infra.ops.lifecycle.errors import PreflightFailed, UpgradeRefused
from infra.ops.lifecycle.health import wait_healthy, wait_until
from infra.ops.lifecycle.phases import Event, Finished, NextStep, PhaseRunner, Progress, State, Step
from infra.ops.lifecycle.preflight import Check
from infra.versions import KubeVersion, supported_range

NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
AddonBuilds = Callable[[str, str, KubeVersion], list[AddonBuild]]


def upgrade_target(to: str) -> KubeVersion:
    """--to as a supported Kubernetes version; checked before any AWS or cluster call."""
    try:
        target = KubeVersion.parse(to)
    except ValueError as error:
        raise UpgradeRefused(f"--to: {error}") from None
    if not target.supported:
        raise UpgradeRefused(f"--to {target} is outside the supported range {supported_range()}; "
                             f"pick a version in that range")
    return target


def upgrade_path(current: KubeVersion, to: str) -> list[tuple[KubeVersion, KubeVersion]]:
    """One-minor steps from the running control plane to the target; refuses downgrades and unknown targets."""
    target = upgrade_target(to)
    if target < current:
        raise UpgradeRefused(f"--to {target} is older than the control plane ({current}); EKS cannot downgrade, "
                             f"restore from backup into a new cluster instead")
    steps, version = [], current
    while version < target:
        steps.append((version, version.next()))
        version = version.next()
    return steps


class UpgradeState(Progress):
    """An upgrade's checkpoint: the control plane version it started from and the target, e.g. "1.31", "1.33"."""

    source: str = Field(alias="from")
    to: str

    @field_validator("source", "to")
    @classmethod
    def _minor(cls, value: str) -> str:
        KubeVersion.parse(value)
        return value


@dataclass(frozen=True)
class UpgradeRequest:
    """One `cluster.upgrade` as data: what the CLI parsed (or a test wrote). `to` is checked when the request is
    made, before any AWS or cluster call; None (only to plan or dry-run) asks the planner to propose the target
    that reaches EKS standard support."""

    env: str
    to: str | None
    resume: bool = False
    plan_only: bool = False
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.to is not None:
            upgrade_target(self.to)
        elif not (self.plan_only or self.dry_run):
            raise UpgradeRefused(f"--to is required to upgrade, e.g. `invoke cluster.upgrade --env {self.env} --to "
                                 f"1.36`; with --plan-only or --dry-run and no --to the target reaching standard "
                                 f"support is proposed")

    @property
    def resume_command(self) -> str:
        return f"`invoke cluster.upgrade --env {self.env} --to {self.to} --resume`"


@dataclass(frozen=True)
class UpgradeStep:
    source: KubeVersion
    target: KubeVersion
    addons: dict[str, str] = field(default_factory=dict, hash=False)
    checks: tuple[Check, ...] = ()

    @property
    def blocked(self) -> list[Check]:
        return preflight.blocking(self.checks)


@dataclass(frozen=True)
class UpgradePlan:
    env: str
    cluster: str
    current: KubeVersion
    target: KubeVersion
    node_groups: dict[str, KubeVersion]
    steps: tuple[UpgradeStep, ...]
    support: tuple[str, ...] = ()  # the EKS calendar's word on the current version and the target, with days left
    proposed: bool = False  # no --to: the target is the nearest version in standard support

    @property
    def blocked(self) -> list[tuple[UpgradeStep, Check]]:
        return [(step, check) for step in self.steps for check in step.blocked]

    def playbook(self) -> str:
        """The whole upgrade as a Markdown runbook, for review or for running by hand."""
        lines = [f"# Upgrade {self.cluster} ({self.env}) from {self.current} to {self.target}", "",
                 f"Control plane: {self.current}. Node groups: "
                 + (", ".join(f"{name} {version}" for name, version in sorted(self.node_groups.items())) or "none"),
                 "", f"Steps: {' -> '.join([str(self.current), *(str(s.target) for s in self.steps)])}", ""]
        if self.proposed:
            lines += [f"Target {self.target}: the nearest version in EKS standard support (pass --to for another).",
                      ""]
        lines += [f"- {line}" for line in self.support] + ([""] if self.support else [])
        if not self.steps:
            lines.append("Nothing to do: the cluster already runs the target version.")
        for number, step in enumerate(self.steps, 1):
            kube_proxy = step.addons.get("kube-proxy")
            others = {name: version for name, version in step.addons.items() if name != "kube-proxy"}
            lines += [f"## Step {number}: {step.source} -> {step.target}", "", "### Preflight", "",
                      *preflight.markdown(step.checks), "", "### Actions", "",
                      f"1. Set `cluster.version: \"{step.target}\"`"
                      + (f" and `addons.kube-proxy: {kube_proxy}`" if kube_proxy else "")
                      + f", pin node groups at {step.source}; `pulumi up --stack {self.env}` (control plane).",
                      f"2. Unpin node group versions; `pulumi up` (managed rolling update of every node group to "
                      f"{step.target}, PDBs respected).",
                      "3. Set add-ons " + (", ".join(f"`{n}: {v}`" for n, v in sorted(others.items())) or "(none)")
                      + "; `pulumi up`.",
                      "4. Verify: every node Ready, Deployments available, StatefulSets ready.", ""]
        return "\n".join(lines)


@dataclass(frozen=True)
class Timeouts:
    healthy: float = 1800.0
    converge: float = 300.0
    poll: float = 5.0


def kubelet_version(node: client.V1Node) -> KubeVersion | None:
    text = (node.status and node.status.node_info and node.status.node_info.kubelet_version) or ""
    parts = text.lstrip("v").split(".")
    try:
        return KubeVersion.parse(f"{parts[0]}.{parts[1]}")
    except (ValueError, IndexError):
        return None


# Kinds whose served API versions have been removed over time, and how to list them.
_LIVE_KINDS: tuple[tuple[str, str, str], ...] = (
    ("AppsV1Api", "list_deployment_for_all_namespaces", "Deployment"),
    ("AppsV1Api", "list_stateful_set_for_all_namespaces", "StatefulSet"),
    ("AppsV1Api", "list_daemon_set_for_all_namespaces", "DaemonSet"),
    ("BatchV1Api", "list_cron_job_for_all_namespaces", "CronJob"),
    ("NetworkingV1Api", "list_ingress_for_all_namespaces", "Ingress"),
    ("AutoscalingV2Api", "list_horizontal_pod_autoscaler_for_all_namespaces", "HorizontalPodAutoscaler"),
    ("PolicyV1Api", "list_pod_disruption_budget_for_all_namespaces", "PodDisruptionBudget"),
)


def live_objects(kube: Kube) -> list[dict]:
    """Live objects as their writers sent them: the API version in managedFields and last-applied config.

    The server returns every object at the version asked for, so the version a client actually uses
    shows only in what the server recorded about each write.
    """
    objects = []
    for api_class, method, kind in _LIVE_KINDS:
        try:
            items = kube.call(getattr(kube.typed(getattr(client, api_class)), method)).items
        except ApiException as error:
            if error.status in (404, 405):
                continue
            raise
        for item in items:
            meta = {"name": item.metadata.name, "namespace": item.metadata.namespace}
            used = {entry.api_version for entry in item.metadata.managed_fields or [] if entry.api_version}
            applied = (item.metadata.annotations or {}).get("kubectl.kubernetes.io/last-applied-configuration")
            if applied:
                try:
                    used.add(json.loads(applied).get("apiVersion", ""))
                except json.JSONDecodeError:
                    pass
            objects += [{"apiVersion": version, "kind": kind, "metadata": meta} for version in sorted(used) if version]
    return objects


def rendered_objects(env: str, k8s_root: Path | None = None) -> list[dict]:
    """The env's kustomize overlay as `kubectl kustomize` renders it; [] when the env has no overlay."""
    from infra.ops.io import manifests

    root = k8s_root or manifests.K8S_ROOT
    overlay = root / "overlays" / env
    if not (overlay / "kustomization.yaml").is_file():
        return []
    return [manifest.obj for manifest in manifests.render(overlay)]


class Upgrade:
    """Plans and executes `cluster.upgrade` for one stack."""

    def __init__(self, request: UpgradeRequest, cfg: StackConfig, stack: StackFile, eks: Eks, kube: Kube,
                 cli: PulumiCLI, addon_builds: AddonBuilds | None = None,
                 objects: Callable[[], list[dict]] | None = None, on_event: Events = quiet,
                 timeouts: Timeouts | None = None, today: date | None = None):
        self.request, self.cfg, self.stack, self.eks, self.kube, self.cli = request, cfg, stack, eks, kube, cli
        self.today = today or eks_calendar.today()  # the day versions are judged on (the EKS calendar)
        self.addon_builds = addon_builds or (lambda region, addon, version: addon_versions(region, addon, version))
        self.objects = objects or (lambda: rendered_objects(cfg.env) + live_objects(kube))
        self.on_event = on_event
        self.timeouts = timeouts or Timeouts()
        self.checkpoint = Checkpoint(kube, "upgrade-" + cfg.cluster.name.lower().replace("_", "-"), UpgradeState)

    def _stops(self) -> AbstractContextManager[None]:
        return stops(self.checkpoint, self.request.resume_command)

    # --- plan ---------------------------------------------------------------------------------------

    def plan(self) -> UpgradePlan:
        """The one-minor steps to request.to, each preflighted; from the checkpoint's start when one is saved."""
        with self._stops():
            return self._plan(self.request.to)

    def _plan(self, to: str | None) -> UpgradePlan:
        facts = self.eks.cluster(self.cfg.cluster.name)
        state = self.checkpoint.load()
        current = KubeVersion.parse(state["from"]) if state else facts.version
        if not state and self.cfg.version != facts.version:
            raise UpgradeRefused(f"Pulumi.{self.cfg.env}.yaml has cluster.version {self.cfg.version} but EKS runs "
                                 f"{facts.version}; run `invoke up --env {self.cfg.env}` or fix the file first")
        proposed = to is None
        if to is None:
            reaching = eks_calendar.CALENDAR.standard_target(current.minor, self.today)
            if reaching is None:
                raise UpgradeRefused(f"no Kubernetes version from {current} on is in EKS standard support on "
                                     f"{self.today}; pass --to (see `invoke cluster.versions`)")
            to = reaching.version
        path = upgrade_path(current, to)
        nodes = self.kube.call(self.kube.core.list_node).items
        objects = self.objects() if path else []
        steps: list[UpgradeStep] = []
        addons = dict(self.cfg.cluster.addons)
        for source, target in path:
            checks, chosen = self._preflight(facts, nodes, objects, addons, source, target, first=not steps)
            checks.append(preflight.support_window(target, self.today, final=target == path[-1][1]))
            addons.update(chosen)
            steps.append(UpgradeStep(source, target, chosen, tuple(checks)))
        final = path[-1][1] if path else current
        support = [preflight.support_window(version, self.today, final=True).detail
                   for version in dict.fromkeys([current, final])]
        return UpgradePlan(env=self.cfg.env, cluster=facts.name, current=current, target=final,
                           node_groups={group.name: group.version for group in facts.node_groups}, steps=tuple(steps),
                           support=tuple(f"{line} (EKS calendar, {self.today})" for line in support),
                           proposed=proposed)

    def _preflight(self, facts: ClusterFacts, nodes: list[client.V1Node], objects: list[dict],
                   addons: dict[str, str], source: KubeVersion, target: KubeVersion,
                   first: bool) -> tuple[list[Check], dict[str, str]]:
        checks = [preflight.deprecated_apis(deprecations.scan(objects, target), target)]
        chosen: dict[str, str] = {}
        for addon, current in sorted(addons.items()):
            builds, error, unknown = None, None, None
            try:
                builds = self.addon_builds(self.cfg.region, addon, target)
            except NotOffered as lacking:
                unknown = str(lacking)
            except EksError as failure:
                error = str(failure)
            check, version = preflight.addon_compatibility(addon, current, builds, target, error, unknown)
            checks.append(check)
            if version:
                chosen[addon] = version
        kubelets: dict[str, KubeVersion] = {}
        for group in facts.node_groups:
            kubelets[f"node group {group.name}"] = group.version if first else source
        for node in nodes:
            kubelet = kubelet_version(node)
            managed = NODEGROUP_LABEL in (node.metadata.labels or {})
            if kubelet and not (managed and not first):
                kubelets[f"node {node.metadata.name}"] = kubelet
        checks.append(preflight.kubelet_skew(target, kubelets))
        al2 = [group.name for group in facts.node_groups if group.ami_type.startswith("AL2_")]
        al2 += [f"{pool}/{gen} (stack file)" for pool, spec in self.cfg.node_pools.items()
                for gen, generation in spec.generations.items() if generation.is_al2]
        pools = sorted(pool for pool, spec in self.cfg.node_pools.items() if any(g.is_al2 for g in spec.generations.values()))
        checks.append(preflight.al2_node_groups(target, al2, self.cfg.env, pools))
        try:
            checks.append(preflight.upgrade_insights(self.eks.insights(facts.name, target), target))
        except EksError as failure:
            checks.append(preflight.upgrade_insights(None, target, error=str(failure)))
        subnets = sorted({subnet for group in facts.node_groups for subnet in group.subnets})
        checks.append(preflight.subnet_ips(self.eks.subnets(subnets), list(facts.node_groups)))
        return checks, chosen

    # --- execute ------------------------------------------------------------------------------------

    def runner(self, plan: UpgradePlan) -> PhaseRunner:
        """Per one-minor step: control plane (with kube-proxy), node groups, other add-ons, health; each checkpointed
        as "<version>/<phase>"."""
        steps = [Step(f"{step.target}/{phase}", _for(step, run), label=f"{step.source} -> {step.target}: {phase}")
                 for step in plan.steps
                 for phase, run in (("control-plane", self._control_plane), ("node-groups", self._node_groups),
                                    ("add-ons", self._add_ons), ("verified", self._verified))]
        return PhaseRunner(self.checkpoint, steps, self._progress,
                           abandon=f"delete {self.checkpoint.where} to start over")

    def _progress(self, event: Event) -> None:
        if isinstance(event, NextStep):
            self.on_event("phase", str(event.step))
        elif isinstance(event, Finished) and event.step.name.endswith("/verified"):
            self.on_event("step", f"cluster at {event.step.name.partition('/')[0]}")

    def execute(self, plan: UpgradePlan) -> None:
        """Carry out `plan`, or with request.resume continue the checkpointed upgrade at its first unfinished step."""
        with self._stops():
            self._execute(plan)

    def _execute(self, plan: UpgradePlan) -> None:
        runner = self.runner(plan)
        state = runner.saved(self.request.resume, f"upgrade of {plan.cluster}", _progress_text, "rerun with --resume",
                             UpgradeRefused)
        if state and state["to"] != str(plan.target):
            raise UpgradeRefused(f"the upgrade in progress goes to {state['to']}, not {plan.target}; "
                                 f"rerun with --to {state['to']} --resume")
        if plan.blocked:
            raise PreflightFailed("; ".join(f"{step.target}: {check.check}: {check.detail}"
                                            for step, check in plan.blocked))
        self.cli.require()  # before the checkpoint and the first stack-file edit
        runner.run(state or {"from": str(plan.current), "to": str(plan.target), "phases": []})

    def _control_plane(self, step: UpgradeStep) -> None:
        kube_proxy = {name: v for name, v in step.addons.items() if name == "kube-proxy"}
        self.stack.update_cluster(version=str(step.target), addons=kube_proxy, pin_generations=str(step.source))
        self.cli.up(yes=True)
        self._converge(lambda facts: [] if facts.version == step.target and facts.status == "ACTIVE" else
                       [f"control plane at {facts.version} ({facts.status})"], f"control plane {step.target}")

    def _node_groups(self, step: UpgradeStep) -> None:
        self.stack.follow_cluster_version()
        self.cli.up(yes=True)
        self._converge(lambda facts: [f"{g.name} at {g.version} ({g.status})" for g in facts.node_groups
                                      if g.version != step.target or g.status != "ACTIVE"],
                       f"node groups {step.target}")

    def _add_ons(self, step: UpgradeStep) -> None:
        others = {name: v for name, v in step.addons.items() if name != "kube-proxy"}
        if others:
            self.stack.update_cluster(addons=others)
            self.cli.up(yes=True)

    def _verified(self, step: UpgradeStep) -> None:
        wait_healthy(self.kube, f"healthy cluster at {step.target}", self.timeouts.healthy, self.timeouts.poll,
                     self.on_event)

    def _converge(self, problems: Callable[[ClusterFacts], list[str]], what: str) -> None:
        """Poll EKS until it reports what `pulumi up` asked for; a read failing meanwhile is retried."""
        def check() -> list[str]:
            try:
                return problems(self.eks.cluster(self.cfg.cluster.name))
            except EksError as error:
                return [str(error)]
        wait_until(check, what, self.timeouts.converge, self.timeouts.poll, self.on_event)


def _for(step: UpgradeStep, run: Callable[[UpgradeStep], None]) -> Callable[[State], None]:
    """A phase of one version step as a runner step (its progress is the runner's list: it needs no state)."""
    return lambda _state: run(step)


def _progress_text(state: State) -> str:
    """e.g. "to 1.33, step 1.32, done: control-plane, node-groups": the version last worked on and its phases."""
    finished = [name.partition("/") for name in state.get("phases", [])]
    step = finished[-1][0] if finished else None
    done = [phase for version, _, phase in finished if version == step]
    return f"to {state['to']}, step {step}, done: {', '.join(done) or 'nothing'}"
