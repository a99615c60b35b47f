"""Service secrets end to end: Secrets Manager + a customer-managed KMS key, rotation, delivery to pods.

No value ever passes through config or Pulumi state: `generated` secrets get their first value from the
rotation Lambda (an `initialize` invocation inside AWS); `database` and `external` ones start empty and get
the real credential from a person with `invoke secrets.set` (stdin) - the hand-off. A database login is
rotated only once its config says `handed_over: true`: a generated password the database never had could
not log in, and Secrets Manager tests the rotation function the moment a schedule is set. Pods get values through the External Secrets Operator: one namespaced
SecretStore per service that authenticates as that service's own service account (IRSA), so a service
can read its own secrets and nothing else, and no value is ever written into a manifest.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.cluster import irsa_trust_policy
from infra.components.iam import scoped_role_args
from infra.config import SecretSpec, StackConfig, app_namespace, secret_name
from infra.lambdas import secret_rotation

ESO_REPOSITORY = "https://charts.external-secrets.io"
ESO_NAMESPACE = "external-secrets"
ESO_API = "external-secrets.io/v1"
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
# pg8000 and what it imports, bundled next to the handler (pure Python, so the venv's copy runs on Lambda).
VENDORED = ("pg8000", "scramp", "asn1crypto", "dateutil", "six")
ROTATION_CONCURRENCY = 2


def rotation_code() -> pulumi.AssetArchive:
    assets: dict[str, Any] = {"secret_rotation.py": pulumi.FileAsset(secret_rotation.__file__)}
    for module in VENDORED:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{module} is not installed; run `pip install -r requirements.txt` before planning")
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            assets[module] = pulumi.FileArchive(str(origin.parent))
        else:
            assets[origin.name] = pulumi.FileAsset(str(origin))
    return pulumi.AssetArchive(assets)


def secret_tags(spec: SecretSpec, service: str, tags: dict[str, str]) -> dict[str, str]:
    """What the rotation Lambda needs to know about a secret; never a value."""
    out = {**tags, "service": service, secret_rotation.TAG_KIND: spec.kind,
           secret_rotation.TAG_LENGTH: str(spec.length)}
    if spec.database:
        db = spec.database
        out.update({secret_rotation.DB_TAGS["host"]: db.host, secret_rotation.DB_TAGS["port"]: str(db.port),
                    secret_rotation.DB_TAGS["dbname"]: db.dbname, secret_rotation.DB_TAGS["username"]: db.username,
                    secret_rotation.DB_TAGS["engine"]: db.engine, secret_rotation.DB_TAGS["tls"]: db.tls})
    return out


def database_ports(cfg: StackConfig) -> dict[str, list[int]]:
    """service -> the database ports its secrets point at: what its pods (and the rotation Lambda) must reach."""
    ports: dict[str, list[int]] = {}
    for service, _, spec in cfg.secrets.entries():
        if spec.database and spec.database.port not in ports.setdefault(service, []):
            ports[service].append(spec.database.port)
    return {service: sorted(found) for service, found in ports.items() if found}


def rotates(spec: SecretSpec, cfg: StackConfig) -> bool:
    """Whether a rotation schedule is declared: rotation on, a period set, and a database login handed over."""
    return bool(cfg.secrets.rotation and spec.rotation_days and (not spec.database or spec.database.handed_over))


def reader_policy(secret_arns: list[str], key_arn: str, region: str) -> str:
    """Read this service's secrets (exact ARNs) and decrypt them only through Secrets Manager."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadOwnSecrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue",
                                                                  "secretsmanager:DescribeSecret"],
         "Resource": sorted(secret_arns)},
        {"Sid": "DecryptViaSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}}},
    ]})


def rotation_policy(secret_arns: list[str], key_arn: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "RotateGeneratedSecrets", "Effect": "Allow", "Action": [
            "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue",
            "secretsmanager:UpdateSecretVersionStage"], "Resource": sorted(secret_arns)},
        {"Sid": "UseSecretsKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
         "Resource": key_arn},
    ]})


