"""`invoke secrets.set` / `secrets.list` against moto over HTTP, and a sweep proving no value leaks anywhere."""
from __future__ import annotations

import getpass
import io
import json
import logging
import subprocess
import sys

import boto3
import pytest

from infra.components.secrets import secret_tags
from infra.config import load_stack_config, secret_name
from infra.lambdas.secret_rotation import handler
from infra.ops import secrets as ops
from infra.ops.secrets import SecretInputError, SecretsError, SetSecret, read_value
from tests.support import REPO_ROOT
from tests.support.cli import invoke
from tests.support.identity import declare_secrets_key

ROOT = REPO_ROOT
QUEUE_TOKEN = "qt-7f3a9c1e-" + "Zx" * 12


def _sm():
    return boto3.client("secretsmanager", region_name="eu-west-1")


def _declare(env: str = "dev", skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Create the stack's secrets the way the Pulumi program does (KMS key, tags), without values."""
    cfg = load_stack_config(env)
    key = declare_secrets_key(env)
    arns = {}
    for service, name, spec in cfg.secrets.entries():
        if f"{service}/{name}" in skip:
            continue
        tags = secret_tags(spec, service, {"environment": env})
        arns[f"{service}/{name}"] = _sm().create_secret(
            Name=secret_name(env, service, name), Description=spec.description, KmsKeyId=key,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()])["ARN"]
    return arns


