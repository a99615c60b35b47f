"""Bad input to secrets.set / secrets.list / platform.status / nat.status / nat.rotate: one clear line, exit 2 (1 for
an outside failure), nothing changed: no secret value in Secrets Manager (moto holds dev's secrets, declared without
values), no route, tag or instance change of the NAT world, no rotation checkpoint, no write to the kubesim cluster."""
from __future__ import annotations

import json
import subprocess

import boto3
import pytest
from kubernetes import client

from infra.components.secrets import secret_tags
from infra.config import load_stack_config, secret_name
from tests.support import bad_input as bad
from tests.support.bad_input import CLOSED, api_answers, aws_answers_not_aws, no_aws_credentials, outputs, row
from tests.support.cli import invoke, invoke_into_reader
from tests.support.identity import declare_secrets_key
from tests.support.nat_world import build

SET = "secrets.set --env dev"
NO_VALUE = "no value on stdin"
TYPED_VALUE = "s3cr3t-typed-as-an-argument"  # must never be echoed: not in stderr, not in stdout
CHECKPOINT, LOCK = "/eks-platform/dev/nat-rotation/checkpoint", "/eks-platform/dev/nat-rotation/lock"
UNREADABLE = f"SSM parameter {CHECKPOINT} does not hold a readable checkpoint"
ABORT = "`invoke nat.rotate --env dev --abort` drops it"


def no_kubeconfig(world: bad.World) -> None:
    """A laptop without KUBECONFIG: cluster tasks reach the stack's EKS cluster with AWS credentials."""
    world.monkeypatch.delenv("KUBECONFIG", raising=False)


def parameter(name: str, value: str) -> bad.Setup:
    """An SSM parameter as an earlier run left it (nat.rotate keeps its lock and progress there)."""
    return lambda world: boto3.client("ssm", region_name="eu-west-1").put_parameter(Name=name, Value=value,
                                                                                    Type="String")


def nat_deployed(world: bad.World) -> None:
    """Dev's dual-instance NAT in moto (two instances, a private route table per AZ) and the outputs naming it."""
    nat = build(2, stack="eks-dev")
    homes = {az: nat.tables[table] for az, table in nat.by_az.items()}
    urn = "urn:pulumi:dev::eks-platform::eks-platform:nat:Nat$aws:autoscaling/group:Group::nat-{}"
    world.pulumi.reset({"clusterName": "eks-dev", "natMode": "dual-instance", "natRouteTableIds": dict(nat.by_az),
                        "natRouteHomes": homes, "natGroupNames": dict(nat.groups),
                        "natProbeFunctions": {az: f"eks-dev-nat-probe-{az[-1]}" for az in nat.groups},
                        "natInstanceUrns": {az: urn.format(az[-1]) for az in nat.groups}})


