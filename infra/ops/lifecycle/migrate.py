"""Blue/green node migration: bring up a new generation of a pool, move the pods over AZ by AZ, retire the old.

Changing a managed node group's AMI type in place replaces every node at once; a new generation next
to the old one lets pods move under their PodDisruptionBudgets, one AZ at a time, with zone-bound
volumes landing back in their AZ. Infrastructure changes are stack-file edits plus `pulumi up`; the
progress lives in a ConfigMap so an interrupted migration resumes or rolls back from anywhere.
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from functools import partial

from kubernetes import client
from rich.table import Table

from infra.config import ConfigError, NodePool, StackConfig
from infra.ops.io.kube import Kube
from infra.ops.io.pulumi_cli import PulumiCLI
from infra.ops.io.stack_file import StackFile
from infra.ops.lifecycle import preflight
from infra.ops.lifecycle.checkpoint import Checkpoint, stops
from infra.ops.lifecycle.drain import ZONE, Drain, DrainPolicy, Events, claims, pod_key, quiet
from infra.ops.lifecycle.errors import MigrationRefused, PreflightFailed
from infra.ops.lifecycle.health import is_ready, unhealthy_workloads, wait_until
from infra.ops.lifecycle.phases import Event, NextStep, PhaseRunner, Progress, Step
from infra.ops.lifecycle.preflight import FAIL, PASS, WARN, Check

AL2023_FOR = {"AL2_x86_64": "AL2023_x86_64_STANDARD", "AL2_ARM_64": "AL2023_ARM_64_STANDARD"}


@dataclass(frozen=True)
class MigrationRequest:
    """One `nodes.migrate` as data: what the CLI parsed (or a test wrote), handed to the engine."""

    env: str
    pool: str
    to: str | None          # the generation to move to; None only for a rollback
    source: str | None = None  # --from: the generation to leave (default: the pool's other one)
    add: bool = False       # declare --to in the stack file first
    ami_type: str | None = None
    parallelism: int = 8    # pods evicted at once
    resume: bool = False
    rollback: bool = False
    dry_run: bool = False

    @property
    def resume_command(self) -> str:
        return f"`invoke nodes.migrate --env {self.env} --pool {self.pool} --to {self.to} --resume` (or --rollback)"


class MigrationState(Progress):
    """A migration's checkpoint: the generations it moves between and the AZs already drained."""

    pool: str
    source: str
    target: str
    azs: list[str]


@dataclass(frozen=True)
class ZonePlan:
    az: str
    nodes: tuple[str, ...]
    pods: tuple[str, ...]
    zone_bound: tuple[str, ...]


@dataclass(frozen=True)
class MigrationPlan:
    env: str
    pool: str
    source: str
    target: str
    source_ami: str
    target_ami: str
    declared: bool
    zones: tuple[ZonePlan, ...]
    checks: tuple[Check, ...]
    blocking_pdbs: tuple[str, ...] = field(default=())

    @property
    def blocked(self) -> list[Check]:
        return preflight.blocking(self.checks)

    def zone_table(self) -> Table:
        view = Table(title=f"{self.pool}: {self.source} ({self.source_ami}) -> {self.target} ({self.target_ami})")
        for column in ("AZ", "old nodes", "pods to move", "zone-bound pods"):
            view.add_column(column, overflow="fold")
        for zone in self.zones:
            view.add_row(zone.az, _listed(zone.nodes), _listed(zone.pods), _listed(zone.zone_bound))
        return view

    def steps(self) -> list[str]:
        add = [] if self.declared else [f"add generation {self.target} ({self.target_ami}) to Pulumi.{self.env}.yaml"]
        return [*add, f"pulumi up: create {self.pool}-{self.target}-* node groups; wait for Ready nodes in every AZ",
                f"cordon the {sum(len(z.nodes) for z in self.zones)} {self.source} node(s)",
                *(f"drain {z.az}: evict {len(z.pods)} pod(s), wait for {len(z.zone_bound)} zone-bound pod(s) "
                  f"Running in {z.az}" for z in self.zones),
                "verify Deployments available and StatefulSets ready",
                f"remove generation {self.source} from Pulumi.{self.env}.yaml; pulumi up (deletes its node groups)"]


def _listed(names: tuple[str, ...], most: int = 12) -> str:
    if not names:
        return "0"
    more = f" (+{len(names) - most} more)" if len(names) > most else ""
    return f"{len(names)}: {', '.join(names[:most])}{more}"


@dataclass(frozen=True)
class MigrationTimeouts:
    nodes_ready: float = 1800.0
    healthy: float = 900.0
    poll: float = 5.0