def _invoke(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return invoke(*args, stdin=stdin)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_piped_value_keeps_everything_but_one_trailing_newline():
    assert read_value(io.StringIO("s3cr3t value\n")) == "s3cr3t value"
    assert read_value(io.StringIO("line1\nline2\r\n"), multiline=True) == "line1\nline2"
    assert read_value(io.StringIO("  spaced  ")) == "  spaced  "
    with pytest.raises(SecretInputError, match="no value on stdin"):
        read_value(io.StringIO("\n"))


@pytest.mark.parametrize("piped, words", [
    (" \t \n", "only whitespace"),
    ("to\0ken", "NUL byte"),
    ("x" * (ops.MAX_VALUE_BYTES + 1), f"over {ops.MAX_VALUE_BYTES} bytes"),
    ("é" * (ops.MAX_VALUE_BYTES // 2 + 1), f"over {ops.MAX_VALUE_BYTES} bytes"),  # the limit is bytes, not characters
    ("line1\nline2\n", "has 2 lines; pass --multiline"),
    ("token\n\n", "has 2 lines; pass --multiline"),
])
def test_a_value_secrets_manager_or_its_readers_would_mangle_is_refused_without_showing_it(piped, words):
    with pytest.raises(SecretInputError, match=words) as refused:
        read_value(io.StringIO(piped))
    assert not piped.strip() or piped.strip()[:20] not in str(refused.value)


def test_the_longest_value_secrets_manager_stores_is_taken():
    assert len(read_value(io.StringIO("x" * ops.MAX_VALUE_BYTES + "\n"))) == ops.MAX_VALUE_BYTES


def test_stdin_closed_is_no_value(monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(SecretInputError, match="no value on stdin: stdin is closed"):
        read_value()


def test_terminal_input_goes_through_getpass_and_an_echoing_terminal_is_refused():
    prompts = []
    assert read_value(Tty(), prompt=lambda text: prompts.append(text) or "typed") == "typed"
    assert prompts == ["value (not echoed): "]

    def echoing(text):
        import warnings
        warnings.warn("Can not control echo on the terminal.", getpass.GetPassWarning, stacklevel=2)
        return "would be echoed"
    with pytest.raises(SecretInputError, match="cannot hide typed input"):
        read_value(Tty(), prompt=echoing)


def test_a_set_request_is_data_whose_repr_never_shows_the_value():
    request = SetSecret(load_stack_config("dev"), "worker", "queue-token", QUEUE_TOKEN)
    assert QUEUE_TOKEN not in repr(request) and "queue-token" in repr(request)
    with pytest.raises(AttributeError):  # frozen: what the CLI asked is what the engine does
        request.value = "other"  # type: ignore[misc]


def test_set_round_trip_through_secrets_manager(aws):
    _declare()
    cfg = load_stack_config("dev")
    version = ops.set_value(SetSecret(cfg, "worker", "queue-token", QUEUE_TOKEN))
    stored = _sm().get_secret_value(SecretId="eks-platform/dev/worker/queue-token")
    assert stored["SecretString"] == QUEUE_TOKEN and stored["VersionId"] == version
    second = ops.set_value(SetSecret(cfg, "worker", "queue-token", QUEUE_TOKEN + "-2"))
    assert _sm().get_secret_value(SecretId="eks-platform/dev/worker/queue-token")["VersionId"] == second != version


def test_database_secret_takes_the_password_and_keeps_the_login_shape_rotation_expects(aws):
    _declare()
    ops.set_value(SetSecret(load_stack_config("dev"), "api", "database", "pg-pass-1"))
    login = json.loads(_sm().get_secret_value(SecretId="eks-platform/dev/api/database")["SecretString"])
    assert login == {"engine": "postgres", "host": "api-db.dev.internal", "port": 5432, "dbname": "api",
                     "username": "api", "password": "pg-pass-1"}


def test_set_refuses_generated_unknown_and_undeployed_secrets_without_changing_anything(aws):
    _declare(skip=("worker/queue-token",))
    cfg = load_stack_config("dev")
    with pytest.raises(SecretInputError, match="generated in AWS"):
        ops.set_value(SetSecret(cfg, "api", "session-key", "x"))
    with pytest.raises(SecretInputError, match="use one of: database, session-key"):
        ops.set_value(SetSecret(cfg, "api", "nope", "x"))
    with pytest.raises(SecretInputError, match="service 'billing'"):
        ops.set_value(SetSecret(cfg, "billing", "key", "x"))
    with pytest.raises(SecretsError, match="does not exist in AWS.*invoke up"):
        ops.set_value(SetSecret(cfg, "worker", "queue-token", "x"))
    assert "VersionIdsToStages" not in _sm().describe_secret(SecretId="eks-platform/dev/api/session-key")


def test_list_shows_state_rotation_and_readers_never_values(aws):
    arns = _declare()
    _sm().create_secret(Name="eks-platform/dev/legacy/api-key", SecretString="legacy-value-123")
    handler({"Step": "initialize", "SecretId": arns["api/session-key"]}, None)
    rows = {row.name: row for row in ops.list_rows(load_stack_config("dev"))}
    assert rows["eks-platform/dev/api/session-key"].state == "ok"
    assert rows["eks-platform/dev/api/database"].state == "no value yet (invoke secrets.set)"
    assert rows["eks-platform/dev/worker/queue-token"].readers == "worker (serviceaccount apps-dev/worker)"
    assert rows["eks-platform/dev/legacy/api-key"].state == "not in config"
    assert all(row.rotation == "off" and row.last_rotated is None for row in rows.values())
    assert "legacy-value-123" not in repr(rows)


def test_list_reports_a_secret_config_declares_but_aws_lacks(aws):
    _declare(skip=("api/database",))
    rows = {row.name: row for row in ops.list_rows(load_stack_config("dev"))}
    assert rows["eks-platform/dev/api/database"].state == "missing in AWS (run invoke up)"


@pytest.fixture
def botocore_debug():
    """botocore at its most talkative (an earlier Lambda handler run may have quieted it for the process)."""
    logger = logging.getLogger("botocore")
    level = logger.level
    logger.setLevel(logging.NOTSET)
    yield
    logger.setLevel(level)


def test_set_and_list_tasks_end_to_end_leak_no_value(aws, caplog, botocore_debug):
    """The sweep: values set and generated never show in logs, errors, CLI output, the plan or its outputs."""
    caplog.set_level(logging.DEBUG)
    arns = _declare()
    values = [QUEUE_TOKEN, "pg-pass-Quartz-42"]
    result = _invoke("secrets.set", "--env", "dev", "worker", "queue-token", stdin=QUEUE_TOKEN + "\n")
    assert result.returncode == 0, result.stderr
    outputs = [result.stdout, result.stderr]
    result = _invoke("secrets.set", "--env", "dev", "api", "database", stdin=values[1])
    assert result.returncode == 0, result.stderr
    outputs += [result.stdout, result.stderr]
    refused = _invoke("secrets.set", "--env", "dev", "api", "session-key", stdin="never-stored-value")
    assert refused.returncode == 2 and "generated in AWS" in refused.stderr
    outputs += [refused.stdout, refused.stderr]
    values.append("never-stored-value")
    errors = []
    for request in (SetSecret(load_stack_config("dev"), "api", "session-key", "never-stored-value"),
                    SetSecret(load_stack_config("prod"), "worker", "queue-token", QUEUE_TOKEN)):
        with pytest.raises((SecretInputError, SecretsError)) as error:
            ops.set_value(request)
        errors.append(str(error.value))
    ops.set_value(SetSecret(load_stack_config("dev"), "worker", "queue-token", QUEUE_TOKEN))  # in-process, under caplog
    handler({"Step": "initialize", "SecretId": arns["api/session-key"]}, None)
    listing = _invoke("secrets.list", "--env", "dev")
    assert listing.returncode == 0, listing.stderr
    assert "eks-platform/dev/worker/queue-token" in listing.stdout
    listing_json = _invoke("secrets.list", "--env", "dev", "--json")
    listed = {row["name"]: row for row in json.loads(listing_json.stdout)}
    assert listed["eks-platform/dev/worker/queue-token"]["state"] == "ok"
    assert listed["eks-platform/dev/api/session-key"]["readers"] == "api (serviceaccount apps-dev/api)"
    outputs += [listing.stdout, listing.stderr, listing_json.stdout, listing_json.stderr]
    logged = caplog.text

    from infra.plan.offline import plan_stack
    plan = json.dumps(plan_stack("dev").to_json())
    values.append(_sm().get_secret_value(SecretId=arns["api/session-key"])["SecretString"])
    assert _sm().get_secret_value(SecretId=arns["worker/queue-token"])["SecretString"] == QUEUE_TOKEN
    assert json.loads(_sm().get_secret_value(SecretId=arns["api/database"])["SecretString"])["password"] == values[1]
    haystacks = {"logs": logged, "errors": "\n".join(errors), "cli": "\n".join(outputs), "plan": plan}
    assert len(logged) > 100 and "put" in logged, "the engines did log their work"
    for where, text in haystacks.items():
        for value in values:
            assert value not in text, f"a secret value leaked into {where}"
