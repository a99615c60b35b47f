"""Where each private route table's default route points, where it should point, and moving it safely.

Shared by the failover Lambda and `invoke nat.rotate` (infra/ops/nat/rotation.py), so both follow one set of
rules: never leave a table without a default route, never point at an unusable instance while a usable
one exists (a draining instance is a last resort, not a prohibition), prefer instances whose probes have
proven them, re-read a table right before writing it (concurrent invocations converge).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infra.lambdas.nat.contract import AZ_TAG, DRAIN_TAG, GROUP_TAG, HEALTH_TAG, STACK_TAG, drain_until
from infra.lambdas.nat.health import Health, NatInstance, Policy

DEFAULT = "0.0.0.0/0"
LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


@dataclass(frozen=True)
class RouteTable:
    id: str
    home_az: str
    target: str | None  # instance ID the default route points at; None: missing or blackholed


@dataclass(frozen=True)
class Move:
    table: str
    source: str | None
    target: str
    reason: str  # failover | failback | repair | rotate | probe


@dataclass(frozen=True)
class TableRead:
    """Default-route targets of the tables that exist, and the configured IDs AWS does not know."""

    targets: dict[str, str | None]
    present: dict[str, bool]  # table -> has a default route (active or blackhole)
    missing: list[str]


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


def read_instances(ec2: Any, stack: str, now: float | None = None) -> dict[str, NatInstance]:
    """This stack's NAT instances by ID (terminated ones excluded), found by tag so replacements are seen.
    Health records that do not hold up are reset here; `NatInstance.problem` says why, for the caller to log."""
    now = time.time() if now is None else now
    pages = ec2.get_paginator("describe_instances").paginate(Filters=[
        {"Name": f"tag:{STACK_TAG}", "Values": [stack]}, {"Name": "instance-state-name", "Values": LIVE_STATES}])
    found: dict[str, NatInstance] = {}
    for page in pages:
        for reservation in page["Reservations"]:
            for item in reservation["Instances"]:
                tags = {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])}
                instance_id = item["InstanceId"]
                health, problem = Health.parse(tags.get(HEALTH_TAG), instance_id, now)
                until = drain_until(tags.get(DRAIN_TAG))
                found[instance_id] = NatInstance(
                    id=instance_id, az=tags.get(AZ_TAG, item["Placement"]["AvailabilityZone"]),
                    state=item["State"]["Name"],
                    enis=tuple(eni["NetworkInterfaceId"] for eni in item.get("NetworkInterfaces", [])),
                    health=health, draining=until is not None and until > now,
                    public_ip=item.get("PublicIpAddress"), launched=_epoch(item.get("LaunchTime")),
                    group=tags.get(GROUP_TAG), problem=problem)
    return found


def _route_target(route_table: dict[str, Any], by_eni: dict[str, str]) -> tuple[bool, str | None]:
    """(has a default route, instance it points at when active)."""
    for route in route_table.get("Routes", []):
        if route.get("DestinationCidrBlock") != DEFAULT:
            continue
        if route.get("State") == "blackhole":
            return True, None
        return True, route.get("InstanceId") or by_eni.get(route.get("NetworkInterfaceId", ""))
    return False, None


def find_tables(ec2: Any, ids: list[str], instances: dict[str, NatInstance]) -> TableRead:
    """One DescribeRouteTables for all `ids`, by filter: a stale ID is reported as missing instead of failing
    the whole call (RouteTableIds=[...] answers InvalidRouteTableID.NotFound for every table at once)."""
    by_eni = {eni: instance.id for instance in instances.values() for eni in instance.enis}
    pages = ec2.get_paginator("describe_route_tables").paginate(
        Filters=[{"Name": "route-table-id", "Values": sorted(set(ids))}])
    targets: dict[str, str | None] = {}
    present: dict[str, bool] = {}
    for page in pages:
        for table in page["RouteTables"]:
            present[table["RouteTableId"]], targets[table["RouteTableId"]] = _route_target(table, by_eni)
    return TableRead(targets, present, sorted(set(ids) - set(targets)))


def read_tables(ec2: Any, homes: dict[str, str], instances: dict[str, NatInstance]) -> dict[str, RouteTable]:
    """The managed route tables (ID -> home AZ) that exist, with their current default-route target."""
    read = find_tables(ec2, list(homes), instances)
    return {table: RouteTable(table, homes[table], target) for table, target in read.targets.items()}


def home_instance(az: str, instances: dict[str, NatInstance]) -> NatInstance | None:
    """The live instance serving `az`: running before not, holding the AZ's Elastic IP (adopted by the launch
    hook) before not, undrained before draining, newest launch first."""
    candidates = [instance for instance in instances.values() if instance.az == az and instance.state != "terminated"]
    candidates.sort(key=lambda instance: (instance.state == "running", instance.public_ip is not None,
                                          not instance.draining, instance.launched), reverse=True)
    return candidates[0] if candidates else None


def best_target(candidates: list[NatInstance], home_az: str, policy: Policy, now: float) -> NatInstance:
    """Undrained first, then the most proven (an unproven replacement waits for failback), then the table's home."""
    return min(candidates, key=lambda instance: (instance.draining, -instance.health.trust(policy, now),
                                                 instance.az != home_az, instance.az, instance.id))


