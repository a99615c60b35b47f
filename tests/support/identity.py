"""Seed what `pulumi up` leaves behind for a stack's identity: the ConfigMap in a kubesim cluster, the secrets
KMS key (alias + tags) in moto. Built from infra/identity.py, the facts the Pulumi program declares."""
from __future__ import annotations

import boto3

from infra.config import load_stack_config
from infra.identity import LABELS, NAME, NAMESPACE, identity_of, secrets_key_alias, secrets_key_tags
from tests.kubesim.resources import lookup

CONFIG_MAPS = lookup("", "v1", "configmaps")
IDENTITY_PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{NAME}"


def declare_identity(kubesim, env: str, /, **data: str) -> dict:
    """The identity ConfigMap of stack `env` in a kubesim cluster; `data` overrides fields (cluster="eks-qa")."""
    body = {"metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
            "data": {**identity_of(load_stack_config(env)), **data}}
    return kubesim.api.create(CONFIG_MAPS, NAMESPACE, body, "pulumi-kubernetes")


def declare_secrets_key(env: str, region: str = "eu-west-1", tags: dict[str, str] | None = None) -> str:
    """The stack's secrets KMS key under its alias, tagged like the stack tags it (or with `tags`); its ARN."""
    kms = boto3.client("kms", region_name=region)
    tagged = {**secrets_key_tags(env), "managed-by": "pulumi"} if tags is None else tags
    key = kms.create_key(Description=f"Service secrets of eks-platform {env}",
                         Tags=[{"TagKey": k, "TagValue": v} for k, v in tagged.items()])["KeyMetadata"]
    kms.create_alias(AliasName=secrets_key_alias(env), TargetKeyId=key["KeyId"])
    return key["Arn"]
