"""Every rule of the policy pack against one failing and one passing fixture, through the offline evaluator.

One table: a rule removed from the pack, or a rule added without fixtures, fails `test_every_rule_has_a_row`;
a rule that stops catching its defect fails its `failing` row, one that over-reaches its `passing` row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from infra.charts import EDGE_CONTROLLER_POLICY
from infra.plan.verdict import evaluate
from infra.policy import POLICIES

ACCOUNT = "123456789012"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/eks-platform-dev-ci/eks-platform-dev-workload-boundary"


@dataclass
class R:
    """A planned resource as the evaluator reads it (the shape of infra.plan.offline.PlannedResource)."""

    type: str
    inputs: dict[str, Any]
    name: str = "r"
    inside: str = ""                     # type of the component it was declared in (urn type chain)
    ignore_changes: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)
    parent: str = ""
    custom: bool = True
    protect: bool = False

    @property
    def urn(self) -> str:
        chain = f"{self.inside}${self.type}" if self.inside else self.type
        return f"urn:pulumi:dev::eks-platform::{chain}::{self.name}"


def doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions, resources="*", **condition) -> dict:
    statement = {"Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def trust(sub: str, operator: str = "StringEquals") -> str:
    issuer = "token.actions.githubusercontent.com"
    return doc({"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}"},
                "Condition": {operator: {f"{issuer}:aud": "sts.amazonaws.com", f"{issuer}:sub": sub}}})


CLUSTER = "eks:index:Cluster"
GOOD_CLUSTER = {"version": "1.35", "skipDefaultNodeGroup": True, "corednsAddonOptions": {"enabled": False},
                "endpointPublicAccess": False, "upgradePolicy": {"supportType": "STANDARD"},
                "encryptionConfigKeyArn": "arn:aws:kms:eu-west-1:1:key/1", "authenticationMode": "API",
                "enabledClusterLogTypes": ["api", "audit", "authenticator"]}
NODES = R("aws:eks/nodeGroup:NodeGroup", {"amiType": "AL2023_x86_64_STANDARD", "clusterName": "eks-dev"}, "ng",
          ignore_changes=["scalingConfig.desiredSize"])

# Something that waits for the nodes itself: an add-on depending on it waits for them too.
AFTER_NODES = R("aws:iam/rolePolicyAttachment:RolePolicyAttachment", {}, "after-nodes", dependencies=[NODES.urn])


def cluster(**changes) -> R:
    return R(CLUSTER, {**GOOD_CLUSTER, **changes}, "cluster", custom=False)


def addon(name: str, *deps: R) -> R:
    return R("aws:eks/addon:Addon", {"addonName": name, "clusterName": "eks-dev"}, name, dependencies=[d.urn for d in deps])


def entry(name: str, principal: str) -> R:
    return R("aws:eks/accessEntry:AccessEntry", {"clusterName": "eks-dev", "principalArn": principal}, name)


def network_policy() -> R:
    return R("kubernetes:networking.k8s.io/v1:NetworkPolicy", {"metadata": {"name": "deny"}, "spec": {}}, "np")


def aws_auth(kind: str = "ConfigMapPatch") -> R:
    return R(f"kubernetes:core/v1:{kind}", {"metadata": {"name": "aws-auth", "namespace": "kube-system"}}, "auth")


def role(name: str = "app", **inputs) -> R:
    return R("aws:iam/role:Role", {"name": name, "assumeRolePolicy": doc({
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "ec2.amazonaws.com"}}), **inputs}, name)


def role_policy(policy: str, role_name: str = "app") -> R:
    return R("aws:iam/rolePolicy:RolePolicy", {"role": role_name, "policy": policy}, f"{role_name}-policy")


def repository(**inputs) -> R:
    return R("aws:ecr/repository:Repository", {"name": "eks-platform/dev/api", "imageTagMutability": "IMMUTABLE",
                                                "imageScanningConfiguration": {"scanOnPush": True},
                                                "encryptionConfigurations": [{"encryptionType": "KMS",
                                                                              "kmsKey": "arn:k"}], **inputs}, "api")


def secret(kind: str = "database", **inputs) -> R:
    return R("aws:secretsmanager/secret:Secret", {"name": "eks-platform/dev/api/database", "kmsKeyId": "arn:k",
                                                  "tags": {"eks-platform:kind": kind}, **inputs}, "secrets-api-database")


def initialize(target: R) -> R:
    return R("aws:lambda/invocation:Invocation", {"functionName": "rotation", "input": json.dumps(
        {"Step": "initialize", "SecretId": f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:{target.name}"})}, "init")


def sg(*ingress: dict) -> R:
    return R("aws:ec2/securityGroup:SecurityGroup", {"ingress": list(ingress)}, "sg")


def template(**inputs) -> R:
    return R("aws:ec2/launchTemplate:LaunchTemplate", {
        "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
        "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}}], **inputs}, "lt")


def function(**inputs) -> R:
    return R("aws:lambda/function:Function", {"name": "eks-dev-fn", "reservedConcurrentExecutions": 2,
                                              "deadLetterConfig": {"targetArn": "arn:aws:sqs:q"}, **inputs}, "fn")


def log_group(name: str = "/aws/lambda/eks-dev-fn", **inputs) -> R:
    return R("aws:cloudwatch/logGroup:LogGroup", {"name": name, "retentionInDays": 14, **inputs}, "logs")


def storage_class(**parameters) -> R:
    return R("kubernetes:storage.k8s.io/v1:StorageClass", {"metadata": {"name": "gp3"}, "provisioner": "ebs.csi.aws.com",
                                                           "parameters": {"type": "gp3", "encrypted": "true",
                                                                          **parameters}}, "sc")


def bucket(**inputs) -> R:
    return R("aws:s3/bucketV2:BucketV2", {"bucket": "state", **inputs}, "state")


PR_ROLE = role("previewer", assumeRolePolicy=trust("repo:acme/eks-platform:pull_request"))
BUCKET = bucket()
WAIVER = "eks-platform:policy-waiver"


def boundary(*actions: str) -> R:
    """The stack's workload boundary (a managed policy tagged as a boundary) allowing `actions` on `*`."""
    return R("aws:iam/policy:Policy", {"name": "eks-platform-dev-workload-boundary", "path": "/eks-platform-dev-ci/",
                                        "policy": doc(allow(list(actions))),
                                        "tags": {"eks-platform:purpose": "permissions-boundary"}}, "boundary")