def decide(tables: dict[str, RouteTable], instances: dict[str, NatInstance], policy: Policy,
           now: float) -> list[Move]:
    """Route changes to make now: all failovers/repairs at once, at most one failback (one table at a time)."""
    usable = [instance for instance in instances.values() if instance.usable(policy)]
    candidates = usable or [instance for instance in instances.values() if instance.serviceable(policy)]
    moves: list[Move] = []
    failback: Move | None = None
    for table in sorted(tables.values(), key=lambda item: item.id):
        current = instances.get(table.target or "")
        home = home_instance(table.home_az, instances)
        if current is None or not current.serviceable(policy) or (bool(usable) and not current.usable(policy)):
            # stranded: its target is gone, cannot serve, or is draining while a usable one exists
            if candidates:
                target = best_target(candidates, table.home_az, policy, now)
                if current is None or target.id != current.id:
                    moves.append(Move(table.id, table.target, target.id, "failover" if current else "repair"))
        elif (home is not None and home.usable(policy) and current.id != home.id and failback is None
              and home.health.earned_failback(policy, now)):
            failback = Move(table.id, current.id, home.id, "failback")
    return moves + ([failback] if failback else [])


def probe_moves(probe_tables: dict[str, str], read: TableRead, instances: dict[str, NatInstance]) -> list[Move]:
    """Probe tables (NAT AZ -> table) pinned to anything but their AZ's current running instance."""
    moves = []
    for az, table in sorted(probe_tables.items()):
        current = home_instance(az, instances)
        if table in read.targets and current is not None and current.state == "running" \
                and read.targets[table] != current.id:
            moves.append(Move(table, read.targets[table], current.id, "probe"))
    return moves


def apply(ec2: Any, move: Move, instances: dict[str, NatInstance]) -> bool:
    """Make one move if the table still points where the decision saw it; True when this call changed it."""
    table = ec2.describe_route_tables(RouteTableIds=[move.table])["RouteTables"][0]
    by_eni = {eni: instance.id for instance in instances.values() for eni in instance.enis}
    present, current = _route_target(table, by_eni)
    if current == move.target:
        return False
    if current != move.source:
        return False  # another invocation moved it first; the next round decides again from fresh state
    if present:
        ec2.replace_route(RouteTableId=move.table, DestinationCidrBlock=DEFAULT, InstanceId=move.target)
    else:
        ec2.create_route(RouteTableId=move.table, DestinationCidrBlock=DEFAULT, InstanceId=move.target)
    return True


def save_health(ec2: Any, instance: NatInstance) -> bool:
    ec2.create_tags(Resources=[instance.id], Tags=[{"Key": HEALTH_TAG, "Value": instance.health.render()}])
    return True
