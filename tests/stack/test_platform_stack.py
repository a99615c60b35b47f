"""The in-cluster baseline under Pulumi mocks, for both real stack files and modified configs."""
from __future__ import annotations

import json

import pytest

from infra import observability as files
from infra.autoscaling import TEMPLATE
from infra.charts import AUTOSCALER_IMAGES, CHARTS
from infra.config import ConfigError, from_mapping, load_stack_config, quantity, read_stack_file
from infra.plan.offline import Plan, PlannedResource, plan_config, plan_stack

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
CR = "kubernetes:monitoring.coreos.com/v1:"


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    return {env: plan_stack(env) for env in ("dev", "prod")}


@pytest.fixture(params=["dev", "prod"])
def stack(request, plans) -> tuple[str, Plan]:
    return request.param, plans[request.param]


def release(plan: Plan, chart: str) -> PlannedResource:
    matches = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == chart]
    assert len(matches) == 1, f"expected one {chart} release, got {len(matches)}"
    return matches[0]


def named(plan: Plan, type_: str, name: str, namespace: str | None = None) -> PlannedResource:
    matches = [r for r in plan.of_type(type_) if r.inputs["metadata"]["name"] == name
               and r.inputs["metadata"].get("namespace") == namespace]
    assert len(matches) == 1, f"expected one {type_} {namespace}/{name}, got {len(matches)}"
    return matches[0]


def role_for(plan: Plan, arn: str) -> PlannedResource:
    name = arn.rsplit("/", 1)[1]
    return next(r for r in plan.of_type("aws:iam/role:Role") if r.name == name)


def inline_policy(plan: Plan, role: PlannedResource) -> dict:
    policies = [r for r in plan.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == role.name]
    assert len(policies) == 1
    return json.loads(policies[0].inputs["policy"])


def plan_with(env: str, platform: dict) -> Plan:
    raw = read_stack_file(env)
    raw["eks-platform:platform"] = platform
    return plan_config(from_mapping(env, raw), raw)