@dataclass(frozen=True)
class SecretsArgs:
    config: StackConfig
    k8s_provider: k8s.Provider
    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    tags: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class Secrets(pulumi.ComponentResource):
    """`arns[service][key]` = secret ARN; `reader_role_arns[service]` = that service's IRSA role."""

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("eks-platform:secrets:Secrets", name, None, opts)
        cfg = args.config
        self._child = pulumi.ResourceOptions(parent=self)
        self.namespace = app_namespace(cfg.env)
        self.key = aws.kms.Key(f"{name}-key", description=f"Service secrets of eks-platform {cfg.env}",
                               enable_key_rotation=True, deletion_window_in_days=30, tags=args.tags,
                               opts=self._child)
        aws.kms.Alias(f"{name}-key", name=f"alias/eks-platform-{cfg.env}-service-secrets",
                      target_key_id=self.key.key_id, opts=self._child)
        self.secrets: dict[str, dict[str, aws.secretsmanager.Secret]] = {}
        for service, key, spec in cfg.secrets.entries():
            self.secrets.setdefault(service, {})[key] = aws.secretsmanager.Secret(
                f"{name}-{service}-{key}", name=secret_name(cfg.env, service, key), description=spec.description,
                kms_key_id=self.key.arn, recovery_window_in_days=cfg.secrets.recovery_window_days,
                tags=secret_tags(spec, service, args.tags), opts=self._child)
        self.arns = {service: {key: secret.arn for key, secret in secrets.items()}
                     for service, secrets in self.secrets.items()}
        self.rotation_function = self._generators(name, args)
        self.reader_role_arns = {service: self._reader(name, args, service) for service in self.secrets}
        if self.secrets:
            self._delivery(name, args)
        self._database_egress(name, args)
        self.register_outputs({"arns": self.arns, "readerRoleArns": self.reader_role_arns})

    def _generators(self, name: str, args: SecretsArgs) -> aws.lambda_.Function | None:
        """The rotation Lambda, its first-value `initialize` run per secret, and rotation schedules."""
        cfg = args.config
        made = [(service, key, spec) for service, key, spec in cfg.secrets.entries() if spec.kind != "external"]
        if not made:
            return None
        arns = [self.secrets[service][key].arn for service, key, _ in made]
        role = aws.iam.Role(f"{name}-rotation", tags=args.tags, opts=self._child, **scoped_role_args(),
                            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                "Action": "sts:AssumeRole"}]}))
        aws.iam.RolePolicyAttachment(f"{name}-rotation-vpc", role=role.name, opts=self._child,
                                     policy_arn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
        policy = aws.iam.RolePolicy(f"{name}-rotation", role=role.name, opts=self._child,
                                    policy=pulumi.Output.all(self.key.arn, *arns).apply(
                                        lambda values: rotation_policy(values[1:], values[0])))
        function_name = f"eks-platform-{cfg.env}-secret-rotation"
        logs = aws.cloudwatch.LogGroup(f"{name}-rotation", name=f"/aws/lambda/{function_name}",
                                       retention_in_days=cfg.cluster.log_retention_days, tags=args.tags,
                                       opts=self._child)
        # In the VPC so it can reach databases (the ports their secrets name, inside the VPC); Secrets Manager
        # through the NAT (or a VPC endpoint).
        db_ports = sorted({port for ports in database_ports(cfg).values() for port in ports})
        group = aws.ec2.SecurityGroup(
            f"{name}-rotation", vpc_id=args.vpc_id, description="secret rotation Lambda",
            egress=[aws.ec2.SecurityGroupEgressArgs(protocol="tcp", from_port=443, to_port=443,
                                                    cidr_blocks=["0.0.0.0/0"], description="Secrets Manager API"),
                    *(aws.ec2.SecurityGroupEgressArgs(protocol="tcp", from_port=port, to_port=port,
                                                      cidr_blocks=[str(cfg.network.cidr)], description="databases")
                      for port in db_ports)],
            tags=args.tags, opts=self._child)
        function = aws.lambda_.Function(
            f"{name}-rotation", name=function_name, runtime="python3.12", handler="secret_rotation.handler",
            code=rotation_code(), role=role.arn, timeout=60, memory_size=256, tags=args.tags,
            # Rotations are rare and serial per secret: a small reserved pool keeps them from being throttled
            # by the account and keeps a runaway schedule from starving everything else.
            reserved_concurrent_executions=ROTATION_CONCURRENCY,
            vpc_config=aws.lambda_.FunctionVpcConfigArgs(subnet_ids=args.private_subnet_ids,
                                                         security_group_ids=[group.id]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs, policy]))
        # Only this account's Secrets Manager may invoke it (confused deputy: any account's could, otherwise).
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        permission = aws.lambda_.Permission(f"{name}-rotation", action="lambda:InvokeFunction",
                                            function=function.name, principal="secretsmanager.amazonaws.com",
                                            source_account=account, opts=self._child)
        # The function runs in the private subnets and calls Secrets Manager through the NAT: anything that runs
        # it during `up` (the first-value invocation, the test Secrets Manager runs when a schedule is set) waits
        # for what args.depends_on brings (node groups, which wait for the NAT routes).
        reachable = [*args.depends_on, function, policy]
        for service, key, spec in made:
            secret = self.secrets[service][key]
            after: list[pulumi.Resource] = [permission, *reachable]
            if spec.kind == "generated":  # a database login's first value is the real one, set by a person
                after.append(aws.lambda_.Invocation(
                    f"{name}-{service}-{key}-initialize", function_name=function.name,
                    input=secret.arn.apply(lambda arn: json.dumps({"Step": "initialize", "SecretId": arn})),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=reachable)))
            if rotates(spec, cfg):
                aws.secretsmanager.SecretRotation(
                    f"{name}-{service}-{key}", secret_id=secret.id, rotation_lambda_arn=function.arn,
                    rotation_rules=aws.secretsmanager.SecretRotationRotationRulesArgs(
                        automatically_after_days=spec.rotation_days),
                    rotate_immediately=False, opts=pulumi.ResourceOptions(parent=self, depends_on=after))
        return function

    def _reader(self, name: str, args: SecretsArgs, service: str) -> pulumi.Output[str]:
        subject = f"system:serviceaccount:{self.namespace}:{service}"
        role = aws.iam.Role(f"{name}-{service}-reader", tags={**args.tags, "service": service}, opts=self._child,
                            **scoped_role_args(),
                            assume_role_policy=irsa_trust_policy(args.oidc_provider_arn, args.oidc_provider_url,
                                                                 subject))
        arns = [secret.arn for secret in self.secrets[service].values()]
        aws.iam.RolePolicy(f"{name}-{service}-reader", role=role.name, opts=self._child,
                           policy=pulumi.Output.all(self.key.arn, *arns).apply(
                               lambda values: reader_policy(values[1:], values[0], args.config.region)))
        return role.arn

    def _delivery(self, name: str, args: SecretsArgs) -> None:
        """External Secrets Operator, then per service: IRSA service account, SecretStore, ExternalSecret."""
        cfg = args.config
        opts = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=args.depends_on)
        eso = k8s.helm.v3.Release(
            f"{name}-eso", name="external-secrets", chart="external-secrets", version=cfg.secrets.eso_chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=ESO_REPOSITORY), namespace=ESO_NAMESPACE,
            create_namespace=True, atomic=True, timeout=600, values={"installCRDs": True}, opts=opts)
        after_eso = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[eso]))
        for service, secrets in self.secrets.items():
            # Server-side apply shares the object with the service's own manifest; Pulumi owns only this annotation.
            k8s.core.v1.ServiceAccount(
                f"{name}-{service}", metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=service, namespace=self.namespace,
                    annotations={IRSA_ANNOTATION: self.reader_role_arns[service], "pulumi.com/patchForce": "true"}),
                opts=opts)
            store = f"{service}-aws"
            k8s.apiextensions.CustomResource(
                f"{name}-{service}-store", api_version=ESO_API, kind="SecretStore",
                metadata={"name": store, "namespace": self.namespace},
                spec={"provider": {"aws": {"service": "SecretsManager", "region": cfg.region,
                                           "auth": {"jwt": {"serviceAccountRef": {"name": service}}}}}},
                opts=after_eso)
            k8s.apiextensions.CustomResource(
                f"{name}-{service}-external", api_version=ESO_API, kind="ExternalSecret",
                metadata={"name": f"{service}-secrets", "namespace": self.namespace},
                spec={"refreshInterval": cfg.secrets.refresh_interval,
                      "secretStoreRef": {"name": store, "kind": "SecretStore"},
                      "target": {"name": f"{service}-secrets", "creationPolicy": "Owner"},
                      "data": [{"secretKey": key, "remoteRef": {"key": secret_name(cfg.env, service, key)}}
                               for key in secrets]},
                opts=after_eso)

    def _database_egress(self, name: str, args: SecretsArgs) -> None:
        """Per service whose secrets name a database: egress from its pods to those ports inside the VPC.

        The services' own NetworkPolicies (infra/k8s/base) allow DNS and HTTPS only; the database endpoint a
        secret points at is config, so the way to it is declared from config too (policies add up).
        """
        cfg = args.config
        opts = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=args.depends_on)
        for service, ports in database_ports(cfg).items():
            # pulumi-kubernetes' *ArgsDict stubs want snake_case keys; camelCase works as-is (pulumi/pulumi#16646)
            k8s.networking.v1.NetworkPolicy(  # type: ignore[call-overload]
                f"{name}-{service}-database-egress",
                metadata={"name": f"{service}-database-egress", "namespace": self.namespace,
                          "labels": {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": service}},
                spec={"podSelector": {"matchLabels": {"app.kubernetes.io/name": service}}, "policyTypes": ["Egress"],
                      "egress": [{"to": [{"ipBlock": {"cidr": str(cfg.network.cidr)}}],
                                  "ports": [{"protocol": "TCP", "port": port} for port in ports]}]},
                opts=opts)
