"""The one fake `pulumi`: an executable first on PATH that logs every call and answers as a deployed stack would.

Every call is appended to the fake's `calls.jsonl` (argv, stack, the stack file's config at that moment, whether it
failed). `stack output` prints the outputs the test gave (by default those of a stack that exists: its cluster
name from the stack file); the N-th `up` fails when told (`fail_on_up=N`, an interrupted run); an `up` may play
a world's part (`on_up="module:function"`, e.g. tests.support.nat_world.replace_on_up launches the replacement
instance, as Pulumi and the group's launch hook would). The settings live in the fake's `state.json`, so a test
changes them between two calls of the engine, and the script holds its own paths: a task in a subprocess reaches
the same fake through PATH alone.
`EksFollower` (a thread in the test process) then makes moto's EKS match the stack file after each successful
`up` (what a real `pulumi up` would do), so engines observe their changes through the EKS API.
"""
from __future__ import annotations

import importlib
import json
import os
import stat
import sys
import threading
from pathlib import Path
from typing import Any

from tests.support import REPO_ROOT

ROOT = REPO_ROOT
# pulumi commands that change a stack; `stack output` is the one read the fake serves.
WRITES = {"up", "destroy", "refresh", "import", "cancel", "config", "state", "stack"}


class FakePulumi:
    """One fake `pulumi` in `directory`/pulumi (its bin/, calls.jsonl and state.json); `world` options go to the
    `on_up` hook."""

    def __init__(self, directory: Path, outputs: dict[str, Any] | None = None, *, fail_on_up: int | None = None,
                 on_up: str | None = None, **world: Any):
        home = directory / "pulumi"
        self.home, self.bin = home, home / "bin"
        self.log, self.state = home / "calls.jsonl", home / "state.json"
        self.bin.mkdir(parents=True, exist_ok=True)
        script = self.bin / "pulumi"
        script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                          f"from tests.support.fake_pulumi import main\nsys.exit(main(sys.argv[1:], {str(home)!r}))\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        _save(self.state, {"outputs": outputs, "fail_on_up": fail_on_up, "on_up": on_up, "world": world})

    @property
    def path(self) -> str:
        """PATH with this fake first."""
        return f"{self.bin}{os.pathsep}{os.environ['PATH']}"

    def env(self) -> dict[str, str]:
        """What a task run by tests/support/cli.py needs to find this fake."""
        return {"PATH": self.path}

    def set(self, **settings: Any) -> None:
        """Change `outputs` or `fail_on_up` (None: never) for the calls still to come."""
        _save(self.state, {**_load(self.state), **settings})

    def reset(self, outputs: dict[str, Any] | None = None) -> None:
        """New outputs and an empty call log: the next case starts from a clean stack."""
        self.set(outputs=outputs or {})
        self.log.unlink(missing_ok=True)

    def outputs(self) -> dict[str, Any] | None:
        """The outputs as they stand (an `on_up` hook may have changed them)."""
        return _load(self.state)["outputs"]

    def calls(self) -> list[dict]:
        return calls(self.log)

    def argvs(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls()]

    def ups(self) -> list[dict]:
        return [call for call in self.calls() if call["argv"][:1] == ["up"]]

    def writes(self) -> list[list[str]]:
        """Calls that would change a stack."""
        return [argv for argv in self.argvs() if argv[:1] and argv[0] in WRITES and argv[:2] != ["stack", "output"]]


def install(tmp_path: Path, monkeypatch, outputs: dict[str, Any] | None = None, **options: Any) -> FakePulumi:
    """A FakePulumi in tmp_path, first on this test's PATH (and so on its tasks')."""
    fake = FakePulumi(tmp_path, outputs, **options)
    monkeypatch.setenv("PATH", fake.path)
    return fake


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _save(path: Path, state: dict[str, Any]) -> None:
    """Whole or not at all (a rename): a call never reads half a state."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(state))
    partial.replace(path)


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


def _stack_config(stack: str) -> dict[str, Any] | None:
    """The stack file's config in the working directory; None when there is none to read (a case that broke it)."""
    import yaml

    try:
        document = yaml.safe_load(Path(f"Pulumi.{stack}.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    config = document.get("config") if isinstance(document, dict) else None
    return config if isinstance(config, dict) else None


def main(argv: list[str], home: str | Path) -> int:
    """Runs as the `pulumi` executable: stdlib + PyYAML only (plus the hook's module on `up`), so calls stay fast."""
    home = Path(home)
    state, log = _load(home / "state.json"), home / "calls.jsonl"
    stack = argv[argv.index("--stack") + 1] if "--stack" in argv else "dev"
    command = argv[0] if argv else ""
    ups = sum(1 for call in calls(log) if call["argv"][:1] == ["up"])
    failing = command == "up" and state["fail_on_up"] == ups + 1
    config = _stack_config(stack)
    _append(log, {"argv": argv, "stack": stack, "file": config, "failed": failing})
    if failing:
        print("error: update failed (injected)", file=sys.stderr)
        return 255
    if argv[:2] == ["stack", "output"]:
        outputs = state["outputs"]
        if outputs is None:  # a stack that exists: its first `up` is behind it (infra.ops.creator)
            outputs = {"clusterName": ((config or {}).get("eks-platform:cluster") or {}).get("name")}
        print(json.dumps(outputs))
    elif command == "up" and state["on_up"]:
        module, _, function = state["on_up"].partition(":")
        hook = getattr(importlib.import_module(module), function)
        _save(home / "state.json", {**state, "outputs": hook(argv, state["outputs"], **state["world"])})
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