SECRETS_SET = [
    row("set-env-missing", "secrets.set worker queue-token", 2, "--env is required", "dev, prod", stdin="tok\n"),
    row("set-env-unknown", "secrets.set --env staging worker queue-token", 2, "--env 'staging' is not a stack",
        stdin="tok\n"),
    row("set-service-typo", f"{SET} wroker queue-token", 2, "service 'wroker' has no secrets", "api, scheduler, worker",
        stdin="tok\n"),
    row("set-service-uppercase", f"{SET} Worker queue-token", 2, "service 'Worker'", "api, scheduler, worker", stdin="tok\n"),
    row("set-service-path-traversal", f"{SET} ../x queue-token", 2, "service '../x'", "api, scheduler, worker", stdin="tok\n"),
    row("set-service-empty", f"{SET} '' queue-token", 2, "service ''", "api, scheduler, worker", stdin="tok\n"),
    row("set-service-shared-base", f"{SET} shared queue-token", 2, "service 'shared'", "api, scheduler, worker", stdin="tok\n"),
    row("set-key-typo", f"{SET} worker queue-tokn", 2, "worker has no secret 'queue-tokn'", "queue-token",
        stdin="tok\n"),
    row("set-key-uppercase", f"{SET} worker QUEUE-TOKEN", 2, "'QUEUE-TOKEN'", "queue-token", stdin="tok\n"),
    row("set-key-path-traversal", f"{SET} worker ../../x", 2, "'../../x'", "queue-token", stdin="tok\n"),
    row("set-key-of-other-service", f"{SET} worker session-key", 2, "worker has no secret 'session-key'",
        stdin="tok\n"),
    row("set-key-empty", f"{SET} worker ''", 2, "usage: invoke secrets.set --env ENV SERVICE KEY", stdin="tok\n"),
    row("set-stdin-empty", f"{SET} worker queue-token", 2, NO_VALUE, "pipe it in", stdin=""),
    row("set-stdin-only-newline", f"{SET} worker queue-token", 2, NO_VALUE, stdin="\n"),
    row("set-stdin-only-crlf", f"{SET} worker queue-token", 2, NO_VALUE, stdin="\r\n"),
    row("set-database-stdin-empty", f"{SET} api database", 2, NO_VALUE, stdin=""),
    row("set-generated-secret", f"{SET} api session-key", 2, "is generated in AWS and has no hand-set value",
        "rotate", stdin="tok\n"),
    row("set-prod-secrets-with-dev-credentials", "secrets.set --env prod worker queue-token", 2,
        "refusing to touch prod's secrets", stdin="tok\n"),
    row("set-no-aws-credentials", f"{SET} worker queue-token", 1, "AWS credentials", stdin="tok\n",
        setup=no_aws_credentials),
    # a value typed as an argument: refused without ever being shown (invoke said "No idea what '<value>' is!")
    row("set-value-as-argument", f"{SET} worker queue-token {TYPED_VALUE}", 2, "values are read from stdin only",
        absent=(TYPED_VALUE,)),
    row("set-value-as-option", f"{SET} worker queue-token --value={TYPED_VALUE}", 2,
        "values are read from stdin only", absent=(TYPED_VALUE,)),
    row("set-value-as-short-option", f"{SET} worker queue-token -{TYPED_VALUE}", 2,
        "values are read from stdin only", absent=(TYPED_VALUE,)),
    row("set-service-and-key-missing", SET, 2, "secrets.set needs SERVICE and KEY", stdin="tok\n"),
    row("set-stdin-closed", f"{SET} worker queue-token", 2, NO_VALUE, "stdin is closed", stdin=CLOSED),
    row("set-stdin-whitespace-only", f"{SET} worker queue-token", 2, "only whitespace", stdin=" \t  \n"),
    row("set-stdin-nul-byte", f"{SET} worker queue-token", 2, "NUL byte", stdin="to\0ken\n"),
    row("set-stdin-over-64-kib", f"{SET} worker queue-token", 2, "over 65536 bytes", stdin="x" * 70_000),
    row("set-stdin-multiline", f"{SET} worker queue-token", 2, "has 2 lines", "--multiline",
        stdin="line one\nline two\n", absent=("line one",)),
    row("set-database-password-multiline", f"{SET} api database", 2, "has 3 lines", "--multiline",
        stdin="a\r\nb\rc"),
    row("set-aws-answers-html-404", f"{SET} worker queue-token", 1, "cannot reach AWS at http://127.0.0.1:",
        "HTTP 404 with an HTML page", "AWS_ENDPOINT_URL=", stdin="tok\n", setup=aws_answers_not_aws("html")),
]

