"""Traffic edge: the AWS Load Balancer Controller, the IngressClass it serves, the ACM certificate and DNS.

Services ask for a public route with an Ingress of class `alb`; everything the load balancer needs that a
service must not decide on its own (internet-facing, one shared ALB per stack, the certificate, the TLS policy,
the WAF ACL) is fixed here in IngressClassParams, so a manifest cannot weaken it. The certificate is issued
through DNS validation in the stack's hosted zone before the class points at it; ExternalDNS, allowed to write
to that zone only, publishes each Ingress host as an alias of the ALB the controller made. Why Ingress and why
ExternalDNS: docs/adr/0006-traffic-edge.md.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.charts import (
    EDGE_CONTROLLER,
    EDGE_CONTROLLER_POLICY,
    EDGE_DNS,
    INGRESS_CLASS,
    INGRESS_CONTROLLER,
    MONITORING_NAMESPACE,
)
from infra.components.addons import install_chart, irsa_annotation, service_account_role
from infra.config import StackConfig

CONTROLLER_POLICY = EDGE_CONTROLLER_POLICY
NAMESPACE = "kube-system"
READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"  # the controller's pod webhook watches these namespaces
SYSTEM_TAINT = "CriticalAddonsOnly"  # the taint of a pool reserved for platform pods (prod's `system` pool)
SYSTEM_LABEL = ("workload", "system")


@dataclass(frozen=True)
class EdgeArgs:
    config: StackConfig
    k8s_provider: k8s.Provider
    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    app_namespaces: list[str]
    priority_class: str
    tags: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)


def controller_policy() -> str:
    """The upstream IAM policy, compact: an inline role policy counts every character against 10 240."""
    return json.dumps(json.loads(CONTROLLER_POLICY.read_text()), separators=(",", ":"))


def dns_policy(zone_id: str) -> str:
    """ExternalDNS may change records in the stack's zone only; listing zones is how it finds that one."""
    zone = f"arn:aws:route53:::hostedzone/{zone_id}"
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets",
                                       "route53:ListTagsForResources"], "Resource": [zone]},
        {"Effect": "Allow", "Action": ["route53:ListHostedZones"], "Resource": ["*"]}]})


