"""`invoke nat.*`: where egress goes, and rotating the NAT instances."""
from __future__ import annotations

import json

from invoke import Collection

from infra.cli.common import console, fail, stack_config, task, whole
from infra.cli.flags import long_only


@task(name="status", positional=[], help={"env": "environment: dev or prod", "json": "print JSON instead of tables"})
def nat_status(c, env=None, json_=False):
    """Which NAT instance each private route table points at, and each instance's state and health."""
    from dataclasses import asdict

    from infra.ops.nat import rotation as nat

    cfg = stack_config(env)
    status = nat.read_status(nat.ec2_client(cfg.region), nat.topology_for(cfg), nat.policy_of(cfg))
    if json_:
        print(json.dumps(asdict(status), indent=2))
        return
    shown = console(width=160)
    for table in nat.status_tables(status, cfg.env):
        shown.print(table)


@task(name="rotate", positional=[], klass=long_only("take_over"), help={
    "env": "environment: dev or prod", "dry_run": "print the steps (routes to move, pulumi commands) and change nothing",
    "timeout": "whole seconds to wait for each new instance to run and pass status checks (default 900)",
    "abort": "give up an interrupted rotation: lift drain marks, delete the checkpoint, leave routes as they are",
    "take_over": "take the rotation lock from a holder you know is gone (a killed process, a lost laptop); with "
                 "--abort, to give up that holder's rotation"})
def nat_rotate(c, env=None, dry_run=False, timeout=None, abort=False, take_over=False):
    """Replace both NAT instances one at a time; each route move breaks its open flows. Rerun to resume.

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
    rotation = nat.Rotation(request, nat.topology_for(cfg, cli), nat.ec2_client(cfg.region), cli,
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


# -- nat.drill (infra/ops/nat/drill.py) ------------------------------------------------------------------

@task(name="drill", positional=[], help={
    "env": "environment: dev or prod", "fault": "how the instance fails: stop (default) or blackhole (security-group swap)",
    "az": "NAT AZ of the instance to break (default: the first)", "yes": "do not ask for confirmation",
    "dry_run": "print the steps and change nothing",
    "timeout": "whole seconds to wait for the failover before giving up and restoring (default 300)"})
def nat_drill(c, env=None, fault="stop", az=None, yes=False, dry_run=False, timeout=None):
    """Game day: break one NAT instance for real, time the failover, restore everything, print the timeline.

    Measures fault -> every route table moved off it -> first working egress proven by the other instance's
    probe. The instance is restored whatever happens (timeout, Ctrl-C); its routes come back after the
    failback hysteresis, as in a real recovery.
    """
    from infra.cli.common import confirm
    from infra.lambdas.nat.checks import LambdaProbe
    from infra.ops.io import aws
    from infra.ops.io.pulumi_cli import PulumiCLI
    from infra.ops.nat import drill as nat_drill_engine
    from infra.ops.nat import rotation as nat

    cfg = stack_config(env)
    timeout = whole(timeout, "--timeout", default=300, minimum=10, what="whole seconds", example=300)
    if fault not in nat_drill_engine.FAULTS:
        raise fail(f"--fault {fault!r} is not a drill; use one of: {', '.join(nat_drill_engine.FAULTS)}")

    def engine() -> nat_drill_engine.Drill:
        target = nat_drill_engine.DrillTarget.from_outputs(cfg.env, PulumiCLI(stack=cfg.env).outputs(), cfg.nat.mode)
        return nat_drill_engine.Drill(
            target, nat.ec2_client(cfg.region), aws.client("autoscaling", cfg.region),
            LambdaProbe(aws.client("lambda", cfg.region), target.probes), fault=fault, az=az,
            policy=nat.policy_of(cfg), timeout=float(timeout), prove_path=cfg.nat.probe_mode == "echo")

    drill = engine()  # engine errors are Refused/Failed: the task wrapper maps them
    steps = drill.plan()
    if dry_run:
        for line in steps:
            print(line)
        print("dry run: nothing changed")
        return
    if not yes:
        for line in steps:
            print(line)
        if not confirm(f"Break the {drill.az} NAT instance of {cfg.env} now?"):
            raise fail("not confirmed: nothing changed (pass --yes to skip the question)", code=1)
    timeline = drill.run()
    print(f"NAT drill of {cfg.env} ({fault} {drill.az}):")
    for line in timeline.lines():
        print(line)


ns = Collection("nat", nat_status, nat_rotate, nat_drill)
