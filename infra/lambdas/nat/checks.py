"""The once-a-minute probe loop: rounds with hard deadlines, probes that must prove their path.

Each round has a deadline (cadence + probe timeout + slack, never past the invocation's): the probes run
in worker threads and the round takes what has answered by then; a probe that has not is 'unknown', and
an AZ whose previous probe is still running is not probed again, so stuck probes cannot pile up. Probes
start before the round's AWS reads, so a throttled DescribeInstances delays nothing: the round probes the
instances it last knew. A read that fails leaves the round blind, never ends the loop.

A probe passes only if the egress source address it observed is the probed instance's own Elastic IP
(echo mode). Unknown results (the probe Lambda erred, timed out or could not prove its path) are counted
(metric ProbeUnknown, alarmed) and, past Policy.unknown_limit consecutive rounds, count as failures.
"""
from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from infra.lambdas.nat import routes as nat_routes
from infra.lambdas.nat.actions import converge, read_instances, save_health
from infra.lambdas.nat.aws import log
from infra.lambdas.nat.health import NatInstance
from infra.lambdas.nat.runtime import Runtime, Tally

ROUND_SLACK_S = 1.5  # a round's AWS reads and writes, on top of the probe timeout


@dataclass(frozen=True)
class Observation:
    """What one probe saw: whether any target answered (None: the probe itself could not run)."""

    reached: bool | None
    latency_ms: float | None = None
    detail: str = ""
    source_ip: str | None = None


def verdict(seen: Observation, instance: NatInstance, prove_path: bool) -> tuple[bool | None, str]:
    """(passed, why): True only for egress proven to leave from this instance's address; None: cannot judge."""
    if seen.reached is None:
        return None, seen.detail or "the probe could not run"
    if seen.source_ip:
        if seen.source_ip == instance.public_ip:
            return True, ""
        return False, f"egress left from {seen.source_ip}, not from this instance's address {instance.public_ip}"
    if not seen.reached:
        return False, seen.detail or "no probe target answered"
    if prove_path:
        return None, f"the echo target did not answer; the path is unproven ({seen.detail})"[:200]
    return True, ""


@dataclass
class LambdaProbe:
    """Invokes the probe function living behind the instance's own path (its pinned probe subnet)."""

    lambda_: Any
    functions: dict[str, str]  # NAT AZ -> function name

    def __call__(self, instance: NatInstance) -> Observation:
        name = self.functions.get(instance.az)
        if not name:
            return Observation(None, detail=f"no probe function for {instance.az}")
        try:
            response = self.lambda_.invoke(FunctionName=name, InvocationType="RequestResponse", Payload=b"{}")
            body = json.loads(response["Payload"].read() or b"{}")
        except Exception as exc:  # noqa: BLE001 - a broken probe is 'unknown', never 'NAT down'
            return Observation(None, detail=f"probe invoke failed: {type(exc).__name__}: {exc}"[:200])
        if response.get("FunctionError") or not isinstance(body, dict) or "reached" not in body:
            return Observation(None, detail=f"probe function error: {str(body)[:200]}")
        source = body.get("source_ip")
        return Observation(bool(body["reached"]), body.get("latency_ms"), str(body.get("detail", ""))[:200],
                           source if isinstance(source, str) else None)


