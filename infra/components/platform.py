"""In-cluster baseline every namespace and node pool gets by default.

Storage binds volumes in the pod's AZ (so per-AZ node groups keep zone-bound volumes schedulable),
cluster-autoscaler grows and shrinks each AZ's group (from zero where a pool allows), application
namespaces run `restricted` pods inside quotas with default requests, and observability comes from
`Observability`. Everything goes through the stack's one Kubernetes provider (built from the cluster's kubeconfig).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.autoscaling import BALANCING_IGNORED_LABELS, TAG_PREFIX, TEMPLATE, autoscaler_policy, discovery_tags
from infra.charts import AUTOSCALER_IMAGES, AUTOSCALER_NAME, AUTOSCALER_NAMESPACE, MONITORING_NAMESPACE
from infra.components.addons import install_chart, irsa_annotation, service_account_role
from infra.components.edge import READINESS_GATE_LABEL
from infra.components.observability import Observability, ObservabilityArgs
from infra.config import AppNamespaceConfig, StackConfig
from infra.identity import LABELS, NAME, NAMESPACE, READER, READERS_GROUP, identity_of

PLATFORM_PRIORITY = "platform"
APPLICATION_PRIORITY = "application"
LOG_SHIPPER_SERVICE_ACCOUNT = "aws-for-fluent-bit"
# Namespaces the platform itself runs in. node-exporter and the log agent need host access, so these
# are `privileged` on purpose; application namespaces are `restricted`.
LOGGING_NAMESPACE = "logging"


@dataclass(frozen=True)
class PlatformArgs:
    config: StackConfig
    k8s_provider: k8s.Provider
    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]
    tags: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    # The node groups in declaration order (pool, generation, AZ), to copy node-template tags onto their ASGs.
    node_groups: list[aws.eks.NodeGroup] = field(default_factory=list)


def pod_security_labels(level: str, version: str) -> dict[str, str]:
    """Pod Security Admission: enforce `level`, and warn/audit at the same level so nothing is silent."""
    labels = {}
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = f"v{version}"
    return labels


class Platform(pulumi.ComponentResource):
    """The in-cluster baseline of one stack; `app_namespaces` are the namespaces services deploy to."""

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("eks-platform:platform:Platform", name, None, opts)
        cfg = args.config
        self.args = args
        self.provider = args.k8s_provider
        self.k8s_opts = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=args.depends_on)
        self.identity = self._identity(name)
        self.storage_class = self._storage(name)
        self.priority_classes = self._priority_classes(name)
        system = {ns: self._namespace(name, ns, "privileged") for ns in self._platform_namespaces()}
        self.app_namespaces = {ns: self._app_namespace(name, ns, settings)
                               for ns, settings in cfg.platform.app_namespaces(cfg.env).items()}
        self.metrics_server = install_chart(f"{name}-metrics-server", "metrics-server", cfg.platform.charts, {
            "replicas": 2, "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
            "args": ["--kubelet-preferred-address-types=InternalIP"],
        }, self.k8s_opts)
        baseline = [*args.depends_on, self.storage_class, *self.priority_classes, *system.values(),
                    *self.app_namespaces.values()]
        self.observability = Observability(f"{name}-observability", ObservabilityArgs(
            config=cfg, namespace=MONITORING_NAMESPACE, app_namespaces=list(self.app_namespaces),
            oidc_provider_arn=args.oidc_provider_arn, oidc_provider_url=args.oidc_provider_url,
            priority_class=PLATFORM_PRIORITY, tags=args.tags, depends_on=baseline),
            pulumi.ResourceOptions(parent=self, provider=self.provider))
        after_baseline = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=baseline)
        # Its chart declares a ServiceMonitor, whose CRD comes with kube-prometheus-stack.
        self.autoscaler = self._autoscaler(name, pulumi.ResourceOptions(
            parent=self, provider=self.provider, depends_on=[*args.depends_on, self.observability.stack]))
        self.template_tags = self._template_tags_on_asgs(name)
        self.log_shipper = self._log_shipper(name, after_baseline) if cfg.platform.log_shipper.enabled else None
        self.register_outputs({"appNamespaces": list(self.app_namespaces),
                               "storageClass": self.storage_class.metadata["name"]})

    def _identity(self, name: str) -> k8s.core.v1.ConfigMap:
        """Which stack this cluster is: every cluster task reads it first and refuses a cluster that names
        another stack or none (infra/ops/identity.py); any authenticated identity may read this one object."""
        identity = k8s.core.v1.ConfigMap(
            f"{name}-identity", metadata={"name": NAME, "namespace": NAMESPACE, "labels": LABELS},
            data=identity_of(self.args.config), opts=self.k8s_opts)
        meta = {"name": READER, "namespace": NAMESPACE, "labels": LABELS}
        # pulumi-kubernetes' *ArgsDict stubs want snake_case keys; camelCase works as-is (pulumi/pulumi#16646)
        reader = k8s.rbac.v1.Role(f"{name}-identity-reader", metadata=meta, rules=[{  # type: ignore[call-overload]
            "apiGroups": [""], "resources": ["configmaps"], "resourceNames": [NAME], "verbs": ["get"]}],
            opts=self.k8s_opts)
        # pulumi-kubernetes' *ArgsDict stubs want snake_case keys; camelCase works as-is (pulumi/pulumi#16646)
        k8s.rbac.v1.RoleBinding(  # type: ignore[call-overload]
            f"{name}-identity-reader", metadata=meta,
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": READER},
            subjects=[{"kind": "Group", "name": READERS_GROUP, "apiGroup": "rbac.authorization.k8s.io"}],
            opts=pulumi.ResourceOptions.merge(self.k8s_opts, pulumi.ResourceOptions(depends_on=[reader])))
        return identity

    def _platform_namespaces(self) -> list[str]:
        logging = [LOGGING_NAMESPACE] if self.args.config.platform.log_shipper.enabled else []
        return [MONITORING_NAMESPACE, *logging]

    def _storage(self, name: str) -> k8s.storage.v1.StorageClass:
        """gp3, encrypted, bound where the pod lands (WaitForFirstConsumer), expandable; gp2 stops being default."""
        storage = self.args.config.platform.storage
        gp3 = k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata={"name": "gp3", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            provisioner="ebs.csi.aws.com",
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy=storage.reclaim_policy,
            parameters={"type": "gp3", "encrypted": "true", "iops": str(storage.iops),
                        "throughput": str(storage.throughput_mibps), "csi.storage.k8s.io/fstype": "ext4"},
            opts=self.k8s_opts)
        # EKS ships gp2 (in-tree provisioner); two defaults would make PVC binding ambiguous.
        k8s.storage.v1.StorageClassPatch(
            f"{name}-gp2-not-default",
            metadata={"name": "gp2", "annotations": {"storageclass.kubernetes.io/is-default-class": "false",
                                                     "pulumi.com/patchForce": "true"}},
            opts=self.k8s_opts)
        return gp3

    def _priority_classes(self, name: str) -> list[k8s.scheduling.v1.PriorityClass]:
        """Platform pods (monitoring, autoscaling) preempt application pods, never the other way round."""
        return [
            k8s.scheduling.v1.PriorityClass(
                f"{name}-priority-platform", metadata={"name": PLATFORM_PRIORITY}, value=100000,
                global_default=False, preemption_policy="PreemptLowerPriority",
                description="Platform add-ons: monitoring, log shipping, autoscaling helpers.", opts=self.k8s_opts),
            k8s.scheduling.v1.PriorityClass(
                f"{name}-priority-application", metadata={"name": APPLICATION_PRIORITY}, value=1000,
                global_default=True, preemption_policy="PreemptLowerPriority",
                description="Default for application pods that name no priority class.", opts=self.k8s_opts),
        ]

    def _namespace(self, name: str, namespace: str, pod_security: str,
                   extra: dict[str, str] | None = None) -> k8s.core.v1.Namespace:
        labels = {**pod_security_labels(pod_security, self.args.config.cluster.version),
                  "app.kubernetes.io/part-of": "eks-platform", "environment": self.args.config.env, **(extra or {})}
        return k8s.core.v1.Namespace(f"{name}-ns-{namespace}", metadata={"name": namespace, "labels": labels},
                                     opts=self.k8s_opts)

    def _app_namespace(self, name: str, namespace: str, settings: AppNamespaceConfig) -> k8s.core.v1.Namespace:
        """A `restricted` namespace with a quota, container defaults, and room for Prometheus to scrape."""
        # With a public edge, a new pod is Ready only once the load balancer sees it healthy (readiness gate).
        gate = {READINESS_GATE_LABEL: "enabled"} if self.args.config.edge else {}
        ns = self._namespace(name, namespace, "restricted", gate)
        in_ns = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[ns])
        quota, limits = settings.quota, settings.limits
        k8s.core.v1.ResourceQuota(f"{name}-quota-{namespace}", metadata={"name": "baseline", "namespace": namespace},
                                  spec={"hard": {
                                      "requests.cpu": quota.requests_cpu, "requests.memory": quota.requests_memory,
                                      "limits.cpu": quota.limits_cpu, "limits.memory": quota.limits_memory,
                                      "requests.storage": quota.requests_storage, "pods": str(quota.pods),
                                      "persistentvolumeclaims": str(quota.persistent_volume_claims),
                                      "services.loadbalancers": str(quota.services_load_balancers)}},
                                  opts=in_ns)
        # pulumi-kubernetes' *ArgsDict stubs want snake_case keys; camelCase works as-is (pulumi/pulumi#16646)
        k8s.core.v1.LimitRange(f"{name}-limits-{namespace}", metadata={"name": "container-defaults",  # type: ignore[call-overload]
                                                                        "namespace": namespace},
                               spec={"limits": [{
                                   "type": "Container",
                                   "defaultRequest": {"cpu": limits.default_request_cpu,
                                                      "memory": limits.default_request_memory},
                                   "default": {"cpu": limits.default_limit_cpu, "memory": limits.default_limit_memory},
                                   "max": {"cpu": limits.max_cpu, "memory": limits.max_memory}}]},
                               opts=in_ns)
        # The services' own policies deny all ingress but their callers; scraping is the platform's business.
        # pulumi-kubernetes' *ArgsDict stubs want snake_case keys; camelCase works as-is (pulumi/pulumi#16646)
        k8s.networking.v1.NetworkPolicy(  # type: ignore[call-overload]
            f"{name}-allow-scrape-{namespace}", metadata={"name": "allow-prometheus-scrape", "namespace": namespace},
            spec={"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{
                "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}},
                          "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
                "ports": [{"protocol": "TCP", "port": "http"}, {"protocol": "TCP", "port": "health"}]}]},
            opts=in_ns)
        return ns

    def _autoscaler(self, name: str, opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
        """cluster-autoscaler discovering this cluster's groups by tag, balancing AZs, honouring PDBs."""
        cfg = self.args.config
        settings = cfg.platform.autoscaler
        self.autoscaler_role = service_account_role(
            f"{name}-autoscaler", self.args.oidc_provider_arn, self.args.oidc_provider_url, AUTOSCALER_NAMESPACE,
            AUTOSCALER_NAME, autoscaler_policy(cfg.cluster.name), self.args.tags, self)
        extra_args: dict[str, Any] = {
            "balance-similar-node-groups": True,
            "expander": settings.expander,
            "scale-down-utilization-threshold": settings.scale_down_utilization_threshold,
            "scale-down-unneeded-time": settings.scale_down_unneeded_time,
            "scale-down-delay-after-add": settings.scale_down_delay_after_add,
            # Evictions go through the Eviction API, so PodDisruptionBudgets bound every scale-down.
            "max-graceful-termination-sec": settings.max_graceful_termination_sec,
            "skip-nodes-with-local-storage": False,
            "skip-nodes-with-system-pods": False,
            "emit-per-nodegroup-metrics": True,
        }
        # The chart drops everything after "_" in a key, which is how one flag is passed several times.
        extra_args.update({f"balancing-ignore-label_{index}": label
                           for index, label in enumerate(BALANCING_IGNORED_LABELS, start=1)})
        return install_chart(f"{name}-cluster-autoscaler", "cluster-autoscaler", cfg.platform.charts, {
            "fullnameOverride": AUTOSCALER_NAME,
            "cloudProvider": "aws",
            "awsRegion": cfg.region,
            "autoDiscovery": {"clusterName": cfg.cluster.name,
                              "tags": [f"{TAG_PREFIX}/enabled", f"{TAG_PREFIX}/{cfg.cluster.name}"]},
            "image": {"tag": AUTOSCALER_IMAGES[cfg.version.minor]},
            "rbac": {"serviceAccount": {"create": True, "name": AUTOSCALER_NAME,
                                        "annotations": irsa_annotation(self.autoscaler_role)}},
            "extraArgs": extra_args,
            "podDisruptionBudget": {"maxUnavailable": 1},
            "serviceMonitor": {"enabled": True, "namespace": MONITORING_NAMESPACE, "interval": "30s"},
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
            "containerSecurityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                         "capabilities": {"drop": ["ALL"]}},
        }, opts)

    def _template_tags_on_asgs(self, name: str) -> list[aws.autoscaling.Tag]:
        """Copy each group's node-template tags onto its Auto Scaling group, where the autoscaler reads them.

        EKS does not propagate node group tags to the ASG it creates; without them an empty group offers
        no template, so nothing scales it up from zero. Groups are matched by name, never by position alone.
        """
        cfg = self.args.config
        declared = [(pool_name, pool, generation, az) for pool_name, pool in cfg.node_pools.items()
                    for generation in pool.generations for az in cfg.pool_azs(pool)]
        if not self.args.node_groups:
            return []
        if len(declared) != len(self.args.node_groups):
            raise ValueError(f"expected {len(declared)} node groups, got {len(self.args.node_groups)}")
        tags = []
        for (pool_name, pool, generation, az), group in zip(declared, self.args.node_groups, strict=True):
            group_name = f"{pool_name}-{generation}-{az[-1]}"
            asg = pulumi.Output.all(group.node_group_name, group.resources).apply(partial(_group_of, group_name))
            for key, value in discovery_tags(cfg.cluster.name, pool_name, generation, az, pool).items():
                if key.startswith(TEMPLATE):
                    slug = key.removeprefix(f"{TEMPLATE}/").replace("/", "-").replace(".", "-")
                    tags.append(aws.autoscaling.Tag(
                        f"{name}-asg-{group_name}-{slug}", autoscaling_group_name=asg,
                        tag=aws.autoscaling.TagTagArgs(key=key, value=value, propagate_at_launch=False),
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[group])))
        return tags

    def _log_shipper(self, name: str, opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
        """Fluent Bit DaemonSet: container stdout (JSON lines) to one CloudWatch log group per stack."""
        import pulumi_aws as aws

        cfg = self.args.config
        group_name = f"/eks/{cfg.cluster.name}/containers"
        group = aws.cloudwatch.LogGroup(f"{name}-container-logs", name=group_name,
                                        retention_in_days=cfg.platform.log_shipper.retention_days,
                                        tags=self.args.tags, opts=pulumi.ResourceOptions(parent=self))
        policy = group.arn.apply(lambda arn: json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": [arn, f"{arn}:log-stream:*"]}]}))
        role = service_account_role(f"{name}-log-shipper", self.args.oidc_provider_arn,
                                    self.args.oidc_provider_url, LOGGING_NAMESPACE, LOG_SHIPPER_SERVICE_ACCOUNT,
                                    policy, self.args.tags, self)
        return install_chart(f"{name}-log-shipper", "aws-for-fluent-bit", cfg.platform.charts, {
            "fullnameOverride": LOG_SHIPPER_SERVICE_ACCOUNT,
            "serviceAccount": {"create": True, "name": LOG_SHIPPER_SERVICE_ACCOUNT,
                               "annotations": irsa_annotation(role)},
            "cloudWatchLogs": {"enabled": True, "region": cfg.region, "logGroupName": group_name,
                               "autoCreateGroup": False, "logRetentionDays": cfg.platform.log_shipper.retention_days},
            "firehose": {"enabled": False}, "kinesis": {"enabled": False}, "elasticsearch": {"enabled": False},
            "priorityClassName": PLATFORM_PRIORITY,
            "tolerations": [{"operator": "Exists"}],
        }, pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[group])))


def _group_of(expected: str, found: list[Any]) -> str:
    """`autoscaling_group_of` over Output.all's [node_group_name, resources]."""
    return autoscaling_group_of(expected, *found)


def autoscaling_group_of(expected: str, node_group_name: str, resources: Any) -> str:
    """The ASG EKS made for a managed node group; refuses a group that is not the one expected."""
    if node_group_name != expected:
        raise ValueError(f"node group {node_group_name} where {expected} was expected; node groups must be passed "
                         f"in declaration order")
    resource = resources[0]
    if not isinstance(resource, dict):  # a typed output object
        return resource.autoscaling_groups[0].name
    groups = resource.get("autoscaling_groups") or resource["autoscalingGroups"]
    return groups[0]["name"]