BOUNDED = role("dns", path="/eks-platform-dev/", permissionsBoundary=BOUNDARY)
DNS_GRANT = role_policy(doc(allow(["route53:ChangeResourceRecordSets", "ec2:Describe*"],
                                  "arn:aws:route53:::hostedzone/Z1")), "dns")
UPSTREAM = json.loads(EDGE_CONTROLLER_POLICY.read_text())
LBC_ROLE = R("aws:iam/role:Role", {"name": "edge-controller", "assumeRolePolicy": doc({
    "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
    "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/X"},
    "Condition": {"StringEquals": {"oidc.eks.eu-west-1.amazonaws.com/id/X:aud": "sts.amazonaws.com",
                                   "oidc.eks.eu-west-1.amazonaws.com/id/X:sub":
                                       "system:serviceaccount:kube-system:aws-load-balancer-controller"}}})},
             "edge-controller")
GOOD_TEMPLATE, IMDSV1_TEMPLATE = template(), R("aws:ec2/launchTemplate:LaunchTemplate", {
    "metadataOptions": {"httpTokens": "optional"}}, "nat-v1")


def group(*templates: R, **inputs) -> R:
    return R("aws:autoscaling/group:Group", {"minSize": 1, "maxSize": 1, **inputs}, "nat-a",
             dependencies=[t.urn for t in templates])


def key(*statements: dict) -> R:
    return R("aws:kms/key:Key", {"enableKeyRotation": True, "policy": doc(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
        *statements)}, "events-key")


CLOUDWATCH_MAY_ENCRYPT = {"Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
                          "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"}


def alarm_to(topic_key: R) -> list[R]:
    topic = R("aws:sns/topic:Topic", {"name": "nat-events", "kmsMasterKeyId": "arn:k"}, "events",
              dependencies=[topic_key.urn])
    return [topic_key, topic, R("aws:cloudwatch/metricAlarm:MetricAlarm", {"alarmActions": ["arn:t"]}, "nat-down",
                                dependencies=[topic.urn])]


@dataclass
class Case:
    rule: str
    failing: list[R]
    passing: list[R]