def test_gp3_is_the_encrypted_zone_aware_default_and_gp2_is_not(stack):
    env, plan = stack
    cfg = load_stack_config(env)
    gp3 = named(plan, "kubernetes:storage.k8s.io/v1:StorageClass", "gp3")
    assert gp3.inputs["provisioner"] == "ebs.csi.aws.com"
    assert gp3.inputs["volumeBindingMode"] == "WaitForFirstConsumer"
    assert gp3.inputs["allowVolumeExpansion"] is True
    assert gp3.inputs["parameters"]["type"] == "gp3"
    assert gp3.inputs["parameters"]["encrypted"] == "true"
    assert gp3.inputs["reclaimPolicy"] == cfg.platform.storage.reclaim_policy
    assert gp3.inputs["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    gp2 = named(plan, "kubernetes:storage.k8s.io/v1:StorageClassPatch", "gp2")
    assert gp2.inputs["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "false"


def test_prod_keeps_volumes_when_claims_are_deleted(plans):
    gp3 = named(plans["prod"], "kubernetes:storage.k8s.io/v1:StorageClass", "gp3")
    assert gp3.inputs["reclaimPolicy"] == "Retain"


def test_autoscaler_discovers_this_clusters_groups_and_balances_azs(stack):
    env, plan = stack
    cfg = load_stack_config(env)
    values = release(plan, "cluster-autoscaler").inputs["values"]
    assert values["autoDiscovery"]["clusterName"] == cfg.cluster.name
    assert values["autoDiscovery"]["tags"] == ["k8s.io/cluster-autoscaler/enabled",
                                               f"k8s.io/cluster-autoscaler/{cfg.cluster.name}"]
    assert values["image"]["tag"] == AUTOSCALER_IMAGES[cfg.version.minor]
    assert values["image"]["tag"].startswith(f"v{cfg.cluster.version}.")
    args = values["extraArgs"]
    settings = cfg.platform.autoscaler
    assert args["balance-similar-node-groups"] is True
    assert args["expander"] == settings.expander
    assert args["scale-down-utilization-threshold"] == settings.scale_down_utilization_threshold
    assert args["scale-down-unneeded-time"] == settings.scale_down_unneeded_time
    assert args["scale-down-delay-after-add"] == settings.scale_down_delay_after_add
    assert args["emit-per-nodegroup-metrics"] is True
    ignored = {value for key, value in args.items() if key.startswith("balancing-ignore-label_")}
    assert "eks.amazonaws.com/nodegroup" in ignored
    assert "topology.kubernetes.io/zone" not in ignored


def test_autoscaler_iam_is_irsa_bound_and_scoped_to_the_clusters_groups(stack):
    env, plan = stack
    cfg = load_stack_config(env)
    values = release(plan, "cluster-autoscaler").inputs["values"]
    account = values["rbac"]["serviceAccount"]
    role = role_for(plan, account["annotations"]["eks.amazonaws.com/role-arn"])
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = trust["Condition"]["StringEquals"]
    sub = next(value for key, value in conditions.items() if key.endswith(":sub"))
    assert sub == f"system:serviceaccount:kube-system:{account['name']}"
    policy = inline_policy(plan, role)
    writes = {"autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"}
    for statement in policy["Statement"]:
        actions = set(statement["Action"])
        assert "*" not in actions and not any(action.endswith(":*") for action in actions)
        if actions & writes:
            assert statement["Condition"]["StringEquals"][
                f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cfg.cluster.name}"] == "owned"
        if statement["Resource"] == "*" and "Condition" not in statement:
            assert all(":Describe" in action or ":Get" in action for action in actions), actions
        if "eks:DescribeNodegroup" in actions:
            assert statement["Resource"] == f"arn:aws:eks:*:*:nodegroup/{cfg.cluster.name}/*"
    assert plan.outputs["clusterAutoscalerRoleArn"] == account["annotations"]["eks.amazonaws.com/role-arn"]


def test_node_groups_carry_discovery_and_scale_from_zero_tags(stack):
    env, plan = stack
    cfg = load_stack_config(env)
    groups = plan.of_type("aws:eks/nodeGroup:NodeGroup")
    assert groups
    for group in groups:
        tags, labels = group.inputs["tags"], group.inputs["labels"]
        pool = cfg.node_pools[labels["pool"]]
        assert tags["k8s.io/cluster-autoscaler/enabled"] == "true"
        assert tags[f"k8s.io/cluster-autoscaler/{cfg.cluster.name}"] == "owned"
        assert tags[f"{TEMPLATE}/label/topology.kubernetes.io/zone"] == tags["availability-zone"]
        for key, value in labels.items():
            assert tags[f"{TEMPLATE}/label/{key}"] == value
        for taint in group.inputs.get("taints") or []:
            effect = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute",
                      "PREFER_NO_SCHEDULE": "PreferNoSchedule"}[taint["effect"]]
            assert tags[f"{TEMPLATE}/taint/{taint['key']}"] == f"{taint.get('value', '')}:{effect}"
        assert tags[f"{TEMPLATE}/resources/ephemeral-storage"] == f"{pool.disk_size_gib}G"
        assert len(tags) <= 50, "AWS allows at most 50 tags per resource"


def test_prod_system_pool_template_advertises_its_taint(plans):
    system = [g for g in plans["prod"].of_type("aws:eks/nodeGroup:NodeGroup") if g.inputs["labels"]["pool"] == "system"]
    assert system
    for group in system:
        assert group.inputs["tags"][f"{TEMPLATE}/taint/CriticalAddonsOnly"] == "true:NoSchedule"
        assert group.inputs["tags"][f"{TEMPLATE}/label/workload"] == "system"


def test_metrics_server_is_installed(stack):
    _, plan = stack
    assert release(plan, "metrics-server").inputs["namespace"] == "kube-system"


def test_every_release_is_pinned_atomic_and_from_the_catalogue(stack):
    _, plan = stack
    ours = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] in CHARTS]
    assert len(ours) >= 4
    for item in ours:
        chart = CHARTS[item.inputs["chart"]]
        assert item.inputs["version"] == chart.version
        assert item.inputs["repositoryOpts"]["repo"] == chart.repo
        assert item.inputs["atomic"] is True and item.inputs["cleanupOnFail"] is True


