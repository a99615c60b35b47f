"""NAT failover: moves private default routes between the two NAT instances, and back after hysteresis.

Runs outside the VPC so its own AWS calls never depend on the NAT it judges. Three triggers:
- EC2 state change (stopping/stopped/shutting-down/terminated) and StatusCheckFailed alarms: the
  instance is declared down at once and its route tables move in the same invocation;
- a once-a-minute schedule: for `NAT_PROBE_WINDOW` seconds it probes egress through each NAT path
  every `NAT_PROBE_INTERVAL` seconds (the probe is a small Lambda in a subnet pinned to that instance,
  or any injected callable), declares an instance down after `NAT_FAILURE_THRESHOLD` failed rounds
  and fails a table back only after the hysteresis in nat_health.Policy is earned.
Configuration comes from environment variables; every AWS call is logged as JSON (nat_aws).
"""
from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from infra.lambdas.nat import routes as nat_routes
from infra.lambdas.nat.aws import Clients, log
from infra.lambdas.nat.health import NatInstance, Policy

FAILING_STATES = ("stopping", "stopped", "shutting-down", "terminated")
INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")


class SettingsError(ValueError):
    """The function's environment is wrong: a deployment problem, reported once and loudly."""


class BadEvent(ValueError):
    """A payload this function does not understand; rejected with a log line, never retried."""


@dataclass(frozen=True)
class ProbeResult:
    ok: bool | None  # None: the probe itself could not run (not evidence against the NAT)
    latency_ms: float | None = None
    detail: str = ""


Probe = Callable[[NatInstance], ProbeResult]


@dataclass(frozen=True)
class Settings:
    stack: str
    route_tables: dict[str, str]  # route table ID -> home AZ
    probe_functions: dict[str, str]  # NAT AZ -> probe Lambda name
    topic_arn: str
    namespace: str = "EksPlatform/NAT"
    policy: Policy = Policy()
    interval: float = 1.0
    window: float = 55.0

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> Settings:
        def read(name: str, parse: Callable[[str], Any], default: Any = None) -> Any:
            raw = env.get(name)
            if raw is None:
                if default is None:
                    raise SettingsError(f"{name} is not set; deploy the function with infra/components/nat.py")
                return default
            try:
                return parse(raw)
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"{name}={raw!r} is invalid ({exc})") from None

        tables = read("NAT_ROUTE_TABLES", json.loads)
        if not isinstance(tables, dict) or not tables:
            raise SettingsError("NAT_ROUTE_TABLES must be a JSON object {route-table-id: home-az}")
        return cls(stack=read("NAT_STACK", str), route_tables=tables,
                   probe_functions=read("NAT_PROBE_FUNCTIONS", json.loads, {}),
                   topic_arn=read("NAT_TOPIC_ARN", str), namespace=read("NAT_METRIC_NAMESPACE", str, cls.namespace),
                   policy=Policy(failure_threshold=read("NAT_FAILURE_THRESHOLD", int, 2),
                                 failback_checks=read("NAT_FAILBACK_CHECKS", int, 30),
                                 failback_min_seconds=read("NAT_FAILBACK_MIN_SECONDS", float, 120.0)),
                   interval=read("NAT_PROBE_INTERVAL", float, 1.0), window=read("NAT_PROBE_WINDOW", float, 55.0))


@dataclass
class LambdaProbe:
    """Invokes the probe function living behind the instance's own path (its pinned probe subnet)."""

    lambda_: Any
    functions: dict[str, str]

    def __call__(self, instance: NatInstance) -> ProbeResult:
        name = self.functions.get(instance.az)
        if not name:
            return ProbeResult(None, detail=f"no probe function for {instance.az}")
        try:
            response = self.lambda_.invoke(FunctionName=name, InvocationType="RequestResponse", Payload=b"{}")
            body = json.loads(response["Payload"].read() or b"{}")
        except Exception as exc:  # noqa: BLE001 - a broken probe is 'unknown', never 'NAT down'
            return ProbeResult(None, detail=f"probe invoke failed: {exc}")
        if response.get("FunctionError") or not isinstance(body, dict):
            return ProbeResult(None, detail=f"probe function error: {str(body)[:200]}")
        return ProbeResult(bool(body.get("ok")), body.get("latency_ms"), str(body.get("detail", ""))[:200])