class ProbeRunner:
    """Probes in worker threads: one in flight per AZ, results taken only until the round's deadline."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="nat-probe")
        self.inflight: dict[str, Future] = {}  # AZ -> its probe's future

    def start(self, subjects: list[NatInstance]) -> dict[str, tuple[NatInstance, Future | None]]:
        started: dict[str, tuple[NatInstance, Future | None]] = {}
        for instance in subjects:
            previous = self.inflight.get(instance.az)
            if previous is not None and not previous.done():
                started[instance.id] = (instance, None)
                continue
            future = self.pool.submit(self.runtime.probe, instance)
            self.inflight[instance.az] = future
            started[instance.id] = (instance, future)
        return started

    def collect(self, started: dict[str, tuple[NatInstance, Future | None]], deadline: float) -> dict[str, Observation]:
        pending = {future: instance_id for instance_id, (_, future) in started.items() if future is not None}
        done = self.runtime.wait(pending, deadline - self.runtime.clock()) if pending else set()
        results: dict[str, Observation] = {}
        for instance_id, (_, future) in started.items():
            if future is None:
                results[instance_id] = Observation(None, detail="the previous probe is still running")
            elif future not in done:
                results[instance_id] = Observation(None, detail="no answer within the round's deadline")
            else:
                try:
                    results[instance_id] = future.result()
                except Exception as exc:  # noqa: BLE001 - a probe that raised is 'unknown'
                    results[instance_id] = Observation(None, detail=f"probe raised {type(exc).__name__}: {exc}"[:200])
        return results

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def subjects(instances: dict[str, NatInstance], pinned: dict[str, str | None]) -> list[NatInstance]:
    """Per NAT AZ, the running instance its probe subnet routes through (else the AZ's current instance)."""
    chosen = []
    for az in sorted({instance.az for instance in instances.values()}):
        subject = instances.get(pinned.get(az) or "")
        if subject is None or subject.az != az or subject.state != "running":
            subject = nat_routes.home_instance(az, instances)
        if subject is not None and subject.state == "running":
            chosen.append(subject)
    return chosen


def _merge(fresh: dict[str, NatInstance] | None, memory: dict[str, NatInstance],
           seen: dict[str, str]) -> dict[str, NatInstance]:
    """This round's instances with the health this invocation holds; a tag changed by someone else is adopted."""
    if fresh is None:
        return dict(memory)  # a blind round: AWS did not answer, keep judging what we knew
    merged = {}
    for instance_id, instance in fresh.items():
        tag = instance.health.render()
        if instance_id in memory and seen.get(instance_id) == tag:
            instance = instance.with_health(memory[instance_id].health)
        seen[instance_id] = tag
        merged[instance_id] = instance
    return merged


def _judge(runtime: Runtime, tally: Tally, instances: dict[str, NatInstance],
           observations: dict[str, Any], seen: dict[str, str]) -> None:
    policy, now = runtime.settings.policy, runtime.clock()
    for instance_id, instance in list(instances.items()):
        before = instance.health
        if instance.state != "running":
            after = before.failed(f"state {instance.state}")
        elif instance_id not in observations:
            continue  # an overlapping instance no probe path leads to yet
        else:
            seen_now = observations[instance_id]
            passed, why = verdict(seen_now, instance, runtime.settings.prove_path)
            if passed:
                after = before.passed(now)
                if seen_now.latency_ms is not None:
                    tally.latency.setdefault(instance.az, []).append(float(seen_now.latency_ms))
            elif passed is None:
                after = before.inconclusive(why, policy)
                tally.count(tally.probe_unknown, instance.az)
                log("probe_unknown", level="warning", instance=instance_id, az=instance.az, detail=why,
                    unknown=after.unknown)
            else:
                after = before.failed(why)
                tally.count(tally.probe_failures, instance.az)
                log("probe_failed", level="warning", instance=instance_id, az=instance.az, detail=why,
                    failures=after.fail)
        instances[instance_id] = instance.with_health(after)
        if (before.status(policy) != after.status(policy)
                or before.earned_failback(policy, now) != after.earned_failback(policy, now)):
            if save_health(runtime, tally, instances[instance_id]):
                seen[instance_id] = after.render()


def run_checks(runtime: Runtime, until: float, hard: float, tally: Tally) -> dict[str, Any]:
    """Probe rounds starting until `until`, each finished by its own deadline and all by `hard`; the closing
    health tags are written within whatever deadline the caller set around this call."""
    settings = runtime.settings
    budget = max(settings.interval, settings.probe_timeout) + ROUND_SLACK_S
    runner = ProbeRunner(runtime)
    seen: dict[str, str] = {}  # instance -> health tag as last read or written by this invocation
    memory: dict[str, NatInstance] = {}
    pinned: dict[str, str | None] = {}  # NAT AZ -> instance its probe table pointed at, as last read
    rounds = 0
    try:
        while True:
            started = runtime.clock()
            rounds += 1
            deadline = min(started + budget, hard)
            with runtime.deadline(deadline):
                early = runner.start(subjects(memory, pinned)) if memory else None
                instances = _merge(read_instances(runtime, tally), memory, seen)
                probes = early if early is not None else runner.start(subjects(instances, pinned))
                _judge(runtime, tally, instances, runner.collect(probes, deadline), seen)
                memory = instances
                _, read = converge(runtime, instances, tally)
                if read is not None:
                    pinned = {az: read.targets.get(table) for az, table in settings.probe_tables.items()}
            next_round = started + settings.interval
            if next_round >= until or runtime.clock() >= hard:
                break
            runtime.sleep(max(0.0, next_round - runtime.clock()))
    finally:
        runner.close()
    for instance_id, instance in memory.items():  # within the caller's deadline, after `hard` (its reserve)
        if seen.get(instance_id) != instance.health.render():
            save_health(runtime, tally, instance)  # streaks carry over to the next invocation
    return {"status": "checked", "rounds": rounds}
