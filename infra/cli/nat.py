"""`invoke nat.*`: where egress goes, and rotating the NAT instances."""
from __future__ import annotations

import json

from invoke import Collection

from infra.cli.common import fail, stack_config, task, whole


@task(name="status", positional=[], help={"env": "environment: dev or prod", "json": "print JSON instead of tables"})
def nat_status(c, env=None, json_=False):
    """Which NAT instance each private route table points at, and each instance's state and health."""
    from dataclasses import asdict

    from rich.console import Console

    from infra.ops.nat import rotation as nat

    cfg = stack_config(env)
    status = nat.read_status(nat.ec2_client(cfg.region), nat.topology_for(cfg.env), nat.policy_of(cfg))
    if json_:
        print(json.dumps(asdict(status), indent=2))
        return
    for table in nat.status_tables(status, cfg.env):
        Console(width=160).print(table)


@task(name="rotate", positional=[], help={
    "env": "environment: dev or prod", "dry_run": "print the steps (routes to move, pulumi commands) and change nothing",
    "timeout": "whole seconds to wait for each new instance to run and pass status checks (default 900)",
    "abort": "give up an interrupted rotation: lift drain marks, delete the checkpoint, leave routes as they are",
    "take_over": "take the rotation lock from a holder you know is gone (a killed process, a lost laptop)"})
def nat_rotate(c, env=None, dry_run=False, timeout=None, abort=False, take_over=False):
    """Replace both NAT instances one at a time with no egress gap; rerun (from any machine) to resume.

    Per instance: park its routes on the other one, `pulumi up --target/--replace` it, wait for the new
    instance to pass status checks, move its route tables back one at a time. One rotation per stack at a
    time: the lock and the checkpoint are SSM parameters under /eks-platform/<env>/nat-rotation/.
    """
    from infra.ops.io.pulumi_cli import PulumiCLI
    from infra.ops.nat import rotation as nat

    cfg = stack_config(env)
    timeout = whole(timeout, "--timeout", default=900, minimum=1, what="whole seconds", example=900)
    if abort and dry_run:
        raise fail("--abort and --dry-run exclude each other; drop one")
    request = nat.RotationRequest(env=cfg.env, timeout=float(timeout), take_over=take_over, abort=abort,
                                  dry_run=dry_run)
    cli = PulumiCLI(stack=cfg.env)
    rotation = nat.Rotation(request, nat.topology_for(cfg.env, cli), nat.ec2_client(cfg.region), cli,
                            nat.RotationCheckpoint(nat.ssm_client(cfg.region), cfg.env), policy=nat.policy_of(cfg))
    if request.abort:
        rotation.abort()
        return
    if request.dry_run:
        for line in rotation.plan():
            print(line)
        print("dry run: nothing changed")
        return
    rotation.run()



ns = Collection("nat", nat_status, nat_rotate)
