"""The stack's IAM scope: where its roles live and the boundary every one of them carries.

The pulumi-deployer may create and edit roles only under `/eks-platform-<env>/` and only with the workload
boundary attached, so whatever inline policy it writes is capped by a policy it cannot change. Components
declare roles through `scoped_role_args()` (path + boundary); the Access component sets the scope first,
before any other component is declared (a context variable: each plan/program run has its own).
"""
from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import pulumi

PROJECT = "eks-platform"
# Tag on the managed policies that serve as permissions boundaries: a ceiling, not a grant (the policy pack
# judges grants; parliament still lints boundaries).
PURPOSE_TAG = "eks-platform:purpose"
BOUNDARY = "permissions-boundary"


def role_path(env: str) -> str:
    """Path of the roles the stack (and the deployer in CI) creates and manages."""
    return f"/{PROJECT}-{env}/"


def ci_path(env: str) -> str:
    """Path of the CI roles and both boundaries: managed by an administrator's `up`, out of the deployer's reach."""
    return f"/{PROJECT}-{env}-ci/"


@dataclass(frozen=True)
class RoleScope:
    path: str
    boundary_arn: pulumi.Input[str]


_SCOPE: ContextVar[RoleScope | None] = ContextVar("eks_platform_role_scope", default=None)


def set_scope(scope: RoleScope) -> None:
    _SCOPE.set(scope)


def scoped_role_args() -> dict[str, Any]:
    """`path` and `permissions_boundary` for an aws.iam.Role of this stack ({} before the scope exists)."""
    scope = _SCOPE.get()
    return {"path": scope.path, "permissions_boundary": scope.boundary_arn} if scope else {}


def scoped_profile_args() -> dict[str, Any]:
    """`path` for an aws.iam.InstanceProfile of this stack."""
    scope = _SCOPE.get()
    return {"path": scope.path} if scope else {}


# What any role of the stack may ever do (the workload boundary): the union of what nodes, add-ons (EBS CSI,
# autoscaler, log shipper, CloudWatch exporter), the NAT instances and Lambdas, and service readers need.
# No IAM, no Organizations, no STS beyond what IRSA uses; secrets only under the stack's own prefix.
WORKLOAD_SERVICES = ["ec2:*", "elasticloadbalancing:*", "autoscaling:*", "eks:Describe*", "eks:List*",
                     "eks-auth:AssumeRoleForPodIdentity", "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                     "ecr:GetDownloadUrlForLayer", "ecr:DescribeImages", "ecr:DescribeRepositories",
                     "ssm:GetParameter", "ssm:GetParameters", "ssm:UpdateInstanceInformation", "ssm:ListInstanceAssociations", "ssm:DescribeInstanceProperties",
                     "ssm:DescribeDocumentParameters", "ssm:ListAssociations", "ssm:GetDocument",
                     "ssm:PutInventory", "ssm:PutComplianceItems", "ssm:UpdateInstanceAssociationStatus",
                     "ssm:UpdateAssociationStatus", "ssm:GetManifest", "ssm:GetDeployablePatchSnapshotForInstance",
                     "ssmmessages:*", "ec2messages:*", "logs:*", "cloudwatch:*", "sns:Publish",
                     "lambda:InvokeFunction", "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*",
                     "kms:ReEncrypt*", "kms:DescribeKey", "kms:CreateGrant", "tag:GetResources"]
# What the traffic edge's controllers call beyond that (the AWS Load Balancer Controller's upstream policy:
# certificates, WAF, Shield, Cognito; ExternalDNS finding its zone). Record changes: only in the stack's zone.
EDGE_SERVICES = ["acm:DescribeCertificate", "acm:ListCertificates", "cognito-idp:DescribeUserPoolClient",
                 "wafv2:GetWebACL", "wafv2:GetWebACLForResource", "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL",
                 "waf-regional:GetWebACL", "waf-regional:GetWebACLForResource", "waf-regional:AssociateWebACL",
                 "waf-regional:DisassociateWebACL", "shield:GetSubscriptionState", "shield:DescribeProtection",
                 "shield:CreateProtection", "shield:DeleteProtection", "route53:ListHostedZones"]
ZONE_WRITES = ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets", "route53:ListTagsForResources"]


def zone_arn(zone_id: str) -> str:
    return f"arn:aws:route53:::hostedzone/{zone_id}"


