"""Prove a task talks to its own stack's cluster (or AWS secrets) before it reads or changes anything.

A kubeconfig can point anywhere: `invoke deploy api --env prod` with KUBECONFIG at another cluster once
went "live in prod" there. So every cluster task first reads the identity ConfigMap the platform declares
(kube-system/eks-platform-identity, see infra/identity.py) and refuses (exit 2, nothing changed) when it is
missing or names another project, stack, cluster or region, naming both clusters and the fix.

A client built straight from EKS (no kubeconfig) reaches the stack's cluster by name, yet the ConfigMap is
still required: its absence there means the stack's `pulumi up` never got as far as the platform (or the
cluster is not eks-platform's), and no engine should act on a half-declared cluster. That is a refusal too,
whose fix is `invoke up`, not another kubeconfig.

secrets.set/list talk to Secrets Manager only. Secret names are per stack, so what can be wrong is the AWS
account the credentials reach: they must reach the stack's secrets KMS key (the alias and tags the
Secrets component declares) in the stack's region.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from kubernetes import config
from kubernetes.client.exceptions import ApiException

from infra.config import StackConfig
from infra.identity import NAME, NAMESPACE, READERS_GROUP, identity_of, secrets_key_alias, secrets_key_tags
from infra.ops.errors import Failed, Refused
from infra.ops.io import aws
from infra.ops.io.kube import Kube, api_reason, object_path

OBJECT = f"ConfigMap {NAMESPACE}/{NAME}"


class WrongCluster(Refused):
    """The API server reached is not the stack's cluster, or does not say which stack it is."""


class WrongAccount(Refused):
    """The AWS credentials reach an account/region that does not hold the stack's secrets."""


class IdentityUnreadable(Failed):
    """The cluster would not let this identity read its identity ConfigMap."""


@dataclass(frozen=True)
class Endpoint:
    """Where a client points: its server, and the kubeconfig context when a kubeconfig chose it."""

    server: str
    context: str | None = None  # None: built from EKS describe-cluster

    def __str__(self) -> str:
        return f"kubeconfig context {self.context!r} ({self.server})" if self.context else f"{self.server}"


def endpoint(kube: Kube, kubeconfig: str | None) -> Endpoint:
    """`kube`'s server and, when --kubeconfig/$KUBECONFIG made it (kube.connect's rule), the current context."""
    server = kube.api.configuration.host
    if not (kubeconfig or os.environ.get("KUBECONFIG")):
        return Endpoint(server)
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        return Endpoint(server, active["name"])
    except (config.ConfigException, OSError, KeyError, TypeError):  # loaded a moment ago; name what we can
        return Endpoint(server, "?")


def read(kube: Kube) -> dict[str, str] | None:
    """The identity ConfigMap's data, or None when the cluster has none."""
    try:
        found = kube.request("GET", object_path("v1", "ConfigMap", NAMESPACE, NAME))
    except ApiException as exc:
        if exc.status == 404:
            return None
        if exc.status == 403:
            raise IdentityUnreadable(f"cannot tell which cluster this is: reading {OBJECT} was denied "
                                     f"({api_reason(exc)}); the stack grants `get` on it to {READERS_GROUP} "
                                     f"(run `invoke up` for the stack once), or use an identity that may read it"
                                     ) from None
        raise
    return {str(k): str(v) for k, v in (found.get("data") or {}).items()}


def describe(identity: dict[str, str]) -> str:
    return f"stack {identity.get('stack')}'s cluster {identity.get('cluster')} ({identity.get('region')})"


def prove(kube: Kube, cfg: StackConfig, kubeconfig: str | None = None) -> dict[str, str]:
    """The identity of the cluster `kube` reaches, when it is `cfg`'s; WrongCluster (exit 2) naming both otherwise."""
    expected = identity_of(cfg)
    found = read(kube)
    if found is not None and all(found.get(key) == value for key, value in expected.items()):
        return found
    where = endpoint(kube, kubeconfig)
    raise WrongCluster(refusal(where, found, expected))


def _said(found: dict[str, str] | None, project: str) -> tuple[str, bool]:
    """What the reached cluster says it is, and whether that names a stack of `project` at all."""
    if found is None:
        return f"has no eks-platform identity ({OBJECT})", False
    if found.get("project") != project or not all(found.get(key) for key in ("stack", "cluster", "region")):
        shown = ", ".join(f"{k}={v}" for k, v in found.items()) or "no data"
        return f"has a {OBJECT} that names no {project} stack ({shown})", False
    return f"is {describe(found)}", True


def refusal(where: Endpoint, found: dict[str, str] | None, expected: dict[str, str]) -> str:
    """One line: what was reached, what it is, what the stack expects, and how to reach that instead."""
    env, cluster, region = expected["stack"], expected["cluster"], expected["region"]
    said, named = _said(found, expected["project"])
    verdict = f"not {describe(expected)}" if named else f"so it is not proven to be {describe(expected)}"
    if where.context is None:  # straight from EKS: the stack's cluster by name, but it does not say so
        fix = (f"two stacks claim one cluster: check eks-platform:cluster.name in Pulumi.{env}.yaml" if named else
               f"run `invoke up --env {env}` so the platform declares it")
        return f"refusing to act on {env}: EKS cluster {cluster} ({region}) at {where.server} {said}, {verdict}; {fix}"
    return (f"refusing to act on {env}: {where} {said}, {verdict}; point the kubeconfig at it with "
            f"`aws eks update-kubeconfig --name {cluster} --region {region}` or pass --kubeconfig with its file")


def prove_secrets(cfg: StackConfig, kms: Any = None, sts: Any = None) -> str:
    """The ARN of the stack's secrets key when the credentials reach it (alias and tags as the stack declares
    them, in the stack's region); WrongAccount (exit 2) naming the account found and the stack otherwise."""
    kms = kms or aws.client("kms", cfg.region)
    alias, wanted = secrets_key_alias(cfg.env), secrets_key_tags(cfg.env)
    try:
        key = kms.describe_key(KeyId=alias)["KeyMetadata"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NotFoundException":
            raise
        key = None
    tags: dict[str, str] = {}
    if key is not None:
        for page in kms.get_paginator("list_resource_tags").paginate(KeyId=key["KeyId"]):
            tags.update({tag["TagKey"]: tag["TagValue"] for tag in page.get("Tags", [])})
        if all(tags.get(k) == v for k, v in wanted.items()):
            return key["Arn"]
    where = f"AWS account {_account(sts or aws.client('sts', cfg.region))} in {cfg.region}"
    if key is None:
        raise WrongAccount(f"refusing to touch {cfg.env}'s secrets: {where} has no {alias}, the KMS key stack "
                           f"{cfg.env} encrypts them with, so it is not {cfg.env}'s account; switch the AWS "
                           f"credentials (AWS_PROFILE) to {cfg.env}'s account, or, if it is, run "
                           f"`invoke up --env {cfg.env}` first")
    found = ", ".join(f"{k}={tags.get(k, '(none)')}" for k in wanted)
    raise WrongAccount(f"refusing to touch {cfg.env}'s secrets: {where} has {alias} but its key is tagged "
                       f"{found}, not {', '.join(f'{k}={v}' for k, v in wanted.items())}, so it is not "
                       f"{cfg.env}'s key; switch the AWS credentials (AWS_PROFILE) to {cfg.env}'s account")


def _account(sts: Any) -> str:
    try:
        return sts.get_caller_identity()["Account"]
    except (ClientError, BotoCoreError):
        return "(unknown account)"