def platform_placement() -> dict[str, Any]:
    """Prefer the platform pool where a stack has one (tolerate its taint), spread replicas over nodes and zones."""
    key, value = SYSTEM_LABEL
    return {
        "tolerations": [{"key": SYSTEM_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100, "preference": {"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}}]}},
    }


def _field(option: Any, name: str) -> str:
    """A domain validation option's field, whether the SDK handed a typed object or a plain mapping."""
    if isinstance(option, dict):
        camel = "".join(part.capitalize() if i else part for i, part in enumerate(name.split("_")))
        return str(option.get(name) or option[camel])
    return str(getattr(option, name))


def _option_for(host: str, options: list[Any]) -> Any:
    """The certificate's domain validation option for `host`."""
    return next(o for o in options if _field(o, "domain_name") == host)


class Edge(pulumi.ComponentResource):
    """One stack's public edge; `certificate_arn` is the validated certificate the class serves."""

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("eks-platform:edge:Edge", name, None, opts)
        cfg = args.config
        if cfg.edge is None:
            raise ValueError("the edge needs eks-platform:edge in the stack file; build it only when that is set")
        self.args, self.edge = args, cfg.edge
        self.certificate_arn = self._certificate(name)
        after = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=args.depends_on)
        self.controller_role = service_account_role(
            f"{name}-controller", args.oidc_provider_arn, args.oidc_provider_url, NAMESPACE, EDGE_CONTROLLER,
            controller_policy(), args.tags, self)
        self.controller = self._controller(name, after)
        in_crds = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=[self.controller])
        self.class_params = self._class_params(name, in_crds)
        # pulumi-kubernetes' *ArgsDict stubs want snake_case keys; camelCase works as-is (pulumi/pulumi#16646)
        self.ingress_class = k8s.networking.v1.IngressClass(  # type: ignore[call-overload]
            f"{name}-class", metadata={"name": INGRESS_CLASS,
                                       "annotations": {"ingressclass.kubernetes.io/is-default-class": "false"}},
            spec={"controller": INGRESS_CONTROLLER, "parameters": {
                "apiGroup": "elbv2.k8s.aws", "kind": "IngressClassParams", "name": INGRESS_CLASS}},
            opts=pulumi.ResourceOptions.merge(in_crds, pulumi.ResourceOptions(depends_on=[self.class_params])))
        self.dns_role = service_account_role(
            f"{name}-dns", args.oidc_provider_arn, args.oidc_provider_url, NAMESPACE, EDGE_DNS,
            dns_policy(self.edge.zone_id), args.tags, self)
        self.dns = self._dns(name, after)
        self.register_outputs({"certificateArn": self.certificate_arn, "ingressClass": INGRESS_CLASS})

    def _certificate(self, name: str) -> pulumi.Output[str]:
        """An ACM certificate for every hostname, validated by DNS records in the zone; the ARN resolves once issued
        (ACM renews it on its own as long as the validation records stay)."""
        names = self.edge.names
        child = pulumi.ResourceOptions(parent=self)
        cert = aws.acm.Certificate(
            f"{name}-certificate", domain_name=names[0], subject_alternative_names=names[1:] or None,
            validation_method="DNS", key_algorithm="EC_prime256v1",
            options=aws.acm.CertificateOptionsArgs(certificate_transparency_logging_preference="ENABLED"),
            tags={**self.args.tags, "Name": f"{self.args.config.cluster.name}-edge"}, opts=child)
        records = []
        for service, host in self.edge.hostnames.items():
            option = cert.domain_validation_options.apply(partial(_option_for, host))
            records.append(aws.route53.Record(
                f"{name}-validation-{service}", zone_id=self.edge.zone_id, allow_overwrite=True, ttl=300,
                name=option.apply(lambda o: _field(o, "resource_record_name")),
                type=option.apply(lambda o: _field(o, "resource_record_type")),
                records=[option.apply(lambda o: _field(o, "resource_record_value"))], opts=child))
        validation = aws.acm.CertificateValidation(
            f"{name}-certificate", certificate_arn=cert.arn, validation_record_fqdns=[r.fqdn for r in records],
            opts=child)
        return validation.certificate_arn

    def _controller(self, name: str, opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
        """Two replicas on the platform nodes, PDB, platform priority; the VPC and region given, since pods cannot
        read them from instance metadata (IMDSv2 hop limit 1)."""
        cfg = self.args.config
        return install_chart(f"{name}-controller", EDGE_CONTROLLER, cfg.platform.charts, {
            "fullnameOverride": EDGE_CONTROLLER,
            "clusterName": cfg.cluster.name,
            "region": cfg.region,
            "vpcId": self.args.vpc_id,
            "replicaCount": 2,
            "podDisruptionBudget": {"maxUnavailable": 1},
            "priorityClassName": self.args.priority_class,
            "serviceAccount": {"create": True, "name": EDGE_CONTROLLER,
                               "annotations": irsa_annotation(self.controller_role)},
            # The class and its parameters are declared below, where the certificate ARN is known.
            "createIngressClassResource": False,
            "ingressClassParams": {"create": False},
            "defaultTargetType": "ip",
            # Services of type LoadBalancer keep their own semantics; the edge is Ingress only.
            "enableServiceMutatorWebhook": False,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                           "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {
                                               "app.kubernetes.io/name": EDGE_CONTROLLER}}}],
            "serviceMonitor": {"enabled": True, "namespace": MONITORING_NAMESPACE},
            **platform_placement(),
        }, opts)

    def _class_params(self, name: str, opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
        """What every Ingress of class `alb` gets, whatever its annotations say: internet-facing, one ALB per stack,
        the validated certificate, the stack's TLS policy, and the WAF ACL when configured."""
        cfg = self.args.config
        spec: dict[str, Any] = {
            "scheme": "internet-facing",
            "ipAddressType": "ipv4",
            "group": {"name": f"{cfg.cluster.name}-public"},
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                                        "values": list(self.args.app_namespaces)}]},
            "certificateArn": [self.certificate_arn],
            "sslPolicy": self.edge.tls_policy,
            "loadBalancerAttributes": [{"key": "routing.http.drop_invalid_header_fields.enabled", "value": "true"},
                                       {"key": "idle_timeout.timeout_seconds", "value": "60"}],
            "tags": [{"key": key, "value": value} for key, value in sorted(self.args.tags.items())],
        }
        if self.edge.waf_acl_arn:
            spec["wafv2AclArn"] = self.edge.waf_acl_arn
        return k8s.apiextensions.CustomResource(
            f"{name}-class-params", api_version="elbv2.k8s.aws/v1beta1", kind="IngressClassParams",
            metadata={"name": INGRESS_CLASS}, spec=spec, opts=opts)

    def _dns(self, name: str, opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
        """ExternalDNS: alias records for the hosts of `alb` Ingresses, in the stack's zone only, owned through TXT
        records so it never deletes a record it did not make."""
        cfg = self.args.config
        return install_chart(f"{name}-dns", EDGE_DNS, cfg.platform.charts, {
            "fullnameOverride": EDGE_DNS,
            "provider": {"name": "aws"},
            "env": [{"name": "AWS_DEFAULT_REGION", "value": cfg.region}],
            "serviceAccount": {"create": True, "name": EDGE_DNS, "annotations": irsa_annotation(self.dns_role)},
            "sources": ["ingress"],
            "domainFilters": [self.edge.zone_name],
            "policy": "sync",
            "registry": "txt",
            "txtOwnerId": cfg.cluster.name,
            "extraArgs": [f"--zone-id-filter={self.edge.zone_id}", "--aws-zone-type=public",
                          f"--ingress-class={INGRESS_CLASS}"],
            "priorityClassName": self.args.priority_class,
            "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            "serviceMonitor": {"enabled": True, "namespace": MONITORING_NAMESPACE},
            **platform_placement(),
        }, opts)
