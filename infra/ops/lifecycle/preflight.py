"""Preflight checks: pure functions from gathered facts to rows of (check, status, detail, fix).

Facts are gathered once (EKS, the cluster, the stack file); each check only judges them, so every
check can be tested with a failing fixture and all of them print as one table before anything changes.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from rich.table import Table

from infra.deprecations import ApiFinding
from infra.eks_calendar import CALENDAR, Support, extended_extra_usd_per_month
from infra.ops.io.eks import AddonBuild, Insight, NodeGroupFacts, SubnetFacts
from infra.versions import KubeVersion, skew_problem

PASS, WARN, FAIL, SKIP = "pass", "warn", "FAIL", "skip"
UNKNOWN = "UNKNOWN"  # the facts could not be learned (the endpoint lacks the call): a person looks, nothing blocks
# IPs one surge node takes from its subnet with the VPC CNI's default warm ENI (node IP + one ENI of pod IPs).
IPS_PER_SURGE_NODE = 30


@dataclass(frozen=True)
class Check:
    check: str
    status: str
    detail: str
    fix: str = ""

    @property
    def blocks(self) -> bool:
        return self.status == FAIL


def blocking(checks: Iterable[Check]) -> list[Check]:
    return [check for check in checks if check.blocks]


def table(checks: Iterable[Check], title: str) -> Table:
    view = Table(title=title)
    for column in ("check", "status", "detail", "fix"):
        view.add_column(column, overflow="fold")
    colour = {PASS: "green", WARN: "yellow", FAIL: "red", SKIP: "dim", UNKNOWN: "magenta"}
    for check in checks:
        view.add_row(check.check, f"[{colour[check.status]}]{check.status}[/]", check.detail, check.fix)
    return view


def markdown(checks: Iterable[Check]) -> list[str]:
    lines = ["| check | status | detail | fix |", "| --- | --- | --- | --- |"]
    lines += [f"| {c.check} | {c.status} | {_cell(c.detail)} | {_cell(c.fix)} |" for c in checks]
    return lines


def _cell(text: str) -> str:
    """Text as one Markdown table cell: one line, no column break, no markup (an error quoting a page stays text)."""
    return " ".join(text.split()).replace("|", "/").replace("<", "&lt;")


# --- upgrade checks ---------------------------------------------------------------------------------

def deprecated_apis(findings: list[ApiFinding], target: KubeVersion) -> Check:
    removed = [f for f in findings if f.removed]
    deprecated = [f for f in findings if not f.removed]
    if removed:
        return Check("removed APIs", FAIL, "; ".join(str(f) for f in removed[:5]),
                     "move these objects to the replacement API and re-apply them before upgrading")
    if deprecated:
        return Check("removed APIs", WARN, "; ".join(str(f) for f in deprecated[:5]),
                     "plan the move to the replacement API")
    return Check("removed APIs", PASS, f"no object uses an API removed in {target}")


def addon_compatibility(addon: str, current: str | None, builds: list[AddonBuild] | None,
                        target: KubeVersion, error: str | None = None,
                        unknown: str | None = None) -> tuple[Check, str | None]:
    """(row, version to set at this step): keep a compatible build, else take the target's default. `unknown`: why
    the builds could not be learned (the endpoint lacks the call), so the step keeps `current` and a person checks."""
    name = f"add-on {addon}"
    if unknown:
        lookup = f"`aws eks describe-addon-versions --addon-name {addon} --kubernetes-version {target}`"
        follow = (f"; kube-proxy should follow the control plane: set cluster.addons.kube-proxy to a {target} build"
                  if addon == "kube-proxy" else "")
        return Check(name, UNKNOWN, f"cannot learn the builds EKS offers for {target} ({unknown}); the step keeps "
                     f"{current or 'the EKS default'}", f"check them with {lookup}{follow}"), None
    if error:
        return Check(name, FAIL, f"cannot list builds for {target}: {error}",
                     "check AWS credentials and region, then rerun"), None
    if not builds:
        return Check(name, FAIL, f"EKS offers no {addon} build for {target}",
                     f"remove {addon} from cluster.addons or pick another target"), None
    offered = [build.version for build in builds]
    keep = current in offered and not (addon == "kube-proxy")
    chosen = current if keep else next((b.version for b in builds if b.default), offered[0])
    if keep:
        return Check(name, PASS, f"{current} is compatible with {target}"), chosen
    return Check(name, PASS, f"{current or 'default'} -> {chosen} (EKS default for {target})"), chosen


def support_window(target: KubeVersion, today: date, final: bool) -> Check:
    """The step's target in the EKS calendar on `today`: creatable at all, and how many days its support lasts.
    Passing through extended support on the way is fine; stopping there costs extra every month."""
    name = "support calendar"
    release = CALENDAR.get(target.minor)
    if release is None:
        return Check(name, FAIL, f"{target} is not in the EKS version calendar", "pick a version `invoke "
                     "cluster.versions` lists")
    support, days = release.support(today), release.days_left(today)
    if support is Support.ENDED:
        return Check(name, FAIL, f"{target} left EKS extended support on {release.end_of_extended}: EKS upgrades no "
                     f"cluster to it", "pick a newer --to (`invoke cluster.versions`)")
    if support is Support.UNRELEASED:
        return Check(name, FAIL, f"{target} is not on EKS before {release.released}", "pick a released --to")
    if support is Support.EXTENDED:
        ahead = CALENDAR.standard_target(target.minor, today)
        detail = (f"{target}: extended support until {release.end_of_extended}, {days} days left (about "
                  f"${extended_extra_usd_per_month():.0f}/month more per cluster)")
        if not final:
            return Check(name, PASS, detail + "; passed through")
        return Check(name, WARN, detail, f"continue to {ahead.version} (standard support)" if ahead else "")
    return Check(name, PASS, f"{target}: standard support until {release.end_of_standard}, {days} days left")


def kubelet_skew(control_plane: KubeVersion, kubelets: Mapping[str, KubeVersion]) -> Check:
    """Kubelets (node groups and live nodes) against the control plane right after this step."""
    problems = [f"{name}: {problem}" for name, version in sorted(kubelets.items())
                if (problem := skew_problem(control_plane, version))]
    if problems:
        return Check("kubelet skew", FAIL, "; ".join(problems[:5]),
                     "upgrade or replace these nodes first (managed groups follow the plan; others by hand)")
    oldest = min(kubelets.values(), default=None)
    return Check("kubelet skew", PASS, f"oldest kubelet {oldest or '-'} is within skew of {control_plane}")


def al2_node_groups(target: KubeVersion, al2_groups: list[str], env: str, pools: list[str] | None = None) -> Check:
    if al2_groups and not target.allows_al2:
        commands = "; ".join(f"invoke nodes.migrate --env {env} --pool {pool} --to <new generation> --add"
                             for pool in pools or ["<pool>"])
        return Check("AL2 node groups", FAIL, f"{', '.join(sorted(al2_groups))} run AL2, which has no AMIs for {target}",
                     f"migrate to AL2023 first: {commands}")
    if al2_groups:
        return Check("AL2 node groups", WARN, f"{', '.join(sorted(al2_groups))} run AL2 (last version 1.32)",
                     "plan the AL2023 migration with invoke nodes.migrate")
    return Check("AL2 node groups", PASS, "no AL2 node groups")


def upgrade_insights(insights: list[Insight] | None, target: KubeVersion, error: str | None = None) -> Check:
    if error:
        return Check("EKS upgrade insights", WARN, f"could not read insights: {error}",
                     "grant eks:ListInsights or review the insights in the console")
    if insights is None:
        return Check("EKS upgrade insights", SKIP, "insights not available from this endpoint")
    bad = [i for i in insights if i.status == "ERROR"]
    warn = [i for i in insights if i.status == "WARNING"]
    if bad:
        return Check("EKS upgrade insights", FAIL, "; ".join(f"{i.name}: {i.reason}" for i in bad),
                     "resolve the insights (aws eks describe-insight) before upgrading")
    if warn:
        return Check("EKS upgrade insights", WARN, "; ".join(f"{i.name}: {i.reason}" for i in warn),
                     "review the insights")
    return Check("EKS upgrade insights", PASS, f"{len(insights)} insight(s) for {target}, none failing")


def subnet_ips(subnets: list[SubnetFacts], groups: list[NodeGroupFacts]) -> Check:
    """Each subnet needs IPs for the surge nodes its node groups launch during a rolling update."""
    short = []
    for subnet in subnets:
        surge = sum(group.max_unavailable for group in groups if subnet.subnet_id in group.subnets)
        need = surge * IPS_PER_SURGE_NODE
        if surge and subnet.free_ips < need:
            short.append(f"{subnet.subnet_id} ({subnet.az}) has {subnet.free_ips} free IPs, surge needs ~{need}")
    if short:
        return Check("subnet free IPs", FAIL, "; ".join(short),
                     "free addresses (scale down idle pods) or lower max_unavailable for the pool")
    return Check("subnet free IPs", PASS, f"{len(subnets)} subnet(s) have room for surge nodes")
