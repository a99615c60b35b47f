"""Self-healing: a NAT instance its Auto Scaling group just launched, made a NAT before it enters service.

The group's launch lifecycle hook holds the instance in Pending:Wait and EventBridge hands the hook's event
here. The function (outside the VPC, already trusted with the NAT's routes) associates the AZ's Elastic
IP (re-associating it away from a dead predecessor), turns off the source/destination check (a launch
template cannot), writes a clean health record keyed by the new instance ID, points the AZ's probe subnet
at it, and converges (first deploy: creates the missing default routes) before it completes the action.
The new instance starts unproven: tables that failed over stay on the survivor until it earns failback.
Why a hook rather than user data: the instance keeps an SSM-only role (no ec2:AssociateAddress or
ModifyInstanceAttribute on itself), needs no temporary public IP to reach the EC2 API, and the whole
adoption runs in one place that the moto world can test end to end.
"""
from __future__ import annotations

from typing import Any

from infra.lambdas.nat.actions import converge, notify, read_instances, save_health
from infra.lambdas.nat.aws import log
from infra.lambdas.nat.contract import AZ_TAG, GROUP_TAG, STACK_TAG
from infra.lambdas.nat.events import Signal
from infra.lambdas.nat.health import Health
from infra.lambdas.nat.runtime import Runtime, Tally

POLL_S = 2.0


def _await_running(runtime: Runtime, tally: Tally, instance_id: str, until: float) -> dict[str, Any] | None:
    """The instance once it is no longer pending (EIPs attach to running instances), or as last seen."""
    found = None
    while True:
        described = tally.attempt("describe the launched instance", lambda: runtime.clients.ec2.describe_instances(
            InstanceIds=[instance_id])["Reservations"])
        found = described[0]["Instances"][0] if described else found
        state = found["State"]["Name"] if found else None
        if state not in (None, "pending") or runtime.clock() + POLL_S >= until:
            return found
        runtime.sleep(POLL_S)


def adopt(runtime: Runtime, signal: Signal, tally: Tally, until: float) -> dict[str, Any]:
    settings, ec2 = runtime.settings, runtime.clients.ec2
    instance_id = signal.instance or ""
    found = _await_running(runtime, tally, instance_id, until)
    tags = {tag["Key"]: tag["Value"] for tag in (found or {}).get("Tags", [])}
    az, state = tags.get(AZ_TAG), found["State"]["Name"] if found else None
    # Ours only if the group tagged it for this stack and its AZ, and it is the group the event names.
    if found is None or tags.get(STACK_TAG) != settings.stack or az not in settings.addresses \
            or tags.get(GROUP_TAG) != signal.group:
        why = "could not describe the instance" if found is None else "not a NAT instance of this stack's groups"
        log("launch_ignored", level="warning" if found is None else "info", instance=instance_id,
            group=signal.group, reason=why)
        return {"status": "ignored", "instance": instance_id, "why": why}
    if state != "running":
        log("event_stale", level="warning", instance=instance_id, why=f"launched instance is {state} now")
        return {"status": "stale", "instance": instance_id, "why": f"instance is {state}"}
    steps = {
        "address": tally.attempt(f"associate {az} address", lambda: ec2.associate_address(
            AllocationId=settings.addresses[az], InstanceId=instance_id, AllowReassociation=True)),
        "forwarding": tally.attempt("turn off source/destination check", lambda: ec2.modify_instance_attribute(
            InstanceId=instance_id, SourceDestCheck={"Value": False})),
    }
    ready = all(result is not None for result in steps.values())
    instances = read_instances(runtime, tally) or {}
    if instance_id in instances:
        fresh = instances[instance_id].with_health(Health(instance=instance_id))
        instances[instance_id] = fresh
        save_health(runtime, tally, fresh)
    if ready:
        converge(runtime, instances, tally)  # probe route to the new instance; missing default routes created
    result = "CONTINUE" if ready else "ABANDON"
    completed = tally.attempt("complete the lifecycle action", lambda: runtime.clients.autoscaling.complete_lifecycle_action(
        LifecycleHookName=signal.hook, AutoScalingGroupName=signal.group, LifecycleActionResult=result,
        InstanceId=instance_id, **({"LifecycleActionToken": signal.token} if signal.token else {})))
    log("instance_adopted" if ready else "instance_rejected", level="info" if ready else "error",
        instance=instance_id, az=az, result=result, completed=completed is not None,
        failed=[step for step, outcome in steps.items() if outcome is None])
    notify(runtime, tally, f"NAT instance {instance_id} launched in {az} ({result})",
           {"instance": instance_id, "az": az, "result": result, "steps": {k: v is not None for k, v in steps.items()}})
    return {"status": "adopted" if ready else "abandoned", "instance": instance_id, "az": az}
