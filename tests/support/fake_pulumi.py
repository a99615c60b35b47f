"""A fake `pulumi` executable for engine tests, and a moto EKS world that follows the stack file.

The fake records every call (argv plus the stack file's config at that moment) to $FAKE_PULUMI_LOG.
`EksFollower` (a thread in the test process) then makes moto's EKS match the stack file after each
successful `up` (what a real `pulumi up` would do), so engines observe their changes through the EKS API.
$FAKE_PULUMI_FAIL_ON_UP=N makes the N-th `up` fail (an interrupted run).
"""
from __future__ import annotations

import json
import os
import stat
import sys
import threading
from pathlib import Path

from tests.support import REPO_ROOT

ROOT = REPO_ROOT


def install(tmp_path: Path, monkeypatch, fail_on_up: int | None = None) -> Path:
    """Put the fake first on PATH; returns the call log path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "pulumi"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                      f"from tests.support.fake_pulumi import main\nsys.exit(main(sys.argv[1:]))\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    log = tmp_path / "pulumi-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    if fail_on_up:
        monkeypatch.setenv("FAKE_PULUMI_FAIL_ON_UP", str(fail_on_up))
    return log


def calls(log: Path) -> list[dict]:
    """The complete calls logged so far: a line still being written (no newline yet) is not read."""
    try:
        data = log.read_bytes()
    except FileNotFoundError:
        return []
    complete = data[:data.rfind(b"\n") + 1].decode()
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def _append(log: Path, entry: dict) -> None:
    """One write(2) of one whole line with O_APPEND: concurrent calls never interleave or tear a line."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        data = (json.dumps(entry) + "\n").encode()
        if os.write(fd, data) != len(data):
            raise OSError(f"short write to {log}")
    finally:
        os.close(fd)


def snapshot(call: dict) -> dict:
    """The versions the stack file held when this call ran (validated like Pulumi's program would)."""
    from infra.config import from_mapping

    cfg = from_mapping(call["stack"], call["file"])
    return {"cluster": cfg.cluster.version, "addons": dict(cfg.cluster.addons),
            "generations": {f"{pool}/{gen}": {"ami_type": g.ami_type, "version": g.version}
                            for pool, spec in cfg.node_pools.items() for gen, g in spec.generations.items()}}


def main(argv: list[str]) -> int:
    """Runs as the `pulumi` executable: stdlib + PyYAML only, so every call stays fast."""
    import yaml

    stack = argv[argv.index("--stack") + 1] if "--stack" in argv else "dev"
    command = argv[0] if argv else ""
    log = Path(os.environ["FAKE_PULUMI_LOG"])
    ups = sum(1 for call in calls(log) if call["argv"][:1] == ["up"])
    failing = command == "up" and os.environ.get("FAKE_PULUMI_FAIL_ON_UP") == str(ups + 1)
    document = yaml.safe_load(Path(f"Pulumi.{stack}.yaml").read_text())
    entry = {"argv": argv, "stack": stack, "file": document["config"], "failed": failing}
    _append(log, entry)
    if failing:
        print("error: update failed (injected)", file=sys.stderr)
        return 255
    if command == "stack":  # the outputs of a stack that exists: its first `up` is behind it (infra.ops.creator)
        print(json.dumps({"clusterName": (document["config"].get("eks-platform:cluster") or {}).get("name")}))
    return 0


class EksFollower(threading.Thread):
    """Plays `pulumi up` against moto: after each successful up in the log, EKS matches the stack file."""

    def __init__(self, log: Path):
        super().__init__(daemon=True)
        self.log, self.handled, self.stop = log, 0, threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._follow()
        except BaseException as e:  # re-raised by __exit__: a dead follower must fail the test, not hang it
            self.error = e

    def _follow(self) -> None:
        from infra.config import from_mapping

        while True:
            stopping = self.stop.is_set()  # read before the log: a last pass then plays every up logged before stop
            ups = [c for c in calls(self.log) if c["argv"][:1] == ["up"]]
            for call in ups[self.handled:]:
                if not call["failed"]:
                    sync_eks(from_mapping(call["stack"], call["file"]))
                self.handled += 1
            if stopping:
                return
            self.stop.wait(0.02)

    def __enter__(self) -> EksFollower:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        """Play the ups still unhandled (one may have been logged while a sync ran), then stop."""
        self.stop.set()
        self.join()
        if self.error is not None:
            raise RuntimeError("EksFollower died") from self.error


# --- moto EKS world ---------------------------------------------------------------------------------

def _clients(region: str):
    import boto3

    return boto3.client("eks", region_name=region), boto3.client("ec2", region_name=region)


def seed_eks(cfg, free_ips_cidr_prefix: int = 24) -> dict[str, str]:
    """VPC, one private subnet per AZ, the cluster and its node groups as the stack file declares; az -> subnet."""
    eks, ec2 = _clients(cfg.region)
    vpc = ec2.create_vpc(CidrBlock=str(cfg.network.cidr))["Vpc"]["VpcId"]
    subnets = {}
    for index, az in enumerate(cfg.network.azs):
        base = str(cfg.network.cidr.network_address).split(".")
        cidr = f"{base[0]}.{base[1]}.{index * 4}.0/{free_ips_cidr_prefix}"
        subnets[az] = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
    eks.create_cluster(name=cfg.cluster.name, version=cfg.cluster.version, roleArn="arn:aws:iam::123456789012:role/eks",
                       resourcesVpcConfig={"subnetIds": list(subnets.values())})
    _create_groups(eks, cfg, subnets)
    return subnets


def _create_groups(eks, cfg, subnets: dict[str, str]) -> None:
    from infra.components.nodegroups import node_group_name

    for pool_name, pool in cfg.node_pools.items():
        for gen_name, gen in pool.generations.items():
            for az in cfg.pool_azs(pool):
                eks.create_nodegroup(
                    clusterName=cfg.cluster.name, nodegroupName=node_group_name(pool_name, gen_name, az),
                    nodeRole="arn:aws:iam::123456789012:role/node", subnets=[subnets[az]], amiType=gen.ami_type,
                    version=gen.version or cfg.cluster.version, labels={"pool": pool_name, "generation": gen_name},
                    scalingConfig={"minSize": pool.min_size, "maxSize": pool.max_size,
                                   "desiredSize": pool.desired_size},
                    updateConfig={"maxUnavailable": pool.max_unavailable})


def sync_eks(cfg) -> None:
    """Recreate cluster and node groups at the stack file's versions (moto cannot update them in place)."""
    eks, ec2 = _clients(cfg.region)
    found = eks.describe_cluster(name=cfg.cluster.name)["cluster"]
    subnet_ids = found["resourcesVpcConfig"]["subnetIds"]
    azs = {item["SubnetId"]: item["AvailabilityZone"] for item in ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]}
    for group in eks.list_nodegroups(clusterName=cfg.cluster.name)["nodegroups"]:
        eks.delete_nodegroup(clusterName=cfg.cluster.name, nodegroupName=group)
    eks.delete_cluster(name=cfg.cluster.name)
    eks.create_cluster(name=cfg.cluster.name, version=cfg.cluster.version, roleArn="arn:aws:iam::123456789012:role/eks",
                       resourcesVpcConfig={"subnetIds": subnet_ids})
    _create_groups(eks, cfg, {az: subnet for subnet, az in azs.items()})
