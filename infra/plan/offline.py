"""Offline plan: run the real Pulumi program under Pulumi's mock runtime and record what it declares.

This is a plan of the program's declarations (types, names, inputs), not a diff against the cloud;
`pulumi preview` does that where the CLI and credentials exist. It needs neither, so it runs in CI
and on a fresh laptop, and it exercises exactly the code `pulumi up` runs.
"""
from __future__ import annotations

import contextvars
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.config import PROJECT, StackConfig, from_mapping, read_stack_file

ACCOUNT = "123456789012"
SECRET = "[secret]"
# ARNs shaped as AWS shapes them for these types (service authorization reference, resource types), so the
# policy pack's ARN checks (parliament's RESOURCE_MISMATCH) judge what a real `up` would produce.
ARN_FORMATS = {
    "aws:kms/key:Key": "arn:aws:kms:{region}:{account}:key/{uuid}",
    "aws:secretsmanager/secret:Secret": "arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}",
    "aws:cloudwatch/logGroup:LogGroup": "arn:aws:logs:{region}:{account}:log-group:{name}",
    "aws:lambda/function:Function": "arn:aws:lambda:{region}:{account}:function:{name}",
    "aws:ecr/repository:Repository": "arn:aws:ecr:{region}:{account}:repository/{name}",
    "aws:iam/policy:Policy": "arn:aws:iam::{account}:policy{path}{name}",
}


@dataclass
class PlannedResource:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    protect: bool
    inputs: dict[str, Any]
    # Resource options the mocks accept silently but a real `up` acts on; policies and tests read them here.
    dependencies: list[str] = field(default_factory=list)  # URNs this resource waits for (depends_on + inputs)
    ignore_changes: list[str] = field(default_factory=list)

    @property
    def is_component(self) -> bool:
        return not self.custom and self.type.startswith(f"{PROJECT}:")


@dataclass
class Plan:
    env: str
    resources: list[PlannedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for resource in self.resources:
            if not resource.is_component:
                counts[resource.type] = counts.get(resource.type, 0) + 1
        return dict(sorted(counts.items()))

    def of_type(self, type_: str) -> list[PlannedResource]:
        return [resource for resource in self.resources if resource.type == type_]

    def waits_for(self, resource: PlannedResource) -> list[PlannedResource]:
        """Every resource `resource` waits for, directly or through others (depends_on and input dependencies)."""
        by_urn = {r.urn: r for r in self.resources}
        seen: dict[str, PlannedResource] = {}
        todo = list(resource.dependencies)
        while todo:
            urn = todo.pop()
            if urn in seen or urn not in by_urn:
                continue
            seen[urn] = by_urn[urn]
            todo += by_urn[urn].dependencies
        return list(seen.values())

    def to_json(self) -> dict[str, Any]:
        return {"env": self.env, "resources": [asdict(resource) for resource in self.resources],
                "outputs": self.outputs, "counts": self.counts()}


class PlanMocks(pulumi.runtime.Mocks):
    """Returns the computed outputs real providers would (ids, ARNs, kubeconfig) so dependent inputs resolve."""

    def __init__(self, region: str):
        self.region = region

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        digest = hashlib.sha1(f"{args.typ}/{args.name}".encode()).hexdigest()[:12]
        service = args.typ.split(":")[1].split("/")[0] if ":" in args.typ else "mock"
        resource_id = f"{args.name}-{digest}"
        physical = args.inputs.get("name") or args.name
        if args.typ in ARN_FORMATS:
            outputs["arn"] = ARN_FORMATS[args.typ].format(
                region=self.region, account=ACCOUNT, name=physical, suffix=digest[:6], path=args.inputs.get("path", "/"),
                uuid=f"{digest[:8]}-{digest[8:12]}-4000-8000-{hashlib.sha1(digest.encode()).hexdigest()[:12]}")
        outputs.setdefault("arn", f"arn:aws:{service}:{self.region}:{ACCOUNT}:{args.name}")
        outputs.setdefault("name", args.name)
        if args.typ == "aws:kms/key:Key":
            outputs["keyId"] = digest
        elif args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            outputs["latestVersion"] = 1
        elif args.typ == "aws:ec2/instance:Instance":
            outputs["primaryNetworkInterfaceId"] = f"eni-{digest}"
        elif args.typ == "aws:iam/role:Role":
            outputs["arn"] = f"arn:aws:iam::{ACCOUNT}:role{args.inputs.get('path', '/')}{physical}"
        elif args.typ == "aws:ecr/repository:Repository":
            outputs["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com/{physical}"
        elif args.typ == "aws:eks/nodeGroup:NodeGroup":  # EKS names a managed group's ASG eks-<group>-<uuid>
            outputs["resources"] = [{"autoscalingGroups": [
                {"name": f"eks-{args.inputs.get('nodeGroupName', args.name)}-{digest}"}]}]
        elif args.typ == "aws:acm/certificate:Certificate":  # one CNAME per name, as ACM's DNS validation asks
            names = [args.inputs["domainName"], *(args.inputs.get("subjectAlternativeNames") or [])]
            outputs["domainValidationOptions"] = [{
                "domainName": host, "resourceRecordName": f"_{digest}.{host}.", "resourceRecordType": "CNAME",
                "resourceRecordValue": f"_{digest}.acm-validations.aws."} for host in names]
        elif args.typ == "aws:route53/record:Record":
            outputs["fqdn"] = str(args.inputs.get("name", "")).rstrip(".")
        elif args.typ == "eks:index:Cluster":
            outputs.update(self._cluster_outputs(args.inputs.get("name") or args.name, digest))
        return resource_id, outputs

    def _cluster_outputs(self, name: str, digest: str) -> dict[str, Any]:
        issuer = f"oidc.eks.{self.region}.amazonaws.com/id/{digest.upper()}"
        server = f"https://{digest.upper()}.gr7.{self.region}.eks.amazonaws.com"
        kubeconfig = {"apiVersion": "v1", "kind": "Config",
                      "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": "LS0t"}}],
                      "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
                      "current-context": name,
                      "users": [{"name": name, "user": {"exec": {
                          "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
                          "args": ["eks", "get-token", "--cluster-name", name, "--region", self.region]}}}]}
        return {"kubeconfig": kubeconfig, "oidcProviderArn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}",
                "oidcProviderUrl": issuer, "oidcIssuer": f"https://{issuer}",
                "clusterSecurityGroupId": f"sg-{digest}", "nodeSecurityGroupId": f"sg-n{digest}",
                "core": {"endpoint": server, "clusterSecurityGroupId": f"sg-{digest}"}}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/plan", "userId": "plan"}, []
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}, []
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com"}, []
        return dict(args.args), []