@dataclass
class Runtime:
    settings: Settings
    clients: Clients
    probe: Probe
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_environment(cls) -> Runtime:
        settings = Settings.from_environment()
        clients = Clients.from_environment()
        return cls(settings, clients, LambdaProbe(clients.lambda_, settings.probe_functions))


@dataclass
class Tally:
    """What one invocation did, for metrics and the return value."""

    moves: list[dict[str, str]] = field(default_factory=list)
    healthy: list[int] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=dict)
    probe_failures: dict[str, int] = field(default_factory=dict)
    alerted_down: bool = False


def classify(event: Any) -> tuple[str, str | None, str]:
    """(kind, instance ID, why) for a supported event; raises BadEvent naming what is wrong."""
    if not isinstance(event, dict):
        raise BadEvent(f"event is a {type(event).__name__}, not an EventBridge object")
    source, kind, detail = event.get("source"), event.get("detail-type"), event.get("detail")
    if source == "aws.events" and kind == "Scheduled Event":
        return "schedule", None, "schedule"
    if not isinstance(detail, dict):
        raise BadEvent(f"event from {source!r} ({kind!r}) has no detail object")
    if source == "aws.ec2" and kind == "EC2 Instance State-change Notification":
        instance, state = detail.get("instance-id"), detail.get("state")
        if not isinstance(instance, str) or not INSTANCE_ID.match(instance) or not isinstance(state, str):
            raise BadEvent("state-change event without a valid detail.instance-id and detail.state")
        return ("signal" if state in FAILING_STATES else "ignore"), instance, f"state {state}"
    if source == "aws.cloudwatch" and kind == "CloudWatch Alarm State Change":
        state = (detail.get("state") or {}).get("value") if isinstance(detail.get("state"), dict) else None
        metrics = (detail.get("configuration") or {}).get("metrics") if isinstance(detail.get("configuration"), dict) else None
        instances = [((metric.get("metricStat") or {}).get("metric") or {}).get("dimensions", {}).get("InstanceId")
                     for metric in metrics or [] if isinstance(metric, dict)]
        instance = next((item for item in instances if isinstance(item, str) and INSTANCE_ID.match(item)), None)
        if state is None or instance is None:
            raise BadEvent("alarm event without detail.state.value and an InstanceId metric dimension")
        return ("signal" if state == "ALARM" else "ignore"), instance, f"alarm {detail.get('alarmName', '?')}"
    raise BadEvent(f"unsupported event source {source!r} / detail-type {kind!r}")


def handle(event: Any, runtime: Runtime, remaining_seconds: float | None = None) -> dict[str, Any]:
    """Entry point with injected runtime (tests, bench); `handler` builds the runtime from the environment."""
    try:
        kind, instance_id, why = classify(event)
    except BadEvent as exc:
        log("event_rejected", level="warning", reason=str(exc), payload=str(event)[:500])
        return {"status": "rejected", "reason": str(exc)}
    log("event_received", kind=kind, instance=instance_id, why=why)
    if kind == "ignore":
        return {"status": "ignored", "instance": instance_id, "why": why}
    tally = Tally()
    if kind == "signal":
        result = _on_signal(runtime, instance_id or "", why, tally)
    else:
        window = runtime.settings.window if remaining_seconds is None else min(runtime.settings.window,
                                                                                remaining_seconds - 5)
        result = _check_loop(runtime, runtime.clock() + window, tally)
    _publish_metrics(runtime, tally)
    return {**result, "moves": tally.moves}