def _selects(selector: client.V1LabelSelector | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in (selector.match_labels or {}).items()):
        return False
    for expression in selector.match_expressions or []:
        present, value = expression.key in labels, labels.get(expression.key)
        if ((expression.operator == "In" and value not in (expression.values or []))
                or (expression.operator == "NotIn" and present and value in (expression.values or []))
                or (expression.operator == "Exists" and not present)
                or (expression.operator == "DoesNotExist" and present)):
            return False
    return True


def _never_allows(pdb: client.V1PodDisruptionBudget, pods: int) -> str | None:
    """Why this budget can never allow an eviction at its workload's current size, or None."""
    spec = pdb.spec
    if spec.max_unavailable is not None and str(spec.max_unavailable) in ("0", "0%"):
        return "maxUnavailable is 0"
    if spec.min_available is not None:
        minimum = str(spec.min_available)
        if minimum == "100%" or (minimum.isdigit() and int(minimum) >= pods):
            return f"minAvailable {minimum} with {pods} pod(s)"
    return None


def blocking_pdbs(pdbs: list[client.V1PodDisruptionBudget], pods: list[client.V1Pod],
                  moving: list[client.V1Pod]) -> list[str]:
    """Budgets covering pods that must move and that would refuse every eviction, with the reason."""
    found = []
    for pdb in pdbs:
        namespace = pdb.metadata.namespace
        covered = [p for p in pods if p.metadata.namespace == namespace and _selects(pdb.spec.selector,
                                                                                      p.metadata.labels or {})]
        if not any(p.metadata.namespace == namespace and _selects(pdb.spec.selector, p.metadata.labels or {})
                   for p in moving):
            continue
        reason = _never_allows(pdb, len(covered))
        if reason:
            found.append(f"{namespace}/{pdb.metadata.name} ({reason})")
    return sorted(found)