def _redact(value: Any) -> Any:
    if rpc.is_rpc_secret(value):
        return SECRET
    if isinstance(value, (pulumi.Asset, pulumi.Archive)):  # Lambda code: name it, never inline it
        return f"[{type(value).__name__}]"
    if isinstance(value, dict):  # sorted: the engine hands properties over in no fixed order
        return {key: _redact(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also remembering parent, protection and (secret-redacted) inputs of each resource."""

    def __init__(self, mocks: PlanMocks, plan: Plan):
        super().__init__(mocks)
        self.plan = plan

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = _redact(rpc.deserialize_properties(request.object))
            self.plan.resources.append(PlannedResource(
                urn=response.urn, type=request.type, name=request.name, parent=request.parent,
                custom=bool(request.custom), protect=bool(request.protect), inputs=inputs,
                dependencies=sorted(set(request.dependencies)), ignore_changes=sorted(request.ignoreChanges)))
        return response


def _resolve(value: Any) -> Any:
    """Plain values of stack outputs; secret outputs become a marker, never their value."""
    if isinstance(value, pulumi.Output):
        is_secret = _sync_await(value.is_secret())
        return SECRET if is_secret else _resolve(_sync_await(value.future()))
    if isinstance(value, dict):
        return {key: _resolve(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_resolve(item) for item in value]
    return value


def _run(cfg: StackConfig, raw: dict[str, Any]) -> Plan:
    from infra.stack import build  # imports the providers: the slow part, so only when planning

    plan = Plan(env=cfg.env)
    settings.ROOT.set(None)
    mocks = PlanMocks(cfg.region)
    pulumi.runtime.set_all_config({key: _config_value(value) for key, value in raw.items()})
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=cfg.env, preview=True,
                             monitor=RecordingMonitor(mocks, plan))
    outputs: dict[str, Any] = {}

    def program() -> None:
        outputs.update(build(cfg))

    _sync_await(run_pulumi_func(program))
    plan.resources = _in_tree_order(plan.resources)
    plan.outputs = _resolve(outputs)
    return plan


def _in_tree_order(resources: list[PlannedResource]) -> list[PlannedResource]:
    """Parents before their children, siblings by type and name: registration order varies between runs."""
    by_urn = {resource.urn: resource for resource in resources}

    def path(resource: PlannedResource) -> tuple[tuple[str, str], ...]:
        parent = by_urn.get(resource.parent)
        return (*(path(parent) if parent else ()), (resource.type, resource.name))

    return sorted(resources, key=path)


def _config_value(value: Any) -> str:
    """Pulumi hands config to programs as strings, objects JSON-encoded; do the same here."""
    return value if isinstance(value, str) else json.dumps(value)


def plan_config(cfg: StackConfig, raw: dict[str, Any] | None = None) -> Plan:
    """Record what the program declares for an already validated config (each run isolated in a fresh context)."""
    return contextvars.Context().run(_run, cfg, raw or {"aws:region": cfg.region})


def plan_stack(env: str) -> Plan:
    """Validate Pulumi.<env>.yaml and record everything the program declares for it (ConfigError on bad config)."""
    raw = read_stack_file(env)
    return plan_config(from_mapping(env, raw), raw)