TABLE = [
    # Judged on 2026-12-05 (tests/conftest.py pins EKS_PLATFORM_TODAY): 1.31 left extended support on 2026-11-26.
    Case("eks-version-creatable", [cluster(version="1.31")], [cluster(version="1.32"), cluster(version="1.35")]),
    Case("eks-version-standard-support", [cluster(version="1.32")], [cluster(version="1.35"), cluster(version="1.31")]),
    Case("eks-coredns-deadlock", [cluster(corednsAddonOptions={"version": "v1.11.4-eksbuild.2", "enabled": True})],
         [cluster()]),
    Case("eks-addons-after-nodes", [NODES, addon("coredns")],
         [NODES, addon("coredns", NODES), addon("vpc-cni"), AFTER_NODES, addon("aws-ebs-csi-driver", AFTER_NODES)]),
    Case("eks-endpoint-not-world", [cluster(endpointPublicAccess=True, publicAccessCidrs=["0.0.0.0/0"])],
         [cluster(endpointPublicAccess=True, publicAccessCidrs=["203.0.113.0/24"]),
          cluster(endpointPublicAccess=True, publicAccessCidrs=["0.0.0.0/0"], tags={WAIVER: "eks-endpoint-not-world"}),
          cluster(endpointPublicAccess=True, publicAccessCidrs=["0.0.0.0/0"],  # as the program sets it
                  clusterTags={WAIVER: "eks-upgrade-policy-standard eks-endpoint-not-world"})]),
    Case("eks-upgrade-policy-standard", [cluster(upgradePolicy=None)], [cluster()]),
    Case("eks-secrets-encrypted", [cluster(encryptionConfigKeyArn=None)], [cluster()]),
    Case("eks-control-plane-logs", [cluster(enabledClusterLogTypes=["api"])], [cluster()]),
    Case("eks-nodegroup-desired-size-ignored", [R(NODES.type, NODES.inputs, "ng")], [NODES]),
    Case("eks-al2-ami-exists", [cluster(version="1.33"), R(NODES.type, {"amiType": "AL2_x86_64"}, "old")],
         [cluster(version="1.32"), R(NODES.type, {"amiType": "AL2_x86_64"}, "old")]),
    Case("eks-access-entry-unique", [entry("a", "arn:aws:iam::1:role/x"), entry("b", "arn:aws:iam::1:role/x")],
         [entry("a", "arn:aws:iam::1:role/x"), entry("b", "arn:aws:iam::1:role/y")]),
    Case("eks-no-entry-for-cluster-creator",
         [cluster(tags={"eks-platform:cluster-creator": "arn:aws:iam::1:role/admin"}),
          entry("admin", "arn:aws:iam::1:role/admin")],
         [cluster(tags={"eks-platform:cluster-creator": "arn:aws:iam::1:role/admin"}),
          entry("ci", "arn:aws:iam::1:role/ci")]),
    Case("eks-network-policy-enforced", [cluster(), network_policy()],
         [cluster(vpcCniOptions={"enableNetworkPolicy": True}), network_policy()]),
    Case("eks-aws-auth-single-owner", [cluster(authenticationMode="API_AND_CONFIG_MAP"), aws_auth()],
         [cluster(authenticationMode="API_AND_CONFIG_MAP"),  # and, in a real preview, pulumi-eks' own ConfigMap:
          R("kubernetes:core/v1:ConfigMap", {"metadata": {"name": "aws-auth", "namespace": "kube-system"}},
            "cluster-nodeAccess", inside=CLUSTER)]),
    Case("eks-access-entries-enabled", [cluster(authenticationMode="CONFIG_MAP")],
         [cluster(authenticationMode="API_AND_CONFIG_MAP")]),
    Case("iam-no-admin-wildcards", [role_policy(doc(allow("iam:*")))], [role_policy(doc(allow("iam:GetRole")))]),
    Case("iam-writes-bounded", [role_policy(doc(allow(["iam:CreateRole", "iam:PutRolePolicy"],
                                                      f"arn:aws:iam::{ACCOUNT}:role/*")))],
         [role_policy(doc(allow(["iam:CreateRole", "iam:PutRolePolicy"], f"arn:aws:iam::{ACCOUNT}:role/eks-platform-dev/*",
                                StringEquals={"iam:PermissionsBoundary": BOUNDARY})))]),
    Case("iam-no-secret-reads-on-star", [role_policy(doc(allow(["ec2:Get*", "lambda:GetFunction"])))],
         [role_policy(doc(allow("secretsmanager:GetSecretValue",
                                f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:eks-platform/dev/api/x")))]),
    Case("iam-federated-trust-pinned", [role("ci", assumeRolePolicy=trust("repo:acme/*", "StringLike"))],
         [role("ci", assumeRolePolicy=trust("repo:acme/eks-platform:environment:infra-dev"))]),
    Case("iam-role-scoped-and-bounded", [role("app")],
         [role("app", path="/eks-platform-dev/", permissionsBoundary=BOUNDARY),
          R("aws:iam/role:Role", {"name": "cluster-eksRole-role"}, "eks-role", inside=CLUSTER)]),
    Case("iam-pull-request-role-read-only", [PR_ROLE, role_policy(doc(allow(["ec2:Describe*", "iam:Get*"])), "previewer")],
         [PR_ROLE, role_policy(doc(allow(["ec2:DescribeRegions", "eks:DescribeAddonVersions"])), "previewer")]),
    Case("iam-grants-within-boundary", [boundary("ec2:*"), BOUNDED, DNS_GRANT],
         [boundary("ec2:*", "route53:ChangeResourceRecordSets"), BOUNDED, DNS_GRANT]),
    Case("edge-controller-policy-upstream",
         [LBC_ROLE, role_policy(json.dumps({**UPSTREAM, "Statement": UPSTREAM["Statement"][1:]}), "edge-controller")],
         [LBC_ROLE, role_policy(json.dumps(UPSTREAM, separators=(",", ":")), "edge-controller")]),
    Case("iam-parliament", [role_policy(doc(allow("s3:GetObject", "arn:aws:s3:::bucket/key"),
                                            allow("ec2:DescribeInstancez")))],
         [role_policy(doc(allow("s3:GetObject", "arn:aws:s3:::bucket/key")))]),
    Case("ecr-immutable-tags", [repository(imageTagMutability="MUTABLE")], [repository()]),
    Case("ecr-scan-on-push", [repository(imageScanningConfiguration=None)], [repository()]),
    Case("ecr-kms-encryption", [repository(encryptionConfigurations=[{"encryptionType": "AES256"}])], [repository()]),
    Case("ecr-lifecycle-policy", [repository()],
         [repository(), R("aws:ecr/lifecyclePolicy:LifecyclePolicy", {"repository": "eks-platform/dev/api",
                                                                      "policy": "{}"}, "lc")]),
    Case("secret-customer-kms-key", [secret(kmsKeyId=None)], [secret()]),
    Case("secret-no-value-in-state", [R("aws:secretsmanager/secretVersion:SecretVersion",
                                        {"secretId": "s", "secretString": "[secret]"}, "v")],
         [R("aws:secretsmanager/secretRotation:SecretRotation", {"secretId": "s"}, "rot")]),
    Case("secret-database-first-value", [secret(), initialize(secret())],
         [secret(), secret("generated", name="eks-platform/dev/api/key"),
          initialize(R("aws:secretsmanager/secret:Secret", {}, "secrets-api-key"))]),
    Case("sg-no-world-ingress", [sg({"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]})],
         [sg({"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]},
             {"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["10.0.0.0/16"]})]),
    Case("ec2-imdsv2-hop-limit-1", [template(metadataOptions={"httpTokens": "optional", "httpPutResponseHopLimit": 2})],
         [template()]),
    Case("asg-launch-template-imdsv2", [IMDSV1_TEMPLATE, group(IMDSV1_TEMPLATE), group(launchConfiguration="lc")],
         [GOOD_TEMPLATE, group(GOOD_TEMPLATE)]),
    Case("ebs-encrypted", [template(blockDeviceMappings=[{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 20}}])],
         [template()]),
    Case("lambda-reserved-concurrency", [function(reservedConcurrentExecutions=None)], [function()]),
    Case("lambda-dead-letter", [function(deadLetterConfig=None)], [function()]),
    Case("lambda-log-group-declared", [function()], [function(), log_group()]),
    Case("kms-key-rotation", [R("aws:kms/key:Key", {"enableKeyRotation": False}, "k")],
         [R("aws:kms/key:Key", {"enableKeyRotation": True}, "k"),
          R("aws:kms/key:Key", {"customerMasterKeySpec": "RSA_2048"}, "signing")]),
    Case("logs-retention", [log_group(retentionInDays=None)], [log_group()]),
    Case("sns-topic-encrypted", [R("aws:sns/topic:Topic", {"name": "t"}, "t")],
         [R("aws:sns/topic:Topic", {"name": "t", "kmsMasterKeyId": "arn:k"}, "t")]),
    Case("sns-alarm-topic-key-usable", alarm_to(key()), alarm_to(key(CLOUDWATCH_MAY_ENCRYPT))),
    Case("s3-bucket-lifecycle", [BUCKET],
         [BUCKET, R("aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2", {"bucket": "x"}, "lc",
                    dependencies=[BUCKET.urn])]),
    Case("k8s-storageclass-encrypted", [storage_class(encrypted="false")], [storage_class()]),
    Case("k8s-storageclass-gp3", [storage_class(type="gp2")], [storage_class()]),
    Case("helm-chart-pinned", [R("kubernetes:helm.sh/v3:Release", {"chart": "x", "version": "~1.2"}, "x")],
         [R("kubernetes:helm.sh/v3:Release", {"chart": "x", "version": "1.2.3"}, "x")]),
]
BY_NAME = {policy.name: policy for policy in POLICIES}


def test_every_rule_has_a_row_and_every_row_a_rule():
    assert sorted(case.rule for case in TABLE) == sorted(BY_NAME)


@pytest.mark.parametrize("case", TABLE, ids=lambda case: case.rule)
def test_rule_catches_its_failing_fixture(case):
    found = evaluate(case.failing, [BY_NAME[case.rule]])
    assert found and {v.policy for v in found} == {case.rule}
    assert all(v.level == BY_NAME[case.rule].enforcement_level.value for v in found)


@pytest.mark.parametrize("case", TABLE, ids=lambda case: case.rule)
def test_rule_passes_its_passing_fixture(case):
    assert evaluate(case.passing, [BY_NAME[case.rule]]) == []
