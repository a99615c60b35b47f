"""Stack config validation: both real stack files pass, and each kind of mistake gets its documented error."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.config import (
    ConfigError,
    check_generation_history,
    deployed_ami_types,
    from_mapping,
    load_stack_config,
    read_stack_file,
    subnet_plan,
)


@pytest.fixture(scope="module")
def dev_raw() -> dict[str, Any]:
    return read_stack_file("dev")


def _with(raw: dict[str, Any], section: str, path: str, value: Any) -> dict[str, Any]:
    """A copy of the raw config with one nested value set (value None deletes the key)."""
    raw = copy.deepcopy(raw)
    node = raw.setdefault(section, {}) if section in raw or path else raw
    parts = path.split(".") if path else []
    for part in parts[:-1]:
        node = node[part]
    if not parts:
        raw[section] = value
    elif value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return raw


def _issues(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        from_mapping("dev", raw)
    return [str(issue) for issue in caught.value.issues]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_real_stack_files_are_valid(env):
    cfg = load_stack_config(env)
    assert cfg.env == env
    assert cfg.node_pools


def test_prod_differs_from_dev_where_intended():
    dev, prod = load_stack_config("dev"), load_stack_config("prod")
    assert len(dev.network.azs) == 2 and len(prod.network.azs) == 3
    assert prod.cluster.deletion_protection and not dev.cluster.deletion_protection
    assert not prod.cluster.endpoint_public_access and prod.cluster.endpoint_private_access
    assert not dev.network.cidr.overlaps(prod.network.cidr)


GEN = "eks-platform:node_pools"
BAD_CONFIGS = [
    # (id, section key, dotted path inside it, value, expected key in error, expected text in error)
    ("cidr-host-bits", "eks-platform:network", "cidr", "10.10.0.1/16", "eks-platform:network.cidr", "host bits"),
    ("cidr-garbage", "eks-platform:network", "cidr", "10.300.0.0/16", "eks-platform:network.cidr", "well-formed"),
    ("cidr-public", "eks-platform:network", "cidr", "8.8.0.0/16", "eks-platform:network.cidr", "RFC 1918"),
    ("cidr-too-small", "eks-platform:network", "cidr", "10.10.0.0/18", "eks-platform:network",
     "too small"),
    ("az-duplicate", "eks-platform:network", "azs", ["eu-west-1a", "eu-west-1a"], "eks-platform:network.azs",
     "listed twice"),
    ("az-wrong-region", "eks-platform:network", "azs", ["us-east-1a", "eu-west-1b"],
     "eks-platform:network.azs[0]", "not an AZ of region eu-west-1"),
    ("network-typo", "eks-platform:network", "cdir", "10.0.0.0/16", "eks-platform:network.cdir",
     "did you mean 'cidr'"),
    ("version-format", "eks-platform:cluster", "version", "1.31.2", "eks-platform:cluster.version",
     "not a Kubernetes minor version"),
    ("version-unsupported", "eks-platform:cluster", "version", "1.24", "eks-platform:cluster.version",
     "outside the supported range"),
    ("retention", "eks-platform:cluster", "log_retention_days", 10, "eks-platform:cluster.log_retention_days",
     "such as 7"),
    ("addon-version", "eks-platform:cluster", "addons.coredns", "1.11", "eks-platform:cluster.addons",
     "v1.19.2-eksbuild.1"),
    ("kube-proxy-mismatch", "eks-platform:cluster", "addons.kube-proxy", "v1.30.6-eksbuild.3",
     "eks-platform:cluster", "does not match cluster version 1.35"),
    ("version-past-extended-support", "eks-platform:cluster", "version", "1.31", "eks-platform:cluster.version",
     "left EKS extended support on 2026-11-26"),
    ("upgrade-policy-unknown", "eks-platform:cluster", "upgrade_policy", "LONG", "eks-platform:cluster.upgrade_policy",
     "'STANDARD' or 'EXTENDED'"),
    ("open-endpoint-unsaid", "eks-platform:cluster", "public_endpoint_open_to_internet", None,
     "eks-platform:cluster.public_access_cidrs", "public_endpoint_open_to_internet: true"),
    ("runner-label", "eks-platform:cluster", "ci_runner_labels", ["self hosted"], "eks-platform:cluster.ci_runner_labels",
     "not GitHub runner labels"),
    ("cluster-name", "eks-platform:cluster", "name", "1-bad name", "eks-platform:cluster.name",
     "not a valid EKS cluster name"),
    ("sizes-order", GEN, "general.min_size", 5, f"{GEN}.general", "min_size <= desired_size <= max_size"),
    ("max-zero", GEN, "general.max_size", 0, f"{GEN}.general.max_size", "greater than 0"),
    ("instance-type", GEN, "general.instance_types", ["large"], f"{GEN}.general.instance_types",
     "not EC2 instance types"),
    ("ami-type", GEN, "general.generations.green.ami_type", "AL2024", f"{GEN}.general.generations.green.ami_type",
     "AL2023_x86_64_STANDARD"),
    ("generation-name", GEN, "general.generations.Blue_1", {"ami_type": "AL2023_x86_64_STANDARD"},
     f"{GEN}.general.generations.Blue_1", "not a valid name"),
    ("kubelet-newer", GEN, "general.generations.green.version", "1.36", f"{GEN}.general.generations.green.version",
     "newer than the control plane"),
    ("generation-arch-mismatch", GEN, "general.generations.green.instance_types", ["t4g.large"],
     f"{GEN}.general.generations.green.ami_type", "the generation has t4g.large"),
    ("arch-mismatch", GEN, "general.generations.green.ami_type", "AL2023_ARM_64_STANDARD",
     f"{GEN}.general.generations.green.ami_type", "needs arm64"),
    ("pool-az-unknown", GEN, "general.azs", ["eu-west-1c"], f"{GEN}.general.azs", "not in network.azs"),
    ("reserved-label", GEN, "general.labels", {"pool": "x"}, f"{GEN}.general.labels", "set by the platform"),
    ("taint-effect", GEN, "general.taints", [{"key": "a", "effect": "NoSchedule"}],
     f"{GEN}.general.taints[0].effect", "NO_SCHEDULE"),
    ("service-cidr-overlap", "eks-platform:cluster", "service_cidr", "10.10.0.0/16",
     "eks-platform:cluster.service_cidr", "overlaps the VPC"),
]


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=lambda c: c[0])
def test_bad_config_is_refused_with_key_and_fix(dev_raw, case):
    _, section, path, value, key, text = case
    issues = _issues(_with(dev_raw, section, path, value))
    matching = [issue for issue in issues if issue.startswith(key)]
    assert matching, f"no issue for {key} in {issues}"
    assert any(text in issue for issue in matching), issues


def test_at_least_fifteen_documented_bad_configs():
    assert len(BAD_CONFIGS) >= 15


def test_unknown_top_level_key_suggests_spelling(dev_raw):
    raw = dict(dev_raw, **{"eks-platform:nodepools": {}})
    assert any("did you mean eks-platform:node_pools" in issue for issue in _issues(raw))


def test_missing_region_is_named(dev_raw):
    raw = {k: v for k, v in dev_raw.items() if k != "aws:region"}
    assert any(issue.startswith("aws:region:") for issue in _issues(raw))


def test_all_problems_reported_at_once(dev_raw):
    raw = _with(dev_raw, "eks-platform:network", "cidr", "10.10.0.1/16")
    raw = _with(raw, "eks-platform:cluster", "version", "1.99")
    raw = _with(raw, GEN, "general.generations.green.ami_type", "AL2024")
    issues = _issues(raw)
    assert len(issues) >= 3
    assert {i.split(":")[1].split(".")[0] for i in issues} >= {"network", "cluster", "node_pools"}


def test_endpoint_needs_public_or_private(dev_raw):
    raw = _with(dev_raw, "eks-platform:cluster", "endpoint_private_access", False)
    raw = _with(raw, "eks-platform:cluster", "endpoint_public_access", False)
    raw = _with(raw, "eks-platform:cluster", "public_access_cidrs", [])
    assert any("unreachable" in issue for issue in _issues(raw))


def test_al2_refused_from_1_33_with_migration_hint(dev_raw):
    raw = _with(dev_raw, "eks-platform:cluster", "version", "1.33")
    raw = _with(raw, "eks-platform:cluster", "upgrade_policy", "EXTENDED")  # 1.33 is in extended support
    raw = _with(raw, "eks-platform:cluster", "addons.kube-proxy", "v1.33.0-eksbuild.2")
    raw = _with(raw, GEN, "general.generations.blue.ami_type", "AL2_x86_64")
    issues = _issues(raw)
    assert len(issues) == 1, issues
    assert issues[0].startswith(f"{GEN}.general.generations.blue.ami_type")
    assert "AL2_x86_64 has no AMIs for Kubernetes 1.33" in issues[0] and "invoke nodes.migrate" in issues[0]


def test_al2_is_accepted_up_to_1_32_as_the_calendar_says(dev_raw):
    raw = _with(dev_raw, "eks-platform:cluster", "version", "1.32")
    raw = _with(raw, "eks-platform:cluster", "upgrade_policy", "EXTENDED")
    raw = _with(raw, "eks-platform:cluster", "addons.kube-proxy", "v1.32.0-eksbuild.2")
    cfg = from_mapping("dev", _with(raw, GEN, "general.generations.blue.ami_type", "AL2_x86_64"))
    assert cfg.node_pools["general"].generations["blue"].is_al2


def test_kubelet_skew_window(dev_raw):
    ok = from_mapping("dev", _with(dev_raw, GEN, "general.generations.green.version", "1.32"))
    assert ok.node_pools["general"].generations["green"].version == "1.32"
    raw = _with(dev_raw, GEN, "general.generations", {"green": {"ami_type": "AL2023_x86_64_STANDARD", "version": "1.31"}})
    issues = _issues(raw)
    assert any("lags the control plane 1.35 by 4 minors" in i for i in issues), issues


def test_subnet_plan_is_per_az_and_disjoint():
    cfg = load_stack_config("prod")
    plan = subnet_plan(cfg.network)
    assert list(plan) == cfg.network.azs
    import ipaddress
    cidrs = [ipaddress.ip_network(c) for pair in plan.values() for c in pair]
    assert all(c.subnet_of(cfg.network.cidr) for c in cidrs)
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1:])


def test_changing_ami_of_existing_generation_is_refused():
    cfg = load_stack_config("dev")
    deployed = deployed_ami_types(cfg)
    assert check_generation_history(cfg, deployed) == []
    deployed["general"]["green"] = "AL2_x86_64"
    issues = check_generation_history(cfg, deployed)
    assert len(issues) == 1
    assert issues[0].key == f"{GEN}.general.generations.green.ami_type"
    assert "invoke nodes.migrate" in issues[0].problem and "add a new generation" in issues[0].problem