SECRETS_LIST = [
    row("list-env-missing", "secrets.list", 2, "--env is required", "dev, prod"),
    row("list-env-unknown", "secrets.list --env staging", 2, "--env 'staging' is not a stack"),
    row("list-env-empty", "secrets.list --env ''", 2, "--env is required"),
    row("list-bad-stack-config", "secrets.list --env dev", 2, "eks-platform:secrets.recovery_window_days",
        setup=bad.stack_edit("recovery_window_days: 7", "recovery_window_days: 3")),
    row("list-prod-secrets-with-dev-credentials", "secrets.list --env prod", 2, "refusing to touch prod's secrets"),
    row("list-no-aws-credentials", "secrets.list --env dev", 1, "AWS credentials", setup=no_aws_credentials),
    row("list-aws-answers-html-404", "secrets.list --env dev", 1, "cannot reach AWS at http://127.0.0.1:",
        "HTTP 404 with an HTML page", "AWS_ENDPOINT_URL=", setup=aws_answers_not_aws("html")),
    row("list-aws-answers-empty-404", "secrets.list --env dev", 1, "cannot reach AWS at http://127.0.0.1:",
        "HTTP 404 with an empty body", setup=aws_answers_not_aws("empty")),
    row("list-extra-argument", "secrets.list --env dev worker", 2, "secrets.list takes no further argument 'worker'"),
]

PLATFORM_STATUS = [
    row("status-env-missing", "platform.status", 2, "--env is required", "dev, prod"),
    row("status-env-unknown", "platform.status --env staging", 2, "--env 'staging' is not a stack"),
    row("status-env-uppercase", "platform.status --env Prod", 2, "--env 'Prod' is not a stack"),
    row("status-kubeconfig-missing", "platform.status --env dev --kubeconfig {missing_file}", 1,
        "does-not-exist.yaml", "--kubeconfig"),
    row("status-kubeconfig-empty", "platform.status --env dev --kubeconfig {empty_kubeconfig}", 1, "empty",
        "--kubeconfig"),
    row("status-kubeconfig-garbage", "platform.status --env dev --kubeconfig {garbage_kubeconfig}", 1, "kubeconfig",
        "--kubeconfig"),
    row("status-no-aws-credentials", "platform.status --env dev", 1, "no AWS credentials",
        setup=(no_kubeconfig, no_aws_credentials)),
    row("status-api-401", "platform.status --env dev", 1, "401", setup=api_answers(401)),
    row("status-prod-on-dev-cluster", "platform.status --env prod", 2, "refusing to act on prod",
        "is stack dev's cluster eks-dev"),
    row("status-kubeconfig-empty-value", "platform.status --env dev --kubeconfig ''", 2, "--kubeconfig is empty"),
]

NAT_STATUS = [
    row("nat-status-env-missing", "nat.status", 2, "--env is required", "dev, prod"),
    row("nat-status-env-unknown", "nat.status --env staging", 2, "--env 'staging' is not a stack"),
    row("nat-status-not-deployed", "nat.status --env dev", 1, "stack dev has no outputs", "invoke up --env dev"),
    row("nat-status-gateway-mode", "nat.status --env dev", 1, "nat.mode 'gateway'", "dual-instance",
        setup=outputs({"clusterName": "eks-dev", "natMode": "gateway"})),
    row("nat-status-deployed-before-nat", "nat.status --env dev", 1,
        "stack dev is not deployed with NAT yet; run `invoke up --env dev`", absent=("set eks-platform:nat.mode",),
        setup=outputs({"clusterName": "eks-dev"})),
    row("nat-status-file-without-dual-instance", "nat.status --env dev", 1, "runs nat.mode 'gateway'",
        "set eks-platform:nat.mode: dual-instance in Pulumi.dev.yaml",
        setup=(outputs({"clusterName": "eks-dev"}), bad.stack_edit("mode: dual-instance", "mode: gateway"))),
    row("nat-status-no-aws-credentials", "nat.status --env dev", 1, "credentials",
        setup=(nat_deployed, no_aws_credentials)),
    # EC2 speaks XML: an empty 404 is a botocore ResponseParserError, which no engine catches
    row("nat-status-aws-answers-empty-404", "nat.status --env dev", 1, "cannot reach AWS at http://127.0.0.1:",
        "not an AWS response", setup=(nat_deployed, aws_answers_not_aws("empty"))),
]

