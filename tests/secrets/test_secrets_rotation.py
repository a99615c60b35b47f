"""The rotation Lambda against moto Secrets Manager over HTTP, and database logins against a real PostgreSQL.

moto's own rotate_secret without a Lambda moves AWSCURRENT to a version without a value, so it is only
used to switch rotation on while the secret has no version yet; `initialize` (generated secrets) or the
hand-off `invoke secrets.set` (database logins) then puts the first value, and the four steps are driven
here, as Secrets Manager drives them, asserting the labels after each. Database steps log in to a real
PostgreSQL 15 over TLS (tests/support/postgres.py, the `tls_postgres` fixture), not a test double.
"""
from __future__ import annotations

import copy
import json
import uuid

import boto3
import pytest

from infra.components.secrets import secret_tags
from infra.config import SecretSpec, StackConfig, from_mapping, read_stack_file, secret_name
from infra.lambdas import secret_rotation
from infra.lambdas.secret_rotation import ALPHABET, RotationError, handler
from infra.ops import secrets as ops_secrets
from tests.support.postgres import Server

REAL = "the-real-password"


def _sm():
    return boto3.client("secretsmanager", region_name="eu-west-1")


def _secret(name: str, spec: SecretSpec) -> str:
    key = boto3.client("kms", region_name="eu-west-1").create_key(Description="service secrets")["KeyMetadata"]
    tags = secret_tags(spec, name.split("/")[2], {"environment": "dev"})
    return _sm().create_secret(Name=name, Description=spec.description, KmsKeyId=key["Arn"],
                               Tags=[{"Key": k, "Value": v} for k, v in tags.items()])["ARN"]


def _labels(arn: str) -> dict[str, list[str]]:
    return {version: sorted(stages) for version, stages in
            _sm().describe_secret(SecretId=arn).get("VersionIdsToStages", {}).items() if stages}


def _current(arn: str) -> tuple[str, str]:
    value = _sm().get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
    return value["VersionId"], value["SecretString"]


def _enable_rotation(arn: str) -> None:
    """Switch rotation on while the secret has no version, so moto has no label to move."""
    assert not _labels(arn)
    _sm().rotate_secret(SecretId=arn, RotationRules={"AutomaticallyAfterDays": 30}, RotateImmediately=False)
    assert _sm().describe_secret(SecretId=arn)["RotationEnabled"] is True


def _step(step: str, arn: str, token: str) -> None:
    handler({"Step": step, "SecretId": arn, "ClientRequestToken": token}, None)


@pytest.fixture
def generated(aws) -> str:
    arn = _secret("eks-platform/dev/api/session-key",
                  SecretSpec(description="session signing key", length=64, rotation_days=30))
    _enable_rotation(arn)
    assert handler({"Step": "initialize", "SecretId": arn}, None) == {"secret": arn, "initialized": True}
    return arn


def test_initialize_puts_one_generated_current_value_and_is_idempotent(generated):
    version, value = _current(generated)
    assert len(value) == 64 and not set(value) - set(ALPHABET)
    assert handler({"Step": "initialize", "SecretId": generated}, None)["initialized"] is False
    assert _current(generated) == (version, value)
    assert _labels(generated) == {version: ["AWSCURRENT"]}


def test_four_steps_move_awscurrent_to_the_new_value_and_drop_awspending(generated):
    old_version, old_value = _current(generated)
    token = str(uuid.uuid4())

    _step("createSecret", generated, token)
    labels = _labels(generated)
    assert labels[token] == ["AWSPENDING"] and labels[old_version] == ["AWSCURRENT"]
    pending = _sm().get_secret_value(SecretId=generated, VersionId=token, VersionStage="AWSPENDING")["SecretString"]
    assert pending != old_value and len(pending) == 64

    _step("createSecret", generated, token)  # retried by Secrets Manager: no second value
    assert _sm().get_secret_value(SecretId=generated, VersionId=token)["SecretString"] == pending

    _step("setSecret", generated, token)
    _step("testSecret", generated, token)
    assert _labels(generated)[old_version] == ["AWSCURRENT"], "nothing moves before finishSecret"

    _step("finishSecret", generated, token)
    labels = _labels(generated)
    assert labels[token] == ["AWSCURRENT"]
    assert "AWSCURRENT" not in labels.get(old_version, []) and "AWSPENDING" not in labels.get(old_version, [])
    assert not [v for v, stages in labels.items() if "AWSPENDING" in stages]
    assert _current(generated) == (token, pending)

    _step("finishSecret", generated, token)  # a retried finish changes nothing
    assert _current(generated) == (token, pending)


