"""The rotation Lambda against moto Secrets Manager over HTTP: initialize, then the four steps, label by label.

moto's own rotate_secret without a Lambda moves AWSCURRENT to a version without a value, so it is only
used to switch rotation on while the secret has no version yet; `initialize` then puts the first value
and the four steps are driven here, as Secrets Manager drives them, asserting the labels after each.
"""
from __future__ import annotations

import json
import uuid

import boto3
import pytest

from infra.components.secrets import secret_tags
from infra.config import SecretSpec
from infra.lambdas import secret_rotation
from infra.lambdas.secret_rotation import ALPHABET, RotationError, handler

DB = {"host": "db.internal", "port": 5432, "dbname": "api", "username": "api"}


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


class FakePostgres:
    """Stands in for the database server: remembers the one password that logs in."""

    password: str | None = None
    changes: list[tuple[str, str]] = []
    accept_logins = True

    def __init__(self, login: dict):
        self.login = login

    def can_login(self, password: str) -> bool:
        return self.accept_logins and password == FakePostgres.password

    def set_password(self, current: str, pending: str) -> None:
        assert current == FakePostgres.password, "connects with the current login"
        FakePostgres.changes.append((current, pending))
        FakePostgres.password = pending


@pytest.fixture
def database(aws, monkeypatch) -> str:
    monkeypatch.setitem(secret_rotation.TARGETS, "postgres", FakePostgres)
    monkeypatch.setattr(FakePostgres, "changes", [])
    monkeypatch.setattr(FakePostgres, "accept_logins", True)
    spec = SecretSpec(description="api login", kind="database", rotation_days=30, database=DB)
    arn = _secret("eks-platform/dev/api/database", spec)
    _enable_rotation(arn)
    handler({"Step": "initialize", "SecretId": arn}, None)
    monkeypatch.setattr(FakePostgres, "password", json.loads(_current(arn)[1])["password"])
    return arn


def test_database_initialize_writes_the_login_from_tags(database):
    login = json.loads(_current(database)[1])
    assert {key: login[key] for key in DB} == DB and login["engine"] == "postgres"
    assert len(login["password"]) == 32


def test_database_rotation_changes_the_password_tests_it_then_promotes_it(database):
    old = json.loads(_current(database)[1])
    token = str(uuid.uuid4())
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        _step(step, database, token)
    new = json.loads(_current(database)[1])
    assert FakePostgres.changes == [(old["password"], new["password"])]
    assert new["password"] != old["password"] and {k: new[k] for k in DB} == DB
    assert _labels(database)[token] == ["AWSCURRENT"]


def test_database_rotation_that_cannot_log_in_never_promotes_the_new_password(database, monkeypatch):
    old_version = _current(database)[0]
    token = str(uuid.uuid4())
    _step("createSecret", database, token)
    _step("setSecret", database, token)
    monkeypatch.setattr(FakePostgres, "accept_logins", False)
    with pytest.raises(RotationError, match="cannot log in as api"):
        _step("testSecret", database, token)
    labels = _labels(database)
    assert labels[old_version] == ["AWSCURRENT"] and labels[token] == ["AWSPENDING"]
