"""Secrets Manager rotation for platform secrets: the four-step contract, plus `initialize` for first values.

Values are made here, inside AWS, so they never pass through stack config or Pulumi state. What a secret
is comes from its tags (written by infra/components/secrets.py): `eks-platform:kind` is `generated` (a
random token consumers re-read) or `database` (a Postgres login whose password this function changes and
tests). A database login's first value is never made here: it is the database's real credential, stored
by a person (`invoke secrets.set`), and rotation refuses to start without it. Every AWS call is logged
with the secret ARN and version, never a value.
"""
from __future__ import annotations

import json
import logging
import secrets as random_source
import ssl
import string

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)

CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20)
ALPHABET = string.ascii_letters + string.digits + "-_"
TAG_KIND, TAG_LENGTH = "eks-platform:kind", "eks-platform:length"
DB_TAGS = {"host": "eks-platform:db-host", "port": "eks-platform:db-port", "dbname": "eks-platform:db-name",
           "username": "eks-platform:db-user", "engine": "eks-platform:db-engine", "tls": "eks-platform:db-tls"}
CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"


class RotationError(Exception):
    """The secret is not in a state this step can work from; Secrets Manager retries the rotation later."""


def tls_context(mode: str) -> ssl.SSLContext:
    """`verify-full`: the server's certificate and name are checked against the runtime's CA store; `require`:
    encrypted, certificate not checked (libpq's sslmode=require; RDS's CA is not in the runtime's store)."""
    context = ssl.create_default_context()
    if mode != "verify-full":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Postgres:
    """Password changes and login checks for one Postgres user (single-user rotation)."""

    def __init__(self, login: dict, tls: str = "verify-full"):
        self.login = login
        self.tls = tls

    def _connect(self, password: str):
        import pg8000.native  # bundled into the Lambda package; imported only for database secrets

        return pg8000.native.Connection(user=self.login["username"], password=password, host=self.login["host"],
                                        port=int(self.login["port"]), database=self.login["dbname"],
                                        ssl_context=tls_context(self.tls), timeout=10)

    def can_login(self, password: str) -> bool:
        try:
            connection = self._connect(password)
        except Exception as error:  # noqa: BLE001 - any failure means "this password does not log in"
            log.info("login as %s failed: %s", self.login["username"], type(error).__name__)
            return False
        try:
            connection.run("SELECT 1")
            return True
        finally:
            connection.close()

    def set_password(self, current: str, pending: str) -> None:
        import pg8000.native

        if self.can_login(pending):
            return  # an earlier attempt of this step already changed it
        connection = self._connect(current)
        try:
            connection.run(f"ALTER USER {pg8000.native.identifier(self.login['username'])} "
                           f"WITH PASSWORD {pg8000.native.literal(pending)}")
        finally:
            connection.close()


TARGETS = {"postgres": Postgres}


def client():
    """Secrets Manager client; the endpoint comes from the environment (AWS_ENDPOINT_URL) like every client."""
    return boto3.client("secretsmanager", config=CLIENT_CONFIG)


def generate(length: int) -> str:
    return "".join(random_source.choice(ALPHABET) for _ in range(length))


def _tags(metadata: dict) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in metadata.get("Tags", [])}


def new_value(metadata: dict, current: str | None) -> str:
    """A fresh value of the secret's kind; database secrets keep their login and change only the password."""
    tags = _tags(metadata)
    length = int(tags.get(TAG_LENGTH, "32"))
    if tags.get(TAG_KIND) != "database":
        return generate(length)
    if not current:
        raise RotationError(f"{metadata.get('ARN', 'the secret')} has no current value: a database login is handed "
                            f"over by a person (`invoke secrets.set`), never invented here")
    login = json.loads(current)
    login["port"] = int(login["port"])
    return json.dumps({**login, "password": generate(length)})


def _value(sm, arn: str, **selector) -> str | None:
    try:
        return sm.get_secret_value(SecretId=arn, **selector)["SecretString"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise


def initialize(sm, arn: str) -> dict:
    """Give a new secret its first value (AWSCURRENT) unless it has one; safe to run any number of times."""
    metadata = sm.describe_secret(SecretId=arn)
    if any(CURRENT in stages for stages in metadata.get("VersionIdsToStages", {}).values()):
        log.info("initialize %s: already has a current value", arn)
        return {"secret": arn, "initialized": False}
    if _tags(metadata).get(TAG_KIND) == "database":
        raise RotationError(f"initialize {arn}: a database login's first value is the database's real credential; "
                            f"store it with `invoke secrets.set`")
    version = sm.put_secret_value(SecretId=arn, SecretString=new_value(metadata, None),
                                  VersionStages=[CURRENT])["VersionId"]
    log.info("initialize %s: put first value as version %s", arn, version)
    return {"secret": arn, "initialized": True}


def create_secret(sm, arn: str, token: str, metadata: dict) -> None:
    current = _value(sm, arn, VersionStage=CURRENT)
    if _value(sm, arn, VersionId=token, VersionStage=PENDING) is not None:
        log.info("createSecret %s: version %s already pending", arn, token)
        return
    sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=new_value(metadata, current),
                        VersionStages=[PENDING])
    log.info("createSecret %s: put pending version %s", arn, token)