def test_steps_refuse_a_secret_without_rotation_and_an_unknown_token(generated):
    plain = _secret("eks-platform/dev/worker/token", SecretSpec(description="no rotation"))
    handler({"Step": "initialize", "SecretId": plain}, None)
    with pytest.raises(RotationError, match="does not have rotation enabled"):
        _step("createSecret", plain, str(uuid.uuid4()))
    with pytest.raises(RotationError, match="has no version"):
        _step("setSecret", generated, str(uuid.uuid4()))
    with pytest.raises(RotationError, match="unknown step"):
        handler({"Step": "dropSecret", "SecretId": generated, "ClientRequestToken": "x"}, None)


def _database_config(server: Server) -> StackConfig:
    """The dev stack with its api database pointed at the test server (TLS without certificate checks, as RDS)."""
    raw = copy.deepcopy(read_stack_file("dev"))
    raw["eks-platform:secrets"]["services"]["api"]["database"]["database"] = {
        "host": server.host, "port": server.port, "dbname": "api", "username": "api", "tls": "require"}
    return from_mapping("dev", raw)


def _empty_database_secret(cfg: StackConfig) -> str:
    """The secret as `pulumi up` leaves it: described and tagged, rotation on, no value."""
    arn = _secret(secret_name("dev", "api", "database"), cfg.secrets.services["api"]["database"])
    _enable_rotation(arn)
    return arn


@pytest.fixture
def handed_over(aws, tls_postgres) -> tuple[str, StackConfig]:
    """The hand-off: a person stores the database's real login with `invoke secrets.set` (the engine it runs)."""
    tls_postgres.set_password("api", REAL)
    cfg = _database_config(tls_postgres)
    arn = _empty_database_secret(cfg)
    ops_secrets.set_value(ops_secrets.SetSecret(cfg, "api", "database", REAL))
    return arn, cfg


def _login(cfg: StackConfig) -> dict:
    return cfg.secrets.services["api"]["database"].database.login()


def test_initialize_refuses_to_invent_a_database_login(aws, tls_postgres):
    arn = _empty_database_secret(_database_config(tls_postgres))
    with pytest.raises(RotationError, match="real credential"):
        handler({"Step": "initialize", "SecretId": arn}, None)
    assert _labels(arn) == {}


def test_rotation_of_a_login_nobody_handed_over_refuses_to_start(aws, tls_postgres):
    arn = _empty_database_secret(_database_config(tls_postgres))
    with pytest.raises(RotationError, match="invoke secrets.set"):
        _step("createSecret", arn, str(uuid.uuid4()))


def test_the_hand_off_stores_the_real_login_the_app_can_use(handed_over, tls_postgres):
    arn, cfg = handed_over
    stored = json.loads(_current(arn)[1])
    assert stored == {**_login(cfg), "password": REAL}
    assert secret_rotation.Postgres(stored, "require").can_login(stored["password"])


def test_secrets_manager_s_configuration_test_passes_for_a_handed_over_login(handed_over):
    """Scheduling rotation (RotateImmediately=false) makes Secrets Manager stage the current value as AWSPENDING and
    run testSecret: the handed-over login passes it, so `pulumi up` of the SecretRotation succeeds."""
    arn, _ = handed_over
    token = str(uuid.uuid4())
    _sm().put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=_current(arn)[1],
                           VersionStages=["AWSPENDING"])
    _step("testSecret", arn, token)


