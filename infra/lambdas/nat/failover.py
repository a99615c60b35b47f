"""NAT failover: moves private default routes between the two NAT instances, and back after hysteresis.

Runs outside the VPC so its own AWS calls never depend on the NAT it judges. Three triggers:
- EC2 state change (stopping/stopped/shutting-down/terminated): if DescribeInstances agrees now (the event
  may be a late retry), the instance is declared down at once and its route tables move in the same
  invocation, retried within the deadline until every table has moved or the time is up;
- a launch lifecycle action of a NAT Auto Scaling group: the replacement is adopted (infra.lambdas.nat.launch);
- a once-a-minute schedule: probe rounds (infra.lambdas.nat.checks) for `NAT_PROBE_WINDOW` seconds.
Every invocation has a hard deadline derived from the Lambda's remaining time: no AWS call starts or
retries past it, so the function returns before its timeout with what it did and what failed.
Configuration comes from environment variables (infra.lambdas.nat.runtime.Settings); every AWS call is
logged as JSON (infra.lambdas.nat.aws).
"""
from __future__ import annotations

from typing import Any

from infra.lambdas.nat.actions import converge, publish_metrics, read_instances, save_health
from infra.lambdas.nat.aws import Clients, log
from infra.lambdas.nat.checks import LambdaProbe, run_checks
from infra.lambdas.nat.events import BadEvent, Signal, classify, stale
from infra.lambdas.nat.launch import adopt
from infra.lambdas.nat.runtime import Runtime, Settings, Tally

SAFETY_S = 1.0  # returned this long before the Lambda's timeout
FINAL_RESERVE_S = 4.0  # kept after the work for the last health tags and the metrics
RETRY_PAUSE_S = 1.0  # between attempts to finish moves that failed


def handle(event: Any, runtime: Runtime, remaining_seconds: float | None = None) -> dict[str, Any]:
    """Entry point with injected runtime (tests, bench); `handler` builds the runtime from the environment.
    `remaining_seconds` is the Lambda's remaining time; without it, the schedule's window plus the reserves."""
    started = runtime.clock()
    if remaining_seconds is None:
        remaining_seconds = runtime.settings.window + FINAL_RESERVE_S + SAFETY_S
    hard = started + remaining_seconds - SAFETY_S
    work_until = hard - FINAL_RESERVE_S
    try:
        signal = classify(event)
    except BadEvent as exc:
        log("event_rejected", level="warning", reason=str(exc), payload=str(event)[:500])
        return {"status": "rejected", "reason": str(exc)}
    log("event_received", kind=signal.kind, instance=signal.instance, why=signal.why)
    if signal.kind == "ignore":
        return {"status": "ignored", "instance": signal.instance, "why": signal.why}
    tally = Tally()
    with runtime.deadline(hard):  # the last health tags and the metrics use the reserve after work_until
        if signal.kind == "schedule":
            result = run_checks(runtime, min(started + runtime.settings.window, work_until), work_until, tally)
        else:
            with runtime.deadline(work_until):
                act = _on_signal if signal.kind == "state" else adopt
                result = act(runtime, signal, tally, work_until)
        publish_metrics(runtime, tally)
    return {**result, "moves": tally.moves, "errors": tally.errors}


def _on_signal(runtime: Runtime, signal: Signal, tally: Tally, until: float) -> dict[str, Any]:
    """A failing-state event: act only if the present agrees, then move until every table moved or time is up."""
    policy, instance_id = runtime.settings.policy, signal.instance or ""
    instances = _until_read(runtime, tally, until)
    if instances is None:
        return {"status": "failed", "instance": instance_id, "why": "could not read the NAT instances in time"}
    instance = instances.get(instance_id)
    outdated = stale(signal, instance)
    if outdated:
        log("event_stale", level="warning", instance=instance_id, why=outdated, event_at=signal.at,
            launched=instance.launched if instance else None)
        return {"status": "stale", "instance": instance_id, "why": outdated}
    if instance is not None and not instance.health.is_down(policy):
        instances[instance_id] = instance.with_health(instance.health.failed(signal.why, policy.failure_threshold))
        save_health(runtime, tally, instances[instance_id])
    # A terminated instance is no longer listed, but tables may still point at it (blackhole): converge anyway.
    while True:
        done, _ = converge(runtime, instances, tally)
        if done or runtime.clock() + RETRY_PAUSE_S >= until:
            break
        runtime.sleep(RETRY_PAUSE_S)
        instances = read_instances(runtime, tally) or instances
    if instance is None and not tally.moves:
        log("event_ignored", instance=instance_id, reason="not a live NAT instance of this stack; no table used it")
        return {"status": "ignored", "instance": instance_id, "why": "not a NAT instance of this stack"}
    return {"status": "handled" if done else "incomplete", "instance": instance_id, "why": signal.why}


def _until_read(runtime: Runtime, tally: Tally, until: float):
    while True:
        instances = read_instances(runtime, tally)
        if instances is not None or runtime.clock() + RETRY_PAUSE_S >= until:
            return instances
        runtime.sleep(RETRY_PAUSE_S)


_RUNTIME: Runtime | None = None


def build_runtime() -> Runtime:
    settings = Settings.from_environment()
    clients = Clients.from_environment(probe_read_timeout=settings.probe_timeout + 5)
    return Runtime(settings, clients, LambdaProbe(clients.lambda_, settings.probe_functions))


def handler(event: Any, context: Any) -> dict[str, Any]:
    """AWS Lambda entry point; the runtime (clients, settings) is built once per container."""
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = build_runtime()
    remaining = context.get_remaining_time_in_millis() / 1000 if hasattr(context, "get_remaining_time_in_millis") else None
    return handle(event, _RUNTIME, remaining)