def _database(metadata: dict, sm, arn: str, token: str) -> tuple | None:
    tags = _tags(metadata)
    if tags.get(TAG_KIND) != "database":
        return None
    current_text = _value(sm, arn, VersionStage=CURRENT)
    if current_text is None:
        raise RotationError(f"{arn} has no current value to rotate from; store the real login with "
                            f"`invoke secrets.set` first")
    current = json.loads(current_text)
    pending_text = _value(sm, arn, VersionId=token, VersionStage=PENDING)
    if pending_text is None:
        raise RotationError(f"{arn} version {token} has no pending value (createSecret puts it); rotate the "
                            f"secret again")
    pending = json.loads(pending_text)
    return TARGETS[pending.get("engine", "postgres")](pending, tags.get(DB_TAGS["tls"], "verify-full")), current, pending


def set_secret(sm, arn: str, token: str, metadata: dict) -> None:
    database = _database(metadata, sm, arn, token)
    if database is None:
        log.info("setSecret %s: generated value, consumers re-read it; nothing to push", arn)
        return
    target, current, pending = database
    target.set_password(current["password"], pending["password"])
    log.info("setSecret %s: password of %s changed to version %s", arn, pending["username"], token)


def test_secret(sm, arn: str, token: str, metadata: dict) -> None:
    database = _database(metadata, sm, arn, token)
    if database is None:
        pending = _value(sm, arn, VersionId=token, VersionStage=PENDING)
        length = int(_tags(metadata).get(TAG_LENGTH, "32"))
        if pending is None or len(pending) != length or set(pending) - set(ALPHABET):
            raise RotationError(f"testSecret {arn}: pending version {token} is not a {length}-character token")
        log.info("testSecret %s: pending version %s is well-formed", arn, token)
        return
    target, _, pending = database
    if not target.can_login(pending["password"]):
        raise RotationError(f"testSecret {arn}: pending version {token} cannot log in as {pending['username']}")
    log.info("testSecret %s: pending version %s logs in", arn, token)


def finish_secret(sm, arn: str, token: str, metadata: dict) -> None:
    versions = metadata["VersionIdsToStages"]
    current = next((version for version, stages in versions.items() if CURRENT in stages), None)
    if current != token:
        sm.update_secret_version_stage(SecretId=arn, VersionStage=CURRENT, MoveToVersionId=token,
                                       RemoveFromVersionId=current)
        log.info("finishSecret %s: AWSCURRENT moved from %s to %s", arn, current, token)
    if PENDING in versions.get(token, []):
        sm.update_secret_version_stage(SecretId=arn, VersionStage=PENDING, RemoveFromVersionId=token)
        log.info("finishSecret %s: AWSPENDING removed from %s", arn, token)


STEPS = {"createSecret": create_secret, "setSecret": set_secret, "testSecret": test_secret,
         "finishSecret": finish_secret}


def handler(event: dict, context: object = None, sm=None) -> dict | None:
    """Entry point for Secrets Manager rotation events and for `{"Step": "initialize", "SecretId": ...}`."""
    logging.getLogger("botocore").setLevel(logging.WARNING)  # its DEBUG lines carry request/response bodies
    sm = sm or client()
    step, arn = event["Step"], event["SecretId"]
    if step == "initialize":
        return initialize(sm, arn)
    if step not in STEPS:
        raise RotationError(f"unknown step {step!r}; expected initialize or one of {', '.join(STEPS)}")
    token = event["ClientRequestToken"]
    metadata = sm.describe_secret(SecretId=arn)
    if not metadata.get("RotationEnabled"):
        raise RotationError(f"{arn} does not have rotation enabled")
    stages = metadata.get("VersionIdsToStages", {}).get(token)
    if stages is None and step != "createSecret":  # Secrets Manager stages the token before createSecret
        raise RotationError(f"{arn} has no version {token} to rotate")
    if stages and CURRENT in stages:
        log.info("%s %s: version %s is already current", step, arn, token)
        if step == "finishSecret":
            finish_secret(sm, arn, token, metadata)  # only drops a left-over AWSPENDING
        return None
    if stages is not None and PENDING not in stages:
        raise RotationError(f"{arn} version {token} is not pending rotation")
    STEPS[step](sm, arn, token, metadata)
    return None