def test_an_invented_first_value_can_never_pass_that_test(aws, tls_postgres):
    """What the stack used to do: a random first password the database never had. testSecret cannot log in."""
    cfg = _database_config(tls_postgres)
    arn = _empty_database_secret(cfg)
    invented = json.dumps({**_login(cfg), "password": secret_rotation.generate(32)})
    _sm().put_secret_value(SecretId=arn, SecretString=invented)
    token = str(uuid.uuid4())
    _sm().put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=invented, VersionStages=["AWSPENDING"])
    with pytest.raises(RotationError, match="cannot log in as api"):
        _step("testSecret", arn, token)


def test_rotation_changes_the_real_password_tests_it_then_promotes_it(handed_over, tls_postgres):
    arn, cfg = handed_over
    old_version, _ = _current(arn)
    token = str(uuid.uuid4())
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        _step(step, arn, token)
    new = json.loads(_current(arn)[1])
    assert {k: new[k] for k in _login(cfg)} == _login(cfg) and new["password"] != REAL
    database = secret_rotation.Postgres(new, "require")
    assert database.can_login(new["password"]) and not database.can_login(REAL)
    assert _labels(arn)[token] == ["AWSCURRENT"] and "AWSCURRENT" not in _labels(arn).get(old_version, [])


def test_a_password_that_stops_working_is_never_promoted(handed_over, tls_postgres):
    arn, _ = handed_over
    old_version = _current(arn)[0]
    token = str(uuid.uuid4())
    _step("createSecret", arn, token)
    _step("setSecret", arn, token)
    tls_postgres.set_password("api", "changed-behind-its-back")
    with pytest.raises(RotationError, match="cannot log in as api"):
        _step("testSecret", arn, token)
    labels = _labels(arn)
    assert labels[old_version] == ["AWSCURRENT"] and labels[token] == ["AWSPENDING"]


def test_verify_full_refuses_a_server_whose_certificate_it_cannot_check(tls_postgres):
    tls_postgres.set_password("api", REAL)
    login = {"host": tls_postgres.host, "port": tls_postgres.port, "dbname": "api", "username": "api"}
    assert secret_rotation.Postgres(login, "require").can_login(REAL)
    assert not secret_rotation.Postgres(login, "verify-full").can_login(REAL), "self-signed: must not be trusted"


def test_a_database_step_without_a_pending_value_refuses_in_one_line():
    """Secrets Manager stages the token before createSecret puts its value: a setSecret reaching a token with no
    value (createSecret failed, or the step was invoked by hand) says so instead of failing on json.loads(None).
    Secrets Manager answers through botocore's Stubber: moto cannot stage a version without a value."""
    from botocore.stub import Stubber

    sm = boto3.client("secretsmanager", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    arn, token = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:eks-platform/dev/api/database-AbCdEf", "t" * 36
    stub = Stubber(sm)
    stub.add_response("describe_secret", {
        "ARN": arn, "RotationEnabled": True, "Tags": [{"Key": "eks-platform:kind", "Value": "database"}],
        "VersionIdsToStages": {"v" * 36: ["AWSCURRENT"], token: ["AWSPENDING"]}}, {"SecretId": arn})
    login = {"host": "db.internal", "port": 5432, "dbname": "api", "username": "api", "password": REAL}
    stub.add_response("get_secret_value", {"ARN": arn, "SecretString": json.dumps(login)},
                      {"SecretId": arn, "VersionStage": "AWSCURRENT"})
    stub.add_client_error("get_secret_value", service_error_code="ResourceNotFoundException", http_status_code=400,
                          expected_params={"SecretId": arn, "VersionId": token, "VersionStage": "AWSPENDING"})
    with stub, pytest.raises(RotationError, match=f"version {token} has no pending value"):
        handler({"Step": "setSecret", "SecretId": arn, "ClientRequestToken": token}, None, sm=sm)
    stub.assert_no_pending_responses()
