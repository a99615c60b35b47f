"""The one-screen rendering of a PlatformStatus (rich), worst news first inside each section."""
from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from infra.ops.platform.status import PENDING_GRACE_S, PlatformStatus

PENDING_ROWS = 10


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _node_groups(status: PlatformStatus) -> Table:
    table = Table(title="Node groups per AZ", title_justify="left", expand=False)
    for column in ("AZ", "node group", "ready/desired", "min-max", "cordoned", "group status", "note"):
        table.add_column(column)
    for group in status.node_groups:
        desired = "?" if group.desired is None else str(group.desired)
        bounds = "" if group.min is None else f"{group.min}-{group.max}"
        notes = [note for flag, note in ((group.short, "short of desired"), (group.at_max, "at max size"),
                                         (group.registered > group.ready, "not Ready nodes")) if flag]
        style = "red" if group.short else ("yellow" if group.at_max or notes else "")
        table.add_row(group.az, group.name, f"{group.ready}/{desired}", bounds, str(group.cordoned or ""),
                      group.status, ", ".join(notes), style=style)
    return table


def _autoscaler(status: PlatformStatus) -> RenderableType:
    activity = status.autoscaler
    if activity is None:
        return Text("Autoscaler: unknown (see problems)", style="yellow")
    head = Text(f"Autoscaler: {activity.state}")
    if activity.health:
        head.append(f"  health {activity.health}", style="green" if activity.health == "Healthy" else "red")
    if activity.scale_up:
        head.append(f"  scale-up {activity.scale_up}")
    if activity.scale_down:
        head.append(f"  scale-down {activity.scale_down} ({activity.candidates} candidates)")
    if activity.updated:
        head.append(f"  updated {activity.updated}", style="dim")
    lines: list[RenderableType] = [head]
    for event in activity.events:
        style = "red" if event.reason in ("NotTriggerScaleUp", "ScaleDownFailed", "FailedToScaleUpGroup") else ""
        lines.append(Text(f"  {event.last_seen}  {event.reason:<18} {event.target}: {event.message}", style=style))
    return Group(*lines)


def _pending(status: PlatformStatus) -> RenderableType:
    if not status.pending:
        return Text("Pending pods: none", style="green")
    table = Table(title=f"Pending pods ({len(status.pending)})", title_justify="left")
    for column in ("namespace", "pod", "age", "reason"):
        table.add_column(column)
    for pod in status.pending[:PENDING_ROWS]:
        table.add_row(pod.namespace, pod.name, _age(pod.age_s), pod.reason,
                      style="red" if pod.age_s >= PENDING_GRACE_S else "")
    if len(status.pending) > PENDING_ROWS:
        table.caption = f"... and {len(status.pending) - PENDING_ROWS} more"
    return table


def _alerts(status: PlatformStatus) -> RenderableType:
    if status.alerts is None:
        return Text("Firing alerts: unknown (see problems)", style="yellow")
    if not status.alerts:
        return Text("Firing alerts: none", style="green")
    table = Table(title=f"Firing alerts ({len(status.alerts)})", title_justify="left")
    for column in ("severity", "alert", "where", "since", "summary"):
        table.add_column(column)
    for alert in status.alerts:
        table.add_row(alert.severity, alert.name, alert.where, alert.since, alert.summary,
                      style={"critical": "red", "warning": "yellow"}.get(alert.severity, ""))
    return table


def _edge(status: PlatformStatus) -> Table:
    table = Table(title="Public edge", title_justify="left", expand=False)
    for column in ("hostname", "load balancer", "targets", "certificate", "expires", "note"):
        table.add_column(column)
    for host in status.edge or []:
        targets = ", ".join(f"{count} {state}" for state, count in sorted(host.targets.items())) or "none"
        expires = f"{host.expires} ({host.days_left} d)" if host.expires else ""
        table.add_row(host.host, host.load_balancer or host.state, targets, host.certificate_status, expires,
                      ", ".join(host.problems), style="red" if host.problems else "")
    return table


def screen(status: PlatformStatus) -> RenderableType:
    verdict = Text("healthy", style="bold green") if status.healthy else Text("needs attention", style="bold red")
    title = Text(f"Platform {status.env} (cluster {status.cluster}): ", style="bold").append(verdict)
    parts: list[RenderableType] = [title, _node_groups(status), _autoscaler(status), _pending(status),
                                   _alerts(status), *([_edge(status)] if status.edge else [])]
    if status.problems:
        parts.append(Text("Problems reading the platform:", style="bold red"))
        parts += [Text(f"  {problem}", style="red") for problem in status.problems]
    return Group(*parts)