NAT_ROTATE = [
    row("rotate-env-missing", "nat.rotate --dry-run", 2, "--env is required", "dev, prod"),
    row("rotate-env-unknown", "nat.rotate --env staging", 2, "--env 'staging' is not a stack"),
    row("rotate-abort-with-dry-run", "nat.rotate --env dev --abort --dry-run", 2,
        "--abort and --dry-run exclude each other", setup=nat_deployed),
    row("rotate-timeout-text", "nat.rotate --env dev --timeout abc", 2, "--timeout", setup=nat_deployed),
    row("rotate-timeout-fraction", "nat.rotate --env dev --timeout 1.5 --dry-run", 2, "--timeout",
        setup=nat_deployed),
    row("rotate-timeout-negative", "nat.rotate --env dev --timeout -1", 2, "--timeout", "-1", "--timeout 900",
        setup=nat_deployed),
    row("rotate-timeout-zero", "nat.rotate --env dev --timeout 0", 2, "--timeout", "0", "--timeout 900",
        setup=nat_deployed),
    row("rotate-not-deployed", "nat.rotate --env dev --dry-run", 1, "stack dev has no outputs"),
    row("rotate-deployed-before-nat", "nat.rotate --env dev --dry-run", 1,
        "stack dev is not deployed with NAT yet; run `invoke up --env dev`", setup=outputs({"clusterName": "eks-dev"})),
    row("rotate-checkpoint-not-json", "nat.rotate --env dev", 2, UNREADABLE, "is not valid JSON", ABORT,
        setup=(nat_deployed, parameter(CHECKPOINT, "{half a checkpoint"))),
    row("rotate-checkpoint-not-json-dry-run", "nat.rotate --env dev --dry-run", 2, UNREADABLE, "is not valid JSON",
        ABORT, setup=(nat_deployed, parameter(CHECKPOINT, "{half a checkpoint"))),
    row("rotate-checkpoint-other-object", "nat.rotate --env dev", 2, UNREADABLE, "lacks phases, env", ABORT,
        setup=(nat_deployed, parameter(CHECKPOINT, '{"x": 1}'))),
    row("rotate-checkpoint-list-dry-run", "nat.rotate --env dev --dry-run", 2, UNREADABLE,
        "is a JSON list, not an object", ABORT, setup=(nat_deployed, parameter(CHECKPOINT, "[1]"))),
    row("rotate-checkpoint-of-other-stack", "nat.rotate --env dev --dry-run", 2, UNREADABLE,
        "describes a rotation of prod, not of dev", ABORT,
        setup=(nat_deployed, parameter(CHECKPOINT, json.dumps({"env": "prod", "phases": ["eu-west-1a/drain"]})))),
    row("rotate-checkpoint-of-an-older-shape", "nat.rotate --env dev --dry-run", 2, UNREADABLE, "lacks phases",
        ABORT,
        setup=(nat_deployed, parameter(CHECKPOINT, json.dumps({"env": "prod", "step": "drain", "az": "eu-west-1a"})))),
    row("rotate-locked-by-another-run", "nat.rotate --env dev", 1, "in progress by ops@laptop", "--take-over",
        setup=(nat_deployed, parameter(LOCK, json.dumps({"holder": "ops@laptop", "since": "2026-12-01 08:00:00 UTC"})))),
]

NAT_DRILL = [
    row("drill-env-missing", "nat.drill --dry-run", 2, "--env is required", "dev, prod"),
    row("drill-not-deployed", "nat.drill --env dev --dry-run", 1, "stack dev has no outputs"),
    row("drill-fault-unknown", "nat.drill --env dev --fault melt --dry-run", 2, "--fault 'melt' is not a drill",
        setup=nat_deployed),
    row("drill-az-without-nat", "nat.drill --env dev --az eu-west-1c --dry-run", 2,
        "--az 'eu-west-1c' has no NAT instance", setup=nat_deployed),
    row("drill-not-confirmed", "nat.drill --env dev", 1, "not confirmed: nothing changed", setup=nat_deployed),
]

TABLE = SECRETS_SET + SECRETS_LIST + PLATFORM_STATUS + NAT_STATUS + NAT_ROTATE + NAT_DRILL


