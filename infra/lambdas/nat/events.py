"""What an EventBridge payload asks of the failover function, and whether it still agrees with the present.

EventBridge retries a target for minutes and delivers at least once, so a `stopped` event can arrive after
the instance is running again. A signal is acted on only if DescribeInstances agrees now: the instance is
gone or in a failing state. A running instance means the event is stale, and a LaunchTime after the
event's time says why (it was started again since).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infra.lambdas.nat.contract import FAILING_STATES, LAUNCH_ACTION, LAUNCH_TRANSITION, STATE_CHANGE
from infra.lambdas.nat.health import NatInstance

INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")


class BadEvent(ValueError):
    """A payload this function does not understand; rejected with a log line, never retried."""


@dataclass(frozen=True)
class Signal:
    kind: str  # schedule | state | launch | ignore
    instance: str | None = None
    why: str = ""
    at: float | None = None  # the event's time, epoch seconds
    group: str | None = None  # launch: the Auto Scaling group
    hook: str | None = None  # launch: lifecycle hook name
    token: str | None = None  # launch: lifecycle action token


def _event_time(event: dict[str, Any]) -> float | None:
    raw = event.get("time")
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _text(detail: dict[str, Any], key: str) -> str | None:
    value = detail.get(key)
    return value if isinstance(value, str) and value else None


def classify(event: Any) -> Signal:
    """The signal in a supported event; raises BadEvent naming what is wrong."""
    if not isinstance(event, dict):
        raise BadEvent(f"event is a {type(event).__name__}, not an EventBridge object")
    source, kind, detail = event.get("source"), event.get("detail-type"), event.get("detail")
    if source == "aws.events" and kind == "Scheduled Event":
        return Signal("schedule", why="schedule")
    if not isinstance(detail, dict):
        raise BadEvent(f"event from {source!r} ({kind!r}) has no detail object")
    at = _event_time(event)
    if source == "aws.ec2" and kind == STATE_CHANGE:
        instance, state = _text(detail, "instance-id"), _text(detail, "state")
        if instance is None or not INSTANCE_ID.match(instance) or state is None:
            raise BadEvent("state-change event without a valid detail.instance-id and detail.state")
        return Signal("state" if state in FAILING_STATES else "ignore", instance, f"state {state}", at)
    if source == "aws.autoscaling" and kind == LAUNCH_ACTION:
        instance, group, hook = (_text(detail, key) for key in ("EC2InstanceId", "AutoScalingGroupName",
                                                               "LifecycleHookName"))
        if instance is None or not INSTANCE_ID.match(instance) or group is None or hook is None:
            raise BadEvent("launch lifecycle event without detail.EC2InstanceId, AutoScalingGroupName and "
                           "LifecycleHookName")
        if detail.get("LifecycleTransition") != LAUNCH_TRANSITION:
            return Signal("ignore", instance, f"transition {detail.get('LifecycleTransition')!r}", at)
        return Signal("launch", instance, f"launched by {group}", at, group, hook,
                      _text(detail, "LifecycleActionToken"))
    raise BadEvent(f"unsupported event source {source!r} / detail-type {kind!r}")


def stale(signal: Signal, instance: NatInstance | None) -> str | None:
    """Why a failing-state signal no longer holds (None: it does). A vanished instance agrees with it."""
    if instance is None or instance.state in FAILING_STATES:
        return None
    if signal.at is not None and instance.launched > signal.at:
        return f"{signal.why} is older than the instance's launch: it is {instance.state} again"
    return f"{signal.why} but the instance is {instance.state} now"