def _on_signal(runtime: Runtime, instance_id: str, why: str, tally: Tally) -> dict[str, Any]:
    ec2, policy = runtime.clients.ec2, runtime.settings.policy
    instances = nat_routes.read_instances(ec2, runtime.settings.stack)
    instance = instances.get(instance_id)
    if instance is not None and not instance.health.is_down(policy):
        instances[instance_id] = instance.with_health(instance.health.failed(why, policy.failure_threshold))
        nat_routes.save_health(ec2, instances[instance_id])
    # A terminated instance is no longer listed, but tables may still point at it (blackhole): converge anyway.
    _converge(runtime, instances, tally)
    if instance is None and not tally.moves:
        log("event_ignored", instance=instance_id, reason="not a live NAT instance of this stack; no table used it")
        return {"status": "ignored", "instance": instance_id, "why": "not a NAT instance of this stack"}
    return {"status": "handled", "instance": instance_id, "why": why}


def _converge(runtime: Runtime, instances: dict[str, NatInstance], tally: Tally) -> None:
    """Decide from fresh route tables and apply; alert once when no instance can carry traffic."""
    policy, ec2 = runtime.settings.policy, runtime.clients.ec2
    healthy = sum(instance.usable(policy) for instance in instances.values())
    tally.healthy.append(healthy)
    if healthy == 0:
        if not tally.alerted_down:
            tally.alerted_down = True
            log("nat_all_down", level="error", instances={i.id: i.health.render() for i in instances.values()})
            _notify(runtime, f"NAT egress DOWN in {runtime.settings.stack}: no healthy NAT instance",
                    {"instances": {i.id: {"az": i.az, "state": i.state, "health": i.health.render()}
                                   for i in instances.values()}, "action": "routes left in place"})
        return
    tables = nat_routes.read_tables(ec2, runtime.settings.route_tables, instances)
    moves = nat_routes.decide(tables, instances, policy, runtime.clock())
    if not moves:
        return

    def move_one(move: nat_routes.Move) -> dict[str, Any] | None:
        if not nat_routes.apply(ec2, move, instances):
            return None
        record = {"table": move.table, "from": move.source or "-", "to": move.target, "reason": move.reason,
                  "at": runtime.clock()}
        log("route_moved", **record)
        return record

    # Tables are independent: move them in parallel, notify once egress is restored everywhere.
    with ThreadPoolExecutor(max_workers=len(moves)) as pool:
        done = [record for record in pool.map(move_one, moves) if record]
    for record in done:
        tally.moves.append(record)
        _notify(runtime, f"NAT {record['reason']} in {runtime.settings.stack}: {record['table']} -> {record['to']}",
                record)


def _probe_all(runtime: Runtime, instances: dict[str, NatInstance]) -> dict[str, ProbeResult]:
    running = [instance for instance in instances.values() if instance.state == "running"]
    if not running:
        return {}
    with ThreadPoolExecutor(max_workers=len(running)) as pool:
        return dict(zip([i.id for i in running], pool.map(runtime.probe, running), strict=True))