class Migration:
    """`nodes.migrate` for one pool of one stack. `policy` tunes the drain; its parallelism is the request's."""

    def __init__(self, request: MigrationRequest, stack: StackFile, kube: Kube, cli: PulumiCLI,
                 policy: DrainPolicy | None = None, timeouts: MigrationTimeouts | None = None,
                 on_event: Events = quiet):
        self.request, self.stack, self.kube, self.cli = request, stack, kube, cli
        self.pool, self.target = request.pool, request.to or ""
        self.timeouts = timeouts or MigrationTimeouts()
        self.on_event = on_event
        self.drain = Drain(kube, replace(policy or DrainPolicy(), parallelism=request.parallelism), on_event)
        self.checkpoint = Checkpoint(kube, f"migrate-{self.pool}", MigrationState)

    def _stops(self) -> AbstractContextManager[None]:
        return stops(self.checkpoint, self.request.resume_command)

    # --- plan ---------------------------------------------------------------------------------------

    def _pool(self, cfg: StackConfig) -> NodePool:
        if self.pool not in cfg.node_pools:
            raise MigrationRefused(f"--pool {self.pool!r} is not a node pool of {cfg.env}; "
                                   f"use one of: {', '.join(cfg.node_pools)}")
        return cfg.node_pools[self.pool]

    def _source(self, pool: NodePool, state: dict | None) -> str:
        if state:
            return state["source"]
        others = [gen for gen in pool.generations if gen != self.target]
        requested = self.request.source
        if requested:
            if requested not in pool.generations or requested == self.target:
                raise MigrationRefused(f"--from {requested!r} is not another generation of pool "
                                       f"{self.pool}; use one of: {', '.join(others) or 'none'}")
            return requested
        if not others:
            raise MigrationRefused(f"pool {self.pool} runs only generation {self.target}; nothing to migrate")
        if len(others) != 1:
            raise MigrationRefused(f"pool {self.pool} has generations {', '.join(others) or 'none'} besides "
                                   f"{self.target}; name the one to leave with --from")
        return others[0]

    def _target_ami(self, pool: NodePool, source: str) -> tuple[str, bool]:
        if self.target in pool.generations:
            return pool.generations[self.target].ami_type, True
        if not self.request.add:
            raise MigrationRefused(f"generation {self.target!r} is not declared in node_pools.{self.pool}.generations; "
                                   f"add it to Pulumi.{self.stack.env}.yaml or pass --add")
        source_ami = pool.generations[source].ami_type if source in pool.generations else ""
        ami = self.request.ami_type or AL2023_FOR.get(source_ami, source_ami)
        try:
            self.stack.add_generation(self.pool, self.target, ami, write=False)
        except ConfigError as error:
            raise MigrationRefused(f"--add would make an invalid stack config: {error}") from None
        return ami, False

    def _nodes(self, generation: str) -> list[client.V1Node]:
        return self.drain.nodes(f"pool={self.pool},generation={generation}")

    def plan(self) -> MigrationPlan:
        """Everything checked before any change: declaration, capacity per AZ, budgets that never allow eviction."""
        with self._stops():
            return self._plan()

    def _plan(self) -> MigrationPlan:
        cfg = self.stack.config()
        pool = self._pool(cfg)
        state = self.checkpoint.load()
        source = self._source(pool, state)
        target_ami, declared = self._target_ami(pool, source)
        if state and "declare" in state["phases"]:
            declared = True
        by_zone: dict[str, list[str]] = defaultdict(list)
        for node in self._nodes(source):
            by_zone[(node.metadata.labels or {}).get(ZONE, "?")].append(node.metadata.name)
        pods = self.kube.call(self.kube.core.list_pod_for_all_namespaces).items
        zones, moving = [], []
        strays = sorted(set(by_zone) - set(cfg.pool_azs(pool)))  # never retire nodes the plan did not drain
        for az in cfg.pool_azs(pool) + strays:
            evict, _ = self.drain.plan(by_zone.get(az, []))
            moving += evict
            zones.append(ZonePlan(az, tuple(by_zone.get(az, [])), tuple(pod_key(p) for p in evict),
                                  tuple(pod_key(p) for p in evict if claims(p))))
        checks = [self._declared_check(declared, target_ami)]
        checks += self._capacity_checks(cfg, pool, by_zone)
        pdbs = self.kube.call(self.kube.typed(client.PolicyV1Api).list_pod_disruption_budget_for_all_namespaces).items
        blocking = blocking_pdbs(pdbs, pods, moving)
        checks.append(Check("PodDisruptionBudgets", FAIL, "never allow an eviction: " + "; ".join(blocking),
                            "allow one disruption (maxUnavailable: 1, or minAvailable below replicas) or scale the "
                            "workload up, then rerun") if blocking else
                      Check("PodDisruptionBudgets", PASS, f"{len(pdbs)} budget(s), none blocks a drain forever"))
        if not any(z.nodes for z in zones) and not state:
            checks.append(Check("old generation", WARN, f"no {source} nodes found; nothing to drain"))
        return MigrationPlan(env=cfg.env, pool=self.pool, source=source, target=self.target,
                             source_ami=pool.generations[source].ami_type if source in pool.generations else "(retired)",
                             target_ami=target_ami, declared=declared,
                             zones=tuple(zones), checks=tuple(checks), blocking_pdbs=tuple(blocking))

    def _declared_check(self, declared: bool, ami: str) -> Check:
        where = f"node_pools.{self.pool}.generations.{self.target}"
        if declared:
            return Check("target declared", PASS, f"{where} ({ami})")
        return Check("target declared", PASS, f"--add will write {where} with ami_type {ami}")

    def _capacity_checks(self, cfg: StackConfig, pool: NodePool, by_zone: dict[str, list[str]]) -> list[Check]:
        short = {az: len(names) for az, names in by_zone.items() if len(names) > pool.desired_size}
        if short:
            need = max(short.values())
            return [Check("capacity per AZ", FAIL,
                          ", ".join(f"{az} runs {n} old node(s)" for az, n in sorted(short.items()))
                          + f" but the new generation starts {pool.desired_size} per AZ",
                          f"set node_pools.{self.pool}.desired_size to {need} (max_size >= {need}) and rerun")]
        return [Check("capacity per AZ", PASS, f"new generation starts {pool.desired_size} node(s) per AZ, "
                      f"old runs at most {max((len(v) for v in by_zone.values()), default=0)}")]

    # --- run ----------------------------------------------------------------------------------------

    def runner(self, plan: MigrationPlan) -> PhaseRunner:
        """The migration's steps, in order; each finished one is checkpointed."""
        steps = [Step(name, partial(run, plan)) for name, run in (
            ("declare", self._declare), ("create", self._create), ("cordon", self._cordon),
            ("drain", self._drain), ("verify", self._verify), ("retire", self._retire))]
        return PhaseRunner(self.checkpoint, steps, self._progress,
                           abandon=f"roll it back: invoke nodes.migrate --env {self.stack.env} --pool {self.pool} "
                                   f"--rollback")

    def _progress(self, event: Event) -> None:
        if isinstance(event, NextStep):
            self.on_event("phase", event.step.name)

    def run(self, plan: MigrationPlan) -> None:
        """Carry out `plan`, or with request.resume continue the checkpointed migration at its first unfinished step."""
        with self._stops():
            self._run(plan)

    def _run(self, plan: MigrationPlan) -> None:
        runner = self.runner(plan)
        state = runner.saved(self.request.resume, f"migration of pool {self.pool}",
                             lambda s: f"to {s['target']}, done: {', '.join(s['phases']) or 'nothing'}",
                             "use --resume or --rollback", MigrationRefused)
        if state and state["target"] != self.target:
            raise MigrationRefused(f"the migration in progress goes to {state['target']}, not {self.target}; "
                                   f"use --to {state['target']} --resume, or --rollback")
        if plan.blocked and not state:
            raise PreflightFailed("; ".join(f"{c.check}: {c.detail}" for c in plan.blocked))
        self.cli.require()  # before the checkpoint and the stack-file edit: creating nodes needs `pulumi up`
        runner.run(state or {"pool": self.pool, "source": plan.source, "target": self.target, "phases": [],
                             "azs": []})
        self.on_event("done", f"pool {self.pool} runs on {self.target}")

    def _declare(self, plan: MigrationPlan, state: dict) -> None:
        if not plan.declared:
            self.stack.add_generation(self.pool, self.target, plan.target_ami)
            self.on_event("declare", f"added {self.pool}.generations.{self.target} ({plan.target_ami})")

    def _create(self, plan: MigrationPlan, state: dict) -> None:
        self.cli.up(yes=True)
        cfg = self.stack.config()
        pool = self._pool(cfg)
        azs = cfg.pool_azs(pool)

        def missing() -> list[str]:
            ready: dict[str, int] = defaultdict(int)
            for node in self._nodes(self.target):
                if is_ready(node):
                    ready[(node.metadata.labels or {}).get(ZONE, "?")] += 1
            return [f"{az}: {ready[az]}/{pool.desired_size} Ready" for az in azs if ready[az] < pool.desired_size]

        wait_until(missing, f"{self.target} nodes Ready in every AZ", self.timeouts.nodes_ready, self.timeouts.poll,
                   self.on_event)
        # A rolled-back earlier attempt leaves the target cordoned; it must take pods now.
        self.drain.cordon([n.metadata.name for n in self._nodes(self.target) if n.spec.unschedulable], False)

    def _cordon(self, plan: MigrationPlan, state: dict) -> None:
        self.drain.cordon(n.metadata.name for n in self._nodes(plan.source))

    def _drain(self, plan: MigrationPlan, state: dict) -> None:
        for zone in plan.zones:
            if zone.az in state["azs"]:
                continue
            names = [n.metadata.name for n in self._nodes(plan.source)
                     if (n.metadata.labels or {}).get(ZONE) == zone.az]
            self.drain.cordon(n for n in names)  # nodes that joined the old group since the cordon phase
            evict, _ = self.drain.plan(names)
            report = self.drain.drain(names)
            self.drain.wait_zone_bound(evict, zone.az)
            state["azs"].append(zone.az)
            self.checkpoint.save(state)
            self.on_event("drained", f"{zone.az}: {len(report.evicted)} pod(s) moved in {report.seconds:.1f}s, "
                                     f"{report.refusals} budget refusal(s) waited out")

    def _verify(self, plan: MigrationPlan, state: dict) -> None:
        wait_until(lambda: unhealthy_workloads(self.kube), "all workloads healthy", self.timeouts.healthy,
                   self.timeouts.poll, self.on_event)

    def _retire(self, plan: MigrationPlan, state: dict) -> None:
        if plan.source in self._pool(self.stack.config()).generations:
            self.stack.remove_generation(self.pool, plan.source)
        self.cli.up(yes=True)
        wait_until(lambda: [n.metadata.name for n in self._nodes(plan.source)], f"{plan.source} nodes gone",
                   self.timeouts.nodes_ready, self.timeouts.poll, self.on_event)

    # --- rollback -----------------------------------------------------------------------------------

    def rollback(self) -> str:
        """Send pods back: uncordon the old generation, cordon the new. Refused once the old one is retired."""
        with self._stops():
            return self._rollback()

    def _rollback(self) -> str:
        state = self.checkpoint.load()
        if state is None:
            raise MigrationRefused(f"no migration of pool {self.pool} in progress to roll back")
        if state["source"] not in self._pool(self.stack.config()).generations:
            raise MigrationRefused(f"generation {state['source']} is already retired; migrate back instead: "
                                   f"invoke nodes.migrate --env {self.stack.env} --pool {self.pool} "
                                   f"--to {state['source']} --add")
        self.drain.cordon((n.metadata.name for n in self._nodes(state["source"])), False)
        self.drain.cordon(n.metadata.name for n in self._nodes(state["target"]))
        self.checkpoint.clear()
        return (f"pool {self.pool}: {state['source']} uncordoned, {state['target']} cordoned. Pods move back as they "
                f"restart; to delete the {state['target']} node groups remove node_pools.{self.pool}.generations."
                f"{state['target']} from Pulumi.{self.stack.env}.yaml and run `invoke up --env {self.stack.env}`")