def workload_boundary(env: str, region: str, account: str, zone_id: str | None = None) -> str:
    """The ceiling of every role the stack creates (and the deployer may create); `zone_id`: the edge's zone."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Workloads", "Effect": "Allow", "Action": WORKLOAD_SERVICES + EDGE_SERVICES, "Resource": "*"},
        *([{"Sid": "StackZone", "Effect": "Allow", "Action": ZONE_WRITES, "Resource": zone_arn(zone_id)}]
          if zone_id else []),
        {"Sid": "OwnSecrets", "Effect": "Allow", "Resource": f"arn:aws:secretsmanager:{region}:{account}:secret:"
                                                             f"{PROJECT}/{env}/*",
         "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue",
                    "secretsmanager:UpdateSecretVersionStage"]},
        {"Sid": "LoadBalancerServiceLinkedRole", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
         "Resource": "*", "Condition": {"StringEquals": {"iam:AWSServiceName": [
             "elasticloadbalancing.amazonaws.com", "autoscaling.amazonaws.com"]}}},
    ]})


# AWS-managed policies the program attaches (node roles, EBS CSI, VPC Lambdas, pulumi-eks' cluster role): the only
# ones the deployer may attach, to any role.
ATTACHABLE = ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly",
              "AmazonSSMManagedInstanceCore", "service-role/AmazonEBSCSIDriverPolicy",
              "service-role/AWSLambdaVPCAccessExecutionRole", "service-role/AWSLambdaBasicExecutionRole",
              "AmazonEKSClusterPolicy", "AmazonEKSServicePolicy", "AmazonEKSVPCResourceController"]
# pulumi-eks creates the cluster's service role itself as `<component name>-eksRole-role-<random>` with no path
# and no boundary (nodejs/eks/servicerole.ts): the deployer may create it and attach allow-listed policies only.
PULUMI_EKS_ROLE = "cluster-eksRole-role-*"
# The service-linked roles an EKS platform's first `up` may need.
SERVICE_LINKED = ["eks.amazonaws.com", "eks-nodegroup.amazonaws.com", "autoscaling.amazonaws.com",
                  "elasticloadbalancing.amazonaws.com", "spot.amazonaws.com"]
ROLE_WRITES = ["iam:CreateRole", "iam:DeleteRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy",
               "iam:DetachRolePolicy", "iam:UpdateRole", "iam:UpdateRoleDescription", "iam:UpdateAssumeRolePolicy",
               "iam:PutRolePermissionsBoundary", "iam:TagRole", "iam:UntagRole", "iam:PassRole"]
PROFILE_WRITES = ["iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:AddRoleToInstanceProfile",
                  "iam:RemoveRoleFromInstanceProfile", "iam:TagInstanceProfile", "iam:UntagInstanceProfile"]
OIDC_WRITES = ["iam:CreateOpenIDConnectProvider", "iam:DeleteOpenIDConnectProvider", "iam:TagOpenIDConnectProvider",
               "iam:UntagOpenIDConnectProvider", "iam:UpdateOpenIDConnectProviderThumbprint",
               "iam:AddClientIDToOpenIDConnectProvider"]
IAM_READS = ["iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
             "iam:ListRoleTags", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions", "iam:ListPolicyTags",
             "iam:GetOpenIDConnectProvider", "iam:ListOpenIDConnectProviderTags", "iam:GetInstanceProfile",
             "iam:ListInstanceProfilesForRole", "iam:ListInstanceProfileTags"]


@dataclass(frozen=True)
class Stack:
    """What names a stack's resources, so every grant can say `this stack's` instead of `*`."""

    env: str
    region: str
    account: str
    cluster: str
    zone: str | None = None  # the edge's Route 53 hosted zone ID, when the stack has an edge

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"

    def iam(self, resource: str) -> str:
        return f"arn:aws:iam::{self.account}:{resource}"

    @property
    def functions(self) -> list[str]:
        return [self.arn("lambda", f"function:{PROJECT}-{self.env}-*"), self.arn("lambda", f"function:{self.cluster}-*")]

    @property
    def boundaries(self) -> list[str]:
        return [self.iam(f"policy{ci_path(self.env)}*")]


def _allow(sid: str, actions: list[str], resources: list[str] | str, **conditions: dict) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if conditions:
        statement["Condition"] = conditions
    return statement


def _tagged(stack: Stack, key: str = "aws:ResourceTag/environment") -> dict[str, dict[str, str]]:
    return {"StringEquals": {key: stack.env}}


def deployer_policy(stack: Stack, workload_boundary_arn: str) -> str:
    """What `pulumi up` of this program needs, on this stack's resources wherever AWS can scope it.

    IAM: roles only under the stack path, created and given inline policies only with the workload boundary,
    managed policies only from ATTACHABLE; no policy creation, no access to the CI roles or the boundaries.
    No read of a secret value, user data, function code/environment or KMS plaintext on `*`.
    """
    s = stack
    roles, profiles = s.iam(f"role{role_path(s.env)}*"), s.iam(f"instance-profile{role_path(s.env)}*")
    eks_role = s.iam(f"role/{PULUMI_EKS_ROLE}")
    cluster = [s.arn("eks", f"cluster/{s.cluster}"), *(s.arn("eks", f"{kind}/{s.cluster}/*") for kind in (
        "nodegroup", "addon", "access-entry", "identityproviderconfig", "podidentityassociation"))]
    log_groups = [s.arn("logs", f"log-group:{prefix}*") for prefix in (
        f"/aws/eks/{s.cluster}/", f"/aws/lambda/{PROJECT}-{s.env}-", f"/aws/lambda/{s.cluster}-", f"/eks/{s.cluster}/")]
    statements = [
        _allow("Ec2", ["ec2:Describe*", "ec2:Create*", "ec2:Delete*", "ec2:Modify*", "ec2:Associate*",
                       "ec2:Disassociate*", "ec2:Attach*", "ec2:Detach*", "ec2:Allocate*", "ec2:Release*",
                       "ec2:Replace*", "ec2:Authorize*", "ec2:Revoke*", "ec2:RunInstances", "ec2:TerminateInstances",
                       "ec2:StartInstances", "ec2:StopInstances"], "*"),
        _allow("AmiParameters", ["ssm:GetParameter", "ssm:GetParameters"],
               f"arn:aws:ssm:{s.region}:*:parameter/aws/service/*"),  # public AMI parameters (no account)
        _allow("EksRead", ["eks:Describe*", "eks:List*"], "*"),
        _allow("EksCreate", ["eks:CreateCluster"], "*"),  # authorizes on `*` (service authorization reference)
        _allow("EksCluster", ["eks:DeleteCluster", "eks:UpdateClusterConfig",
                              "eks:UpdateClusterVersion", "eks:CreateNodegroup", "eks:DeleteNodegroup",
                              "eks:UpdateNodegroupConfig", "eks:UpdateNodegroupVersion", "eks:CreateAddon",
                              "eks:DeleteAddon", "eks:UpdateAddon", "eks:CreateAccessEntry", "eks:DeleteAccessEntry",
                              "eks:UpdateAccessEntry", "eks:AssociateAccessPolicy", "eks:DisassociateAccessPolicy",
                              "eks:AssociateEncryptionConfig", "eks:TagResource", "eks:UntagResource"], cluster),
        _allow("KmsCreate", ["kms:CreateKey", "kms:TagResource"], "*",
               StringEquals={"aws:RequestTag/environment": s.env}),
        _allow("KmsList", ["kms:ListAliases", "kms:ListKeys"], "*"),
        _allow("KmsOwnKeys", ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags",
                              "kms:EnableKeyRotation", "kms:ScheduleKeyDeletion", "kms:PutKeyPolicy", "kms:CreateGrant",
                              "kms:UpdateKeyDescription", "kms:TagResource", "kms:UntagResource",
                              "kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
               s.arn("kms", "key/*"), **_tagged(s)),
        _allow("KmsOwnAliases", ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
               [s.arn("kms", f"alias/{PROJECT}-{s.env}-*"), s.arn("kms", f"alias/{s.cluster}-*")]),
        _allow("LogsRead", ["logs:DescribeLogGroups"], "*"),
        _allow("LogsOwn", ["logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy",
                           "logs:DeleteRetentionPolicy", "logs:TagResource", "logs:UntagResource", "logs:TagLogGroup",
                           "logs:ListTagsForResource", "logs:ListTagsLogGroup"], log_groups),
        _allow("SecretsList", ["secretsmanager:ListSecrets"], "*"),
        _allow("SecretsOwn", ["secretsmanager:CreateSecret", "secretsmanager:DeleteSecret", "secretsmanager:UpdateSecret",
                              "secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy",
                              "secretsmanager:PutResourcePolicy", "secretsmanager:DeleteResourcePolicy",
                              "secretsmanager:TagResource", "secretsmanager:UntagResource",
                              "secretsmanager:RotateSecret", "secretsmanager:CancelRotateSecret"],
               s.arn("secretsmanager", f"secret:{PROJECT}/{s.env}/*")),
        _allow("LambdaList", ["lambda:ListFunctions"], "*"),
        _allow("LambdaOwn", ["lambda:CreateFunction", "lambda:DeleteFunction", "lambda:GetFunction",
                             "lambda:GetFunctionConfiguration", "lambda:UpdateFunctionCode",
                             "lambda:UpdateFunctionConfiguration", "lambda:GetFunctionCodeSigningConfig",
                             "lambda:ListVersionsByFunction", "lambda:GetPolicy", "lambda:AddPermission",
                             "lambda:RemovePermission", "lambda:InvokeFunction", "lambda:PutFunctionConcurrency",
                             "lambda:DeleteFunctionConcurrency", "lambda:GetFunctionConcurrency",
                             "lambda:PutFunctionEventInvokeConfig", "lambda:GetFunctionEventInvokeConfig",
                             "lambda:DeleteFunctionEventInvokeConfig", "lambda:ListTags", "lambda:TagResource",
                             "lambda:UntagResource"], s.functions),
        # Subscriptions authorize on `*` (their ARNs are not a resource type IAM knows).
        _allow("Sns", ["sns:ListTopics", "sns:ListSubscriptions", "sns:Unsubscribe", "sns:GetSubscriptionAttributes",
                       "sns:SetSubscriptionAttributes"], "*"),
        _allow("SnsOwn", ["sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes",
                          "sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:TagResource", "sns:UntagResource",
                          "sns:ListTagsForResource"], s.arn("sns", f"{s.cluster}-*")),
        _allow("AlarmsRead", ["cloudwatch:DescribeAlarms"], "*"),
        _allow("AlarmsOwn", ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource",
                             "cloudwatch:UntagResource", "cloudwatch:ListTagsForResource"],
               s.arn("cloudwatch", f"alarm:{s.cluster}-*")),
        _allow("EventsRead", ["events:ListRules"], "*"),
        _allow("EventsOwn", ["events:PutRule", "events:DeleteRule", "events:DescribeRule", "events:PutTargets",
                             "events:RemoveTargets", "events:ListTargetsByRule", "events:EnableRule",
                             "events:DisableRule", "events:TagResource", "events:UntagResource",
                             "events:ListTagsForResource"], s.arn("events", f"rule/{s.cluster}-*")),
        _allow("AsgRead", ["autoscaling:Describe*"], "*"),
        _allow("AsgTagsOwnCluster", ["autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"], "*",
               StringEquals={"aws:ResourceTag/eks:cluster-name": s.cluster}),
        # The NAT instances' groups (one per NAT AZ, named <cluster>-nat-<az>-<suffix>) and their launch hook.
        _allow("NatGroups", ["autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup",
                             "autoscaling:DeleteAutoScalingGroup", "autoscaling:PutLifecycleHook",
                             "autoscaling:DeleteLifecycleHook", "autoscaling:CreateOrUpdateTags",
                             "autoscaling:DeleteTags"],
               s.arn("autoscaling", f"autoScalingGroup:*:autoScalingGroupName/{s.cluster}-nat-*")),
        # The edge's certificate: ACM names certificates by a random ID, so the stack's are the ones it tagged.
        _allow("CertificateRequest", ["acm:RequestCertificate", "acm:AddTagsToCertificate"], "*",
               StringEquals={"aws:RequestTag/environment": s.env}),
        _allow("CertificatesRead", ["acm:ListCertificates"], "*"),
        _allow("CertificatesOwn", ["acm:DescribeCertificate", "acm:ListTagsForCertificate", "acm:AddTagsToCertificate",
                                   "acm:RemoveTagsFromCertificate", "acm:UpdateCertificateOptions",
                                   "acm:DeleteCertificate"], s.arn("acm", "certificate/*"), **_tagged(s)),
        *([_allow("ZoneRecords", ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets",
                                  "route53:GetHostedZone", "route53:ListTagsForResource"], zone_arn(s.zone)),
           _allow("ZoneChanges", ["route53:GetChange"], "arn:aws:route53:::change/*")] if s.zone else []),
        _allow("EcrRead", ["ecr:DescribeRepositories"], "*"),
        _allow("EcrOwn", ["ecr:CreateRepository", "ecr:DeleteRepository", "ecr:PutImageTagMutability",
                          "ecr:PutImageScanningConfiguration", "ecr:PutLifecyclePolicy", "ecr:GetLifecyclePolicy",
                          "ecr:DeleteLifecyclePolicy", "ecr:GetRepositoryPolicy", "ecr:TagResource",
                          "ecr:UntagResource", "ecr:ListTagsForResource"],
               s.arn("ecr", f"repository/{PROJECT}/{s.env}/*")),
        _allow("IamRead", IAM_READS, "*"),
        _allow("StackRoles", ["iam:DeleteRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:UpdateRole",
                              "iam:UpdateRoleDescription", "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole"],
               roles),
        _allow("StackRolesBounded", ["iam:CreateRole", "iam:PutRolePolicy", "iam:PutRolePermissionsBoundary"], roles,
               StringEquals={"iam:PermissionsBoundary": workload_boundary_arn}),
        _allow("AttachAllowListed", ["iam:AttachRolePolicy"], [roles, eks_role],
               ArnEquals={"iam:PolicyARN": [f"arn:aws:iam::aws:policy/{name}" for name in ATTACHABLE]}),
        _allow("PulumiEksServiceRole", ["iam:CreateRole", "iam:TagRole"], eks_role),
        _allow("PassStackRoles", ["iam:PassRole"], [roles, eks_role],
               StringEquals={"iam:PassedToService": ["eks.amazonaws.com", "ec2.amazonaws.com", "lambda.amazonaws.com"]}),
        _allow("StackInstanceProfiles", PROFILE_WRITES, profiles),
        _allow("ClusterOidcProvider", OIDC_WRITES, s.iam(f"oidc-provider/oidc.eks.{s.region}.amazonaws.com/id/*")),
        _allow("ServiceLinkedRoles", ["iam:CreateServiceLinkedRole"], "*",
               StringEquals={"iam:AWSServiceName": SERVICE_LINKED}),
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


# What `pulumi preview` (no --refresh) calls in AWS for this program: provider start-up and the data sources
# it reads. Resources are diffed against state, not read. Add a call here only with the log line that shows it.
PREVIEW_READS = ["ec2:DescribeRegions", "ec2:DescribeAvailabilityZones", "eks:DescribeAddonVersions",
                 "eks:DescribeClusterVersions"]


def previewer_policy(stack: Stack) -> str:
    """Read-only, by explicit name: never Get* on *, never a secret value, user data, function code or plaintext."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        _allow("PreviewReads", PREVIEW_READS, "*"),
        _allow("OwnCluster", ["eks:DescribeCluster"], stack.arn("eks", f"cluster/{stack.cluster}")),
    ]})


def ci_boundary(stack: Stack) -> str:
    """Ceiling of the CI roles (deployer, previewer, service deployer): their grants can only shrink inside it, and
    nothing in it reaches the CI roles themselves, the boundaries, or a secret value."""
    s = stack
    ci = [s.iam(f"role{ci_path(s.env)}*"), *s.boundaries]
    return json.dumps({"Version": "2012-10-17", "Statement": [
        _allow("Services", ["ec2:*", "eks:*", "ecr:*", "kms:*", "logs:*", "secretsmanager:*", "lambda:*", "sns:*",
                            "cloudwatch:*", "events:*", "autoscaling:*", "acm:*", "route53:Get*", "route53:List*",
                            "route53:ChangeResourceRecordSets", "ssm:GetParameter", "ssm:GetParameters",
                            "iam:Get*", "iam:List*", "iam:CreateServiceLinkedRole"], "*"),
        _allow("StackRoles", ROLE_WRITES, [s.iam(f"role{role_path(s.env)}*"), s.iam(f"role/{PULUMI_EKS_ROLE}")]),
        _allow("StackInstanceProfiles", PROFILE_WRITES, s.iam(f"instance-profile{role_path(s.env)}*")),
        _allow("ClusterOidcProvider", OIDC_WRITES, s.iam(f"oidc-provider/oidc.eks.{s.region}.amazonaws.com/id/*")),
        {"Sid": "NoSecretValues", "Effect": "Deny", "Resource": "*",
         "Action": ["secretsmanager:GetSecretValue", "ec2:GetPasswordData", "kms:Decrypt"]},
        {"Sid": "NotTheCiRolesOrBoundaries", "Effect": "Deny", "Resource": ci,
         "Action": ["iam:Create*", "iam:Delete*", "iam:Put*", "iam:Attach*", "iam:Detach*", "iam:Update*",
                    "iam:Tag*", "iam:Untag*", "iam:SetDefaultPolicyVersion", "iam:PassRole"]},
    ]})