def test_a_stack_can_override_one_chart_version():
    plan = plan_with("dev", {"charts": {"metrics-server": "3.13.0"}})
    assert release(plan, "metrics-server").inputs["version"] == "3.13.0"
    assert release(plan, "cluster-autoscaler").inputs["version"] == CHARTS["cluster-autoscaler"].version


def test_app_namespaces_are_restricted_with_quota_and_defaults(stack):
    env, plan = stack
    cfg = load_stack_config(env)
    expected = cfg.platform.app_namespaces(env)
    assert set(expected) == {f"apps-{env}"}
    assert plan.outputs["appNamespaces"] == [f"apps-{env}"]
    for namespace, settings in expected.items():
        labels = named(plan, NAMESPACE, namespace).inputs["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
            assert labels[f"pod-security.kubernetes.io/{mode}-version"] == f"v{cfg.cluster.version}"
        hard = named(plan, "kubernetes:core/v1:ResourceQuota", "baseline", namespace).inputs["spec"]["hard"]
        assert hard["requests.cpu"] == settings.quota.requests_cpu
        assert hard["limits.memory"] == settings.quota.limits_memory
        assert hard["pods"] == str(settings.quota.pods)
        limits = named(plan, "kubernetes:core/v1:LimitRange", "container-defaults", namespace).inputs["spec"]["limits"]
        container = next(item for item in limits if item["type"] == "Container")
        assert container["defaultRequest"] == {"cpu": settings.limits.default_request_cpu,
                                               "memory": settings.limits.default_request_memory}
        assert container["default"]["memory"] == settings.limits.default_limit_memory
        assert quantity(container["default"]["cpu"]) <= quantity(container["max"]["cpu"])
        scrape = named(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow-prometheus-scrape", namespace)
        source = scrape.inputs["spec"]["ingress"][0]["from"][0]
        assert source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "monitoring"


def test_stack_values_reach_the_prod_namespace(plans):
    hard = named(plans["prod"], "kubernetes:core/v1:ResourceQuota", "baseline", "apps-prod").inputs["spec"]["hard"]
    assert hard["requests.cpu"] == "16" and hard["pods"] == "150"


def test_extra_namespaces_get_the_same_baseline():
    plan = plan_with("dev", {"namespaces": {"apps-dev-batch": {"quota": {"pods": 7}}}})
    for namespace in ("apps-dev", "apps-dev-batch"):
        labels = named(plan, NAMESPACE, namespace).inputs["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        named(plan, "kubernetes:core/v1:LimitRange", "container-defaults", namespace)
    hard = named(plan, "kubernetes:core/v1:ResourceQuota", "baseline", "apps-dev-batch").inputs["spec"]["hard"]
    assert hard["pods"] == "7"
    monitors = [r.inputs["metadata"]["namespace"] for r in plan.of_type(f"{CR}ServiceMonitor")]
    assert sorted(monitors) == ["apps-dev", "apps-dev-batch"]


def test_platform_priority_outranks_applications_and_one_default(stack):
    _, plan = stack
    classes = {r.inputs["metadata"]["name"]: r.inputs for r in plan.of_type("kubernetes:scheduling.k8s.io/v1:PriorityClass")}
    assert classes["platform"]["value"] > classes["application"]["value"]
    assert [name for name, spec in classes.items() if spec.get("globalDefault")] == ["application"]
    values = release(plan, "kube-prometheus-stack").inputs["values"]
    assert values["prometheus"]["prometheusSpec"]["priorityClassName"] == "platform"


def test_prometheus_retention_and_storage_come_from_config(stack):
    env, plan = stack
    monitoring = load_stack_config(env).platform.monitoring
    values = release(plan, "kube-prometheus-stack").inputs["values"]
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["retention"] == monitoring.retention
    assert spec["replicas"] == monitoring.prometheus_replicas
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["resources"]["requests"]["storage"] == f"{monitoring.storage_gib}Gi"
    assert claim["storageClassName"] == "gp3"
    assert int(spec["retentionSize"].removesuffix("GB")) < monitoring.storage_gib
    assert spec["ruleSelectorNilUsesHelmValues"] is False
    assert values["grafana"]["adminPassword"] == ""  # chart generates a random one, never the default


def test_rules_and_dashboard_are_shipped_from_the_repo_files(stack):
    env, plan = stack
    runbooks = load_stack_config(env).platform.monitoring.runbook_url
    rules = {r.inputs["metadata"]["name"]: r for r in plan.of_type(f"{CR}PrometheusRule")}
    assert set(rules) == set(files.rule_files())
    for stem, document in files.rule_files().items():
        assert rules[stem].inputs["metadata"]["namespace"] == "monitoring"
        assert rules[stem].inputs["spec"] == files.rules_with_runbooks(document, runbooks)
        assert files.RUNBOOK_TOKEN not in json.dumps(rules[stem].inputs["spec"])
    dashboard = named(plan, "kubernetes:core/v1:ConfigMap", "dashboard-platform-overview", "monitoring")
    assert dashboard.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard.inputs["data"]["platform-overview.json"]) == files.dashboards()["platform-overview.json"]


def test_example_services_are_scraped(stack):
    env, plan = stack
    service = named(plan, f"{CR}ServiceMonitor", "api", f"apps-{env}")
    assert service.inputs["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "api"}
    assert service.inputs["spec"]["endpoints"][0]["port"] == "http"
    pod = named(plan, f"{CR}PodMonitor", "worker", f"apps-{env}")
    assert pod.inputs["spec"]["podMetricsEndpoints"][0]["port"] == "health"


def test_cloudwatch_exporter_reads_nat_metrics_with_read_only_access(stack):
    _, plan = stack
    values = release(plan, "prometheus-cloudwatch-exporter").inputs["values"]
    assert "EksPlatform/NAT" in values["config"]
    policy = inline_policy(plan, role_for(plan, values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]))
    actions = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert actions and all(action.split(":")[1].startswith(("Get", "List")) for action in actions)


def test_log_shipper_is_optional_per_stack(plans):
    assert not [r for r in plans["dev"].of_type(RELEASE) if r.inputs["chart"] == "aws-for-fluent-bit"]
    prod = load_stack_config("prod")
    shipper = release(plans["prod"], "aws-for-fluent-bit")
    logs = shipper.inputs["values"]["cloudWatchLogs"]
    group = next(g for g in plans["prod"].of_type("aws:cloudwatch/logGroup:LogGroup") if g.inputs["name"] == logs["logGroupName"])
    assert group.inputs["retentionInDays"] == prod.platform.log_shipper.retention_days
    assert logs["autoCreateGroup"] is False
    named(plans["prod"], NAMESPACE, "logging")
    policy = inline_policy(plans["prod"], role_for(plans["prod"], shipper.inputs["values"]["serviceAccount"][
        "annotations"]["eks.amazonaws.com/role-arn"]))
    assert all(resource != "*" for statement in policy["Statement"] for resource in statement["Resource"])


@pytest.mark.parametrize("platform,key,fragment", [
    ({"monitoring": {"retention": "15 days"}}, "platform.monitoring.retention", "15d"),
    ({"charts": {"grafana": "1.0.0"}}, "platform.charts", "unknown chart"),
    ({"charts": {"metrics-server": "^3.12"}}, "platform.charts", "exact version"),
    ({"namespaces": {"apps-dev": {"quota": {"requests_cpu": "9", "limits_cpu": "8"}}}},
     "platform.namespaces.apps-dev.quota", "requests_cpu exceeds limits_cpu"),
    ({"namespaces": {"apps-dev": {"limits": {"default_request_memory": "1Gi"}}}},
     "platform.namespaces.apps-dev.limits", "default_request_memory <= default_limit_memory"),
    ({"namespaces": {"kube-apps": {}}}, "platform.namespaces", "not starting with kube-"),
    ({"log_shipper": {"enabled": True, "retention_days": 10}}, "platform.log_shipper.retention_days", "CloudWatch"),
    ({"autoscaler": {"scale_down_unneeded_time": "ten minutes"}}, "platform.autoscaler.scale_down_unneeded_time",
     "duration"),
    ({"storage": {"iops": 100}}, "platform.storage.iops", "3000"),
    ({"monitoring": {"retension": "7d"}}, "platform.monitoring.retension", "did you mean 'retention'"),
    ({"monitoring": {"slack_webhook_secret": "https://hooks.example/x"}}, "platform.monitoring.slack_webhook_secret",
     "not a Kubernetes Secret name"),
])
def test_bad_platform_config_names_the_key_and_the_fix(platform, key, fragment):
    raw = read_stack_file("dev")
    raw["eks-platform:platform"] = platform
    with pytest.raises(ConfigError) as caught:
        from_mapping("dev", raw)
    issues = [issue for issue in caught.value.issues if issue.key == f"eks-platform:{key}"]
    assert issues, str(caught.value)
    assert fragment in issues[0].problem



def test_releases_with_service_monitors_wait_for_the_prometheus_crds(monkeypatch):
    """Helm cannot install a ServiceMonitor before kube-prometheus-stack has created its CRD."""
    from infra.plan.offline import RecordingMonitor

    dependencies: dict[str, list[str]] = {}
    register = RecordingMonitor.RegisterResource

    def recording(self, request):
        dependencies[request.name] = list(request.dependencies)
        return register(self, request)

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", recording)
    plan = plan_stack("dev")
    stack = release(plan, "kube-prometheus-stack").urn
    for chart in ("cluster-autoscaler", "prometheus-cloudwatch-exporter"):
        assert stack in dependencies[release(plan, chart).name], chart
    for kind in ("PrometheusRule", "ServiceMonitor", "PodMonitor"):
        for resource in plan.of_type(f"{CR}{kind}"):
            assert stack in dependencies[resource.name], resource.name
    assert stack not in dependencies[release(plan, "metrics-server").name]


def test_alertmanager_routes_by_severity_and_reads_the_webhook_from_a_secret(plans):
    config = release(plans["dev"], "kube-prometheus-stack").inputs["values"]["alertmanager"]["config"]
    assert config["route"]["receiver"] == "null" and [r["name"] for r in config["receivers"]] == ["null"]
    critical = next(r for r in config["route"]["routes"] if r["matchers"] == ['severity = "critical"'])
    assert critical["repeat_interval"] == "1h"
    assert config["inhibit_rules"][0]["source_matchers"] == ['severity = "critical"']
    plan = plan_with("dev", {"monitoring": {"slack_webhook_secret": "alertmanager-slack"}})
    values = release(plan, "kube-prometheus-stack").inputs["values"]["alertmanager"]
    assert values["alertmanagerSpec"]["secrets"] == ["alertmanager-slack"]
    assert values["config"]["route"]["receiver"] == "slack"
    slack = next(r for r in values["config"]["receivers"] if r["name"] == "slack")["slack_configs"][0]
    assert slack["api_url_file"] == "/etc/alertmanager/secrets/alertmanager-slack/url"
    assert "hooks.slack.com" not in json.dumps(values)


def test_template_tags_reach_each_groups_own_asg(stack):
    """EKS does not copy node group tags to the ASG; the autoscaler reads templates from the ASG."""
    env, plan = stack
    groups = {g.inputs["nodeGroupName"]: g for g in plan.of_type("aws:eks/nodeGroup:NodeGroup")}
    tags = plan.of_type("aws:autoscaling/tag:Tag")
    copied: dict[str, dict[str, str]] = {}
    for tag in tags:
        asg = tag.inputs["autoscalingGroupName"]
        group = next(name for name in groups if asg.startswith(f"eks-{name}-"))
        assert tag.inputs["tag"]["propagateAtLaunch"] is False
        copied.setdefault(group, {})[tag.inputs["tag"]["key"]] = tag.inputs["tag"]["value"]
    assert set(copied) == set(groups)
    for name, group in groups.items():
        template = {key: value for key, value in group.inputs["tags"].items() if key.startswith(TEMPLATE)}
        assert copied[name] == template, name


def test_a_node_group_out_of_order_is_refused():
    from infra.components.platform import autoscaling_group_of

    found = [{"autoscaling_groups": [{"name": "eks-general-blue-a-1234"}]}]
    assert autoscaling_group_of("general-blue-a", "general-blue-a", found) == "eks-general-blue-a-1234"
    with pytest.raises(ValueError, match="general-blue-b where general-blue-a was expected"):
        autoscaling_group_of("general-blue-a", "general-blue-b", found)
