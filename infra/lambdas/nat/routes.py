"""Where each private route table's default route points, where it should point, and moving it safely.

Shared by the failover Lambda and `invoke nat.rotate` (infra/ops/nat/rotation.py), so both follow one set of
rules: never leave a table without a default route, never point at an unusable instance while a
usable one exists, re-read a table right before writing it (concurrent invocations converge).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.lambdas.nat.health import AZ_TAG, DRAIN_TAG, HEALTH_TAG, STACK_TAG, Health, NatInstance, Policy

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
    reason: str  # failover | failback | repair | rotate


def read_instances(ec2: Any, stack: str) -> dict[str, NatInstance]:
    """This stack's NAT instances by ID (terminated ones excluded), found by tag so replacements are seen."""
    pages = ec2.get_paginator("describe_instances").paginate(Filters=[
        {"Name": f"tag:{STACK_TAG}", "Values": [stack]}, {"Name": "instance-state-name", "Values": LIVE_STATES}])
    found: dict[str, NatInstance] = {}
    for page in pages:
        for reservation in page["Reservations"]:
            for item in reservation["Instances"]:
                tags = {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])}
                found[item["InstanceId"]] = NatInstance(
                    id=item["InstanceId"], az=tags.get(AZ_TAG, item["Placement"]["AvailabilityZone"]),
                    state=item["State"]["Name"],
                    enis=tuple(eni["NetworkInterfaceId"] for eni in item.get("NetworkInterfaces", [])),
                    health=Health.parse(tags.get(HEALTH_TAG)), draining=bool(tags.get(DRAIN_TAG)))
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


def read_tables(ec2: Any, homes: dict[str, str], instances: dict[str, NatInstance]) -> dict[str, RouteTable]:
    """The managed route tables (ID -> home AZ) with their current default-route target."""
    by_eni = {eni: instance.id for instance in instances.values() for eni in instance.enis}
    found = ec2.describe_route_tables(RouteTableIds=sorted(homes))["RouteTables"]
    return {table["RouteTableId"]: RouteTable(table["RouteTableId"], homes[table["RouteTableId"]],
                                              _route_target(table, by_eni)[1]) for table in found}


def home_instance(az: str, instances: dict[str, NatInstance]) -> NatInstance | None:
    """The live instance serving `az` (newest wins while a replacement overlaps its predecessor)."""
    candidates = [instance for instance in instances.values() if instance.az == az and instance.state != "terminated"]
    candidates.sort(key=lambda instance: (instance.state == "running", not instance.draining), reverse=True)
    return candidates[0] if candidates else None


def decide(tables: dict[str, RouteTable], instances: dict[str, NatInstance], policy: Policy,
           now: float) -> list[Move]:
    """Route changes to make now: all failovers/repairs at once, at most one failback (one table at a time)."""
    usable = [instance for instance in sorted(instances.values(), key=lambda item: item.az) if instance.usable(policy)]
    moves: list[Move] = []
    failback: Move | None = None
    for table in sorted(tables.values(), key=lambda item: item.id):
        current = instances.get(table.target or "")
        home = home_instance(table.home_az, instances)
        home_ok = home is not None and home.usable(policy)
        if current is None or not current.usable(policy):
            if usable:
                target = home if home_ok else usable[0]
                moves.append(Move(table.id, table.target, target.id, "failover" if current else "repair"))
        elif home_ok and current.id != home.id and failback is None and home.health.earned_failback(policy, now):
            failback = Move(table.id, current.id, home.id, "failback")
    return moves + ([failback] if failback else [])


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


def save_health(ec2: Any, instance: NatInstance) -> None:
    ec2.create_tags(Resources=[instance.id], Tags=[{"Key": HEALTH_TAG, "Value": instance.health.render()}])
