"""The failover's writes: health tags, route moves (per table, in parallel, each failing alone), notices, metrics.

SNS and CloudWatch are best-effort: their failure is logged and counted, never allowed to stop a move.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from infra.lambdas.nat import routes as nat_routes
from infra.lambdas.nat.aws import log
from infra.lambdas.nat.contract import NAMESPACE, Metric
from infra.lambdas.nat.health import NatInstance
from infra.lambdas.nat.runtime import Runtime, Tally


def read_instances(runtime: Runtime, tally: Tally) -> dict[str, NatInstance] | None:
    """This stack's instances (None when AWS did not answer in time); corrupted health records are reset."""
    instances = tally.attempt("describe NAT instances", lambda: nat_routes.read_instances(
        runtime.clients.ec2, runtime.settings.stack, runtime.clock()))
    for instance in (instances or {}).values():
        if instance.problem:
            log("health_reset", level="warning", instance=instance.id, problem=instance.problem)
            save_health(runtime, tally, instance)
    return instances


def save_health(runtime: Runtime, tally: Tally, instance: NatInstance) -> bool:
    saved = tally.attempt(f"tag {instance.id} health", lambda: nat_routes.save_health(runtime.clients.ec2, instance))
    return saved is not None


def converge(runtime: Runtime, instances: dict[str, NatInstance],
             tally: Tally) -> tuple[bool, nat_routes.TableRead | None]:
    """Decide from fresh route tables and apply: (nothing left that should have moved, the tables as read).

    Tables fail alone: a stale table ID is reported and skipped, a failed move is reported and decided
    again on the next call (the caller retries within its deadline), the other tables move regardless."""
    settings, policy, ec2 = runtime.settings, runtime.settings.policy, runtime.clients.ec2
    usable = sum(instance.usable(policy) for instance in instances.values())
    tally.healthy.append(usable)
    ids = [*settings.route_tables, *settings.probe_tables.values()]
    read = tally.attempt("describe route tables", lambda: nat_routes.find_tables(ec2, ids, instances))
    if read is None:
        return False, None
    for table in read.missing:
        if tally.once(f"missing {table}"):
            tally.errors.append({"what": f"route table {table}", "error": "NotFound"})
            log("route_table_missing", level="error", table=table,
                fix="redeploy the stack (infra/components/nat.py) so NAT_ROUTE_TABLES names existing tables")
    if not usable:
        _alert_without_usable(runtime, instances, tally)
    tables = {table: nat_routes.RouteTable(table, home, read.targets[table])
              for table, home in settings.route_tables.items() if table in read.targets}
    moves = nat_routes.decide(tables, instances, policy, runtime.clock())
    moves += nat_routes.probe_moves(settings.probe_tables, read, instances)
    if not moves:
        return True, read

    def move_one(move: nat_routes.Move) -> tuple[nat_routes.Move, bool | None]:
        return move, tally.attempt(f"move {move.table} to {move.target}",
                                   lambda: nat_routes.apply(ec2, move, instances))

    # Tables are independent: move them in parallel; notify once the moves are made.
    with ThreadPoolExecutor(max_workers=len(moves)) as pool:
        outcomes = list(pool.map(move_one, moves))
    for move, changed in outcomes:
        if not changed:
            continue
        record: dict[str, Any] = {"table": move.table, "from": move.source or "-", "to": move.target,
                                  "reason": move.reason, "at": runtime.clock()}
        log("route_moved", **record)
        tally.moves.append(record)
        if move.reason != "probe":
            notify(runtime, tally, f"NAT {move.reason} in {settings.stack}: {move.table} -> {move.target}", record)
    return all(changed is not None for _, changed in outcomes), read


def _alert_without_usable(runtime: Runtime, instances: dict[str, NatInstance], tally: Tally) -> None:
    """No undrained healthy instance: a draining one is used as a last resort; none at all is an outage."""
    policy = runtime.settings.policy
    last = [instance.id for instance in instances.values() if instance.serviceable(policy)]
    states = {i.id: {"az": i.az, "state": i.state, "draining": i.draining, "health": i.health.render()}
              for i in instances.values()}
    if last:
        if tally.once("last resort"):
            log("nat_last_resort", level="warning", using=last, instances=states)
            notify(runtime, tally, f"NAT in {runtime.settings.stack}: only draining instances left, using {last[0]}",
                   {"instances": states, "action": "routes use the draining instance until another is healthy"})
    elif tally.once("all down"):
        log("nat_all_down", level="error", instances=states)
        notify(runtime, tally, f"NAT egress DOWN in {runtime.settings.stack}: no healthy NAT instance",
               {"instances": states, "action": "routes left in place"})


def notify(runtime: Runtime, tally: Tally, subject: str, body: dict[str, Any]) -> None:
    """Best effort: a failed publish is logged and counted, never raised."""
    message = json.dumps({"stack": runtime.settings.stack, **body}, sort_keys=True, default=str)
    tally.attempt("publish notice", lambda: runtime.clients.sns.publish(
        TopicArn=runtime.settings.topic_arn, Subject=subject[:99], Message=message))


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"SampleCount": float(len(values)), "Sum": float(sum(values)), "Minimum": float(min(values)),
            "Maximum": float(max(values))}


def publish_metrics(runtime: Runtime, tally: Tally) -> None:
    """One PutMetricData per invocation (aggregated), so a once-a-minute loop costs cents; best effort."""
    stack = [{"Name": "Stack", "Value": runtime.settings.stack}]
    data: list[dict[str, Any]] = []
    if tally.healthy:
        data.append({"MetricName": Metric.HEALTHY, "Dimensions": stack, "StatisticValues": _stats(tally.healthy),
                     "Unit": "Count"})
    for reason, name in (("failover", Metric.FAILOVERS), ("failback", Metric.FAILBACKS), ("repair", Metric.REPAIRS)):
        count = sum(1 for move in tally.moves if move["reason"] == reason)
        data.append({"MetricName": name, "Dimensions": stack, "Value": count, "Unit": "Count"})
    for az, values in sorted(tally.latency.items()):
        data.append({"MetricName": Metric.PROBE_LATENCY, "Dimensions": [*stack, {"Name": "AZ", "Value": az}],
                     "StatisticValues": _stats(values), "Unit": "Milliseconds"})
    for name, counts in ((Metric.PROBE_FAILURES, tally.probe_failures), (Metric.PROBE_UNKNOWN, tally.probe_unknown)):
        for az, count in sorted(counts.items()):
            data.append({"MetricName": name, "Dimensions": [*stack, {"Name": "AZ", "Value": az}], "Value": count,
                         "Unit": "Count"})
    errors = len(tally.errors)  # counted before publishing: a failed publish cannot report itself here
    data.append({"MetricName": Metric.AWS_ERRORS, "Dimensions": stack, "Value": errors, "Unit": "Count"})
    for start in range(0, len(data), 20):
        chunk = data[start:start + 20]
        tally.attempt("publish metrics", partial(runtime.clients.cloudwatch.put_metric_data,
                                                 Namespace=NAMESPACE, MetricData=chunk))