def _check_loop(runtime: Runtime, deadline: float, tally: Tally) -> dict[str, Any]:
    """Probe rounds until the deadline; health kept in memory, written to tags when its meaning changes."""
    ec2, policy = runtime.clients.ec2, runtime.settings.policy
    seen: dict[str, str] = {}  # instance -> health tag as last read or written by this invocation
    memory: dict[str, NatInstance] = {}
    rounds = 0
    while True:
        started = runtime.clock()
        rounds += 1
        instances = nat_routes.read_instances(ec2, runtime.settings.stack)
        for instance_id, instance in instances.items():
            tag = instance.health.render()
            if instance_id in memory and seen.get(instance_id) == tag:
                instances[instance_id] = instance.with_health(memory[instance_id].health)
            seen[instance_id] = tag  # a different tag means another invocation (a signal) wrote it: adopt it
        results = _probe_all(runtime, instances)
        for instance_id, instance in instances.items():
            result = results.get(instance_id, ProbeResult(False, detail=f"state {instance.state}"))
            if result.ok is None:
                log("probe_unknown", level="warning", instance=instance_id, detail=result.detail)
                continue
            before = instance.health
            after = before.passed(runtime.clock()) if result.ok else before.failed(result.detail or "probe failed")
            if result.ok and result.latency_ms is not None:
                tally.latency.setdefault(instance.az, []).append(float(result.latency_ms))
            if not result.ok:
                tally.probe_failures[instance.az] = tally.probe_failures.get(instance.az, 0) + 1
                log("probe_failed", level="warning", instance=instance_id, az=instance.az, detail=result.detail,
                    failures=after.fail)
            instances[instance_id] = instance.with_health(after)
            changed = (before.status(policy) != after.status(policy)
                       or before.earned_failback(policy, runtime.clock()) != after.earned_failback(policy, runtime.clock()))
            if changed:
                nat_routes.save_health(ec2, instances[instance_id])
                seen[instance_id] = after.render()
        memory = instances
        _converge(runtime, instances, tally)
        next_round = started + runtime.settings.interval
        if next_round >= deadline:
            break
        runtime.sleep(max(0.0, next_round - runtime.clock()))
    for instance_id, instance in memory.items():
        if seen.get(instance_id) != instance.health.render():
            nat_routes.save_health(ec2, instance)  # streaks carry over to the next invocation
    return {"status": "checked", "rounds": rounds}


def _notify(runtime: Runtime, subject: str, body: dict[str, Any]) -> None:
    runtime.clients.sns.publish(TopicArn=runtime.settings.topic_arn, Subject=subject[:99],
                                Message=json.dumps({"stack": runtime.settings.stack, **body}, sort_keys=True))


def _stats(values: list[float]) -> dict[str, float]:
    return {"SampleCount": float(len(values)), "Sum": float(sum(values)), "Minimum": float(min(values)),
            "Maximum": float(max(values))}


def _publish_metrics(runtime: Runtime, tally: Tally) -> None:
    """One PutMetricData per invocation (aggregated), so a once-a-minute loop costs cents, not dollars."""
    stack = [{"Name": "Stack", "Value": runtime.settings.stack}]
    data: list[dict[str, Any]] = []
    if tally.healthy:
        data.append({"MetricName": "HealthyInstances", "Dimensions": stack, "StatisticValues": _stats(tally.healthy),
                     "Unit": "Count"})
    for reason in ("failover", "failback", "repair"):
        count = sum(1 for move in tally.moves if move["reason"] == reason)
        data.append({"MetricName": f"{reason.capitalize()}s", "Dimensions": stack, "Value": count, "Unit": "Count"})
    for az, values in sorted(tally.latency.items()):
        data.append({"MetricName": "ProbeLatency", "Dimensions": [*stack, {"Name": "AZ", "Value": az}],
                     "StatisticValues": _stats(values), "Unit": "Milliseconds"})
    for az, count in sorted(tally.probe_failures.items()):
        data.append({"MetricName": "ProbeFailures", "Dimensions": [*stack, {"Name": "AZ", "Value": az}],
                     "Value": count, "Unit": "Count"})
    for start in range(0, len(data), 20):
        runtime.clients.cloudwatch.put_metric_data(Namespace=runtime.settings.namespace, MetricData=data[start:start + 20])


_RUNTIME: Runtime | None = None


def handler(event: Any, context: Any) -> dict[str, Any]:
    """AWS Lambda entry point; the runtime (clients, settings) is built once per container."""
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = Runtime.from_environment()
    remaining = context.get_remaining_time_in_millis() / 1000 if hasattr(context, "get_remaining_time_in_millis") else None
    return handle(event, _RUNTIME, remaining)