def _declare_secrets() -> None:
    """Dev's secrets as the Pulumi program creates them: the stack's KMS key (alias, tags), tagged secrets, no value."""
    cfg = load_stack_config("dev")
    sm = boto3.client("secretsmanager", region_name=cfg.region)
    key = declare_secrets_key("dev", cfg.region)
    for service, name, spec in cfg.secrets.entries():
        tags = secret_tags(spec, service, {"environment": "dev"})
        sm.create_secret(Name=secret_name("dev", service, name), Description=spec.description, KmsKeyId=key,
                         Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


@pytest.fixture
def world(bad_input_project, bad_input_cluster, aws, tmp_path, monkeypatch):
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # describing moto's default images takes ~20 s
    built = bad.make_world(bad_input_project, tmp_path, monkeypatch, cluster=bad_input_cluster, aws=aws)
    _declare_secrets()
    yield built
    bad_input_cluster.clear_faults()


@pytest.mark.parametrize("case", TABLE)
def test_bad_input(world, case):
    bad.check(world, case)


def test_the_table_is_whole():
    assert bad.ids_are_unique(TABLE) and len(TABLE) >= 45


def test_secrets_set_help_shows_its_usage(world):
    """`invoke secrets.set --help` (SERVICE and KEY are positional) prints the task's usage and exits 0."""
    result = invoke("secrets.set", "--help", cwd=world.root, timeout=bad.CASE_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: inv[oke] [--core-opts] secrets.set ") and "--env" in result.stdout
    assert "Traceback" not in result.stderr


def test_the_world_sees_each_kind_of_change(world):
    """The watchers every row relies on can fail: a real change shows in the files, the fake pulumi's log, the
    cluster's accepted writes and the AWS inventory (here a valid `secrets.set`, run like any row)."""
    before = world.state()
    world.cluster.requests.clear()
    (world.root / "README.md").write_text("edited by the test\n")
    subprocess.run(["pulumi", "up", "--yes", "--stack", "dev"], check=True, timeout=bad.CASE_TIMEOUT_S)
    core = client.CoreV1Api(world.cluster.api_client())
    core.create_namespaced_config_map("apps-dev", {"metadata": {"name": "written-by-the-test"}})
    try:
        result = invoke("secrets.set", "--env", "dev", "worker", "queue-token", stdin="a value\n", cwd=world.root,
                        timeout=bad.CASE_TIMEOUT_S)
        assert result.returncode == 0, result.stderr
        after = world.state()
    finally:
        core.delete_namespaced_config_map("written-by-the-test", "apps-dev")
    assert bad.changed_files(before["files"], after["files"]) == ["README.md"]
    assert after["pulumi writes"] == [["up", "--yes", "--stack", "dev"]]
    assert [(method, status) for method, _, status in after["cluster writes"]] == [("POST", 201)]
    assert after["aws"]["secrets"] != before["aws"]["secrets"]


def test_nat_drill_dry_run_prints_its_steps_and_changes_nothing(world):
    """The drill's whole CLI path up to the fault, against dev's NAT in moto: the steps, exit 0, nothing changed."""
    nat_deployed(world)
    before = world.state()
    result = world.run(row("drill-dry-run", "nat.drill --env dev --dry-run", 0).values[0])
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.splitlines()[0].startswith("fault: suspend HealthCheck") and "dry run: nothing changed" in result.stdout
    assert world.state() == before


@pytest.mark.parametrize("lines", [0, 1], ids=["closed-before-output", "closes-after-one-line"])
def test_nat_status_into_a_reader_that_stops_early_ends_quietly(world, lines):
    """`nat.status | head -1`: the reader's early close ends the task with exit 0 and nothing on stderr."""
    nat_deployed(world)
    code, taken, errors = invoke_into_reader("nat.status", "--env", "dev", lines=lines, env=world.env,
                                             cwd=world.root, timeout=bad.CASE_TIMEOUT_S)
    assert (code, errors) == (0, ""), errors
    assert all(taken)
