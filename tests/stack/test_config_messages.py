"""Config problems are all reported at once, no value is silently coerced, and each message names the real fix."""
from __future__ import annotations

import copy
import typing
from typing import Any

import pytest
from pydantic import BaseModel

from infra.config import ROOT, ConfigError, StackConfig, from_mapping, load_stack_config, read_stack_file

GEN = "eks-platform:node_pools"


@pytest.fixture(scope="module")
def dev_raw() -> dict[str, Any]:
    return read_stack_file("dev")


def _set(raw: dict[str, Any], section: str, path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    node = raw.setdefault(section, {})
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is None:
        node.pop(last)
    else:
        node[last] = value
    return raw


def _issues(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        from_mapping("dev", raw)
    return [str(issue) for issue in caught.value.issues]


def test_cross_section_checks_run_when_a_section_fails(dev_raw):
    raw = _set(dev_raw, "eks-platform:network", "azs", ["us-east-1a", "eu-west-1b"])
    raw = _set(raw, GEN, "general.min_size", 5)  # > max_size 3: the node pool model fails
    issues = _issues(raw)
    assert any(i.startswith(f"{GEN}.general:") and "min_size <= desired_size <= max_size" in i for i in issues)
    assert any(i.startswith("eks-platform:network.azs[0]:") and "not an AZ of region eu-west-1" in i for i in issues)


def test_cross_section_checks_use_what_validated_and_skip_what_is_missing(dev_raw):
    raw = _set(dev_raw, "eks-platform:cluster", "version", "1.99")  # cluster fails: no skew checks possible
    raw = _set(raw, GEN, "general.generations.green.ami_type", "AL2023_ARM_64_STANDARD")  # arch: pool-only check
    raw = _set(raw, "eks-platform:secrets", "services.wroker", {"token": {"description": "x", "kind": "external"}})
    del raw["eks-platform:network"]
    issues = _issues(raw)
    keys = {i.split(": ", 1)[0] for i in issues}
    assert {"eks-platform:cluster.version", "eks-platform:network", f"{GEN}.general.generations.green.ami_type",
            "eks-platform:secrets.services.wroker"} <= keys, issues


def test_a_failing_pool_does_not_hide_another_pools_cross_problem(dev_raw):
    second = copy.deepcopy(dev_raw[GEN]["general"])
    second["instance_types"] = ["m7g.large"]  # Graviton with x86 AMIs
    raw = _set(dev_raw, GEN, "arm", second)
    raw = _set(raw, GEN, "general.max_size", 0)
    issues = _issues(raw)
    assert any(i.startswith(f"{GEN}.general.max_size:") for i in issues)
    assert any(i.startswith(f"{GEN}.arm.generations.blue.ami_type:") and "needs x86_64" in i for i in issues)


COERCED = [
    # (section, path, value YAML could hand over, key, words)
    (GEN, "general.min_size", True, f"{GEN}.general.min_size", "must be a whole number, got true (a boolean)"),
    (GEN, "general.max_size", "3", f"{GEN}.general.max_size", "must be a whole number, got '3' (text)"),
    (GEN, "general.disk_size_gib", 40.0, f"{GEN}.general.disk_size_gib", "must be a whole number"),
    ("eks-platform:cluster", "deletion_protection", 1, "eks-platform:cluster.deletion_protection",
     "must be true or false, got 1"),
    ("eks-platform:cluster", "endpoint_public_access", "yes", "eks-platform:cluster.endpoint_public_access",
     "must be true or false, got 'yes'"),
    ("eks-platform:cluster", "log_retention_days", "14", "eks-platform:cluster.log_retention_days", "whole number"),
    ("eks-platform:cluster", "service_cidr", 10, "eks-platform:cluster.service_cidr", "write it as text"),
    ("eks-platform:network", "private_subnet_prefix", False, "eks-platform:network.private_subnet_prefix",
     "got false"),
    ("eks-platform:nat", "probe_interval_seconds", True, "eks-platform:nat.probe_interval_seconds",
     "must be a number, got true"),
    ("eks-platform:nat", "failure_threshold", 2.5, "eks-platform:nat.failure_threshold", "whole number"),
    ("eks-platform:secrets", "rotation", "false", "eks-platform:secrets.rotation", "true or false"),
    ("eks-platform:secrets", "services.api.session-key.length", True,
     "eks-platform:secrets.services.api.session-key.length", "whole number"),
    ("eks-platform:platform", "monitoring.storage_gib", "20", "eks-platform:platform.monitoring.storage_gib",
     "whole number"),
    ("eks-platform:platform", "autoscaler.scale_down_utilization_threshold", "0.5",
     "eks-platform:platform.autoscaler.scale_down_utilization_threshold", "must be a number"),
    ("eks-platform:platform", "log_shipper.enabled", 0, "eks-platform:platform.log_shipper.enabled", "true or false"),
    ("eks-platform:access", "pulumi_deployer_cluster_admin", 1, "eks-platform:access.pulumi_deployer_cluster_admin",
     "true or false"),
]


@pytest.mark.parametrize("section, path, value, key, words", COERCED, ids=[c[1] for c in COERCED])
def test_values_of_the_wrong_type_are_refused_not_coerced(dev_raw, section, path, value, key, words):
    issues = _issues(_set(dev_raw, section, path, value))
    assert any(i.startswith(f"{key}:") and words in i for i in issues), issues


def test_whole_numbers_still_fill_decimal_fields(dev_raw):
    raw = _set(dev_raw, "eks-platform:nat", "probe_interval_seconds", 3)
    cfg = from_mapping("dev", _set(raw, "eks-platform:nat", "probe_timeout_seconds", 2))
    assert (cfg.nat.probe_interval_seconds, cfg.nat.probe_timeout_seconds) == (3.0, 2.0)


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    seen.add(model)
    for info in model.model_fields.values():
        stack = [info.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation not in seen:
                _models(annotation, seen)
            stack += typing.get_args(annotation)


def test_no_number_or_switch_field_of_any_section_is_lax():
    """Every int, float and bool field anywhere in StackConfig is strict, including ones added later."""
    models: set[type[BaseModel]] = set()
    _models(StackConfig, models)
    lax = []
    for model in models:
        for name, info in model.model_fields.items():
            kinds = {a for a in (info.annotation, *typing.get_args(info.annotation)) if a in (int, float, bool)}
            strict = any(getattr(m, "strict", False) for m in info.metadata)
            if kinds and not strict:
                lax.append(f"{model.__name__}.{name}")
    assert len(models) > 15 and lax == []


def test_unquoted_version_in_the_stack_file_says_to_quote_it_as_written(tmp_path):
    text = (ROOT / "Pulumi.dev.yaml").read_text()
    assert 'version: "1.35"' in text
    (tmp_path / "Pulumi.dev.yaml").write_text(text.replace('version: "1.35"', "version: 1.30"))
    with pytest.raises(ConfigError) as caught:
        load_stack_config("dev", root=tmp_path)
    [issue] = [str(i) for i in caught.value.issues if i.key == "eks-platform:cluster.version"]
    assert "1.30" in issue and 'write it quoted: version: "1.30"' in issue


def test_number_for_a_text_field_without_the_file_still_says_quote_it(dev_raw):
    issues = _issues(_set(dev_raw, "eks-platform:cluster", "version", 1.3))
    assert any(i.startswith("eks-platform:cluster.version:") and "write it quoted" in i for i in issues), issues


def test_typo_in_a_secrets_service_suggests_the_closest_service(dev_raw):
    raw = copy.deepcopy(dev_raw)
    raw["eks-platform:secrets"]["services"]["wroker"] = raw["eks-platform:secrets"]["services"].pop("worker")
    [issue] = _issues(raw)
    assert issue.startswith("eks-platform:secrets.services.wroker:") and "did you mean 'worker'?" in issue
    assert "shared" not in issue  # base/shared holds namespace-wide objects, it is no service


def test_the_shared_base_is_not_a_secrets_service(dev_raw):
    raw = _set(dev_raw, "eks-platform:secrets", "services.shared", {"token": {"description": "x", "kind": "external"}})
    [issue] = _issues(raw)
    assert issue.startswith("eks-platform:secrets.services.shared:") and "api, scheduler, worker" in issue


@pytest.mark.parametrize("section, path, typo, meant", [
    (GEN, "general.generations.blue", "amitype", "ami_type"),
    ("eks-platform:access", "github", "repoo", "repo"),
    ("eks-platform:secrets", "services.api.session-key", "lenght", "length"),
    ("eks-platform:access", "role_mappings.0", "usrname", "username"),
    ("eks-platform:platform", "namespaces.apps-dev.quota", "pod", "pods"),
])
def test_unknown_nested_key_suggests_the_field_of_its_own_model(dev_raw, section, path, typo, meant):
    issues = _issues(_set(dev_raw, section, f"{path}.{typo}", "x"))
    assert any(f"did you mean {meant!r}?" in i for i in issues), issues


def test_dict_key_errors_name_the_key_as_written(dev_raw):
    raw = _set(dev_raw, GEN, "general.generations.Blue_1", {"ami_type": "AL2023_x86_64_STANDARD"})
    assert any(i.startswith(f"{GEN}.general.generations.Blue_1: 'Blue_1' is not a valid name") for i in _issues(raw))


def test_a_quantity_keeps_its_text_even_when_it_is_zero(dev_raw):
    raw = _set(dev_raw, "eks-platform:platform", "namespaces.apps-dev.quota.requests_storage", "0")
    quota = from_mapping("dev", raw).platform.namespaces["apps-dev"].quota
    assert quota.requests_storage == "0" and isinstance(quota.requests_storage, str)


@pytest.mark.parametrize("taint, key, words", [
    ({"key": "", "effect": "NO_SCHEDULE"}, f"{GEN}.general.taints[0].key", "not a taint key"),
    ({"key": "dedicated", "value": "a b", "effect": "NO_SCHEDULE"}, f"{GEN}.general.taints[0].value",
     "not a taint value"),
])
def test_taint_keys_and_values_follow_kubernetes_syntax(dev_raw, taint, key, words):
    issues = _issues(_set(dev_raw, GEN, "general.taints", [taint]))
    assert any(i.startswith(f"{key}:") and words in i for i in issues), issues


def test_a_zero_secret_refresh_interval_is_refused(dev_raw):
    issues = _issues(_set(dev_raw, "eks-platform:secrets", "refresh_interval", "0h"))
    assert any(i.startswith("eks-platform:secrets.refresh_interval:") and "never again" in i for i in issues)


def test_a_typo_in_the_project_namespace_is_named_not_ignored(dev_raw):
    raw = copy.deepcopy(dev_raw)
    raw["eks-platfrom:nat"] = raw.pop("eks-platform:nat")
    [issue] = _issues(raw)
    assert issue.startswith("eks-platfrom:nat:") and "did you mean eks-platform:nat?" in issue


def test_log_shipper_retention_suggests_the_nearest_allowed_value(dev_raw):
    issues = _issues(_set(dev_raw, "eks-platform:platform", "log_shipper.retention_days", 399))
    assert any(i.startswith("eks-platform:platform.log_shipper.retention_days:") and "such as 400" in i
               for i in issues), issues


def test_a_public_endpoint_without_cidrs_is_not_silently_open_to_the_world(dev_raw):
    issues = _issues(_set(dev_raw, "eks-platform:cluster", "public_access_cidrs", []))
    assert any(i.startswith("eks-platform:cluster:") and "0.0.0.0/0" in i for i in issues), issues
