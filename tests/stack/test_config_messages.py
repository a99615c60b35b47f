"""Config problems are all reported at once, no value is silently coerced, and each message names the real fix."""
from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

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


# pydantic's own sentences: every message a config can produce is said in the file's words instead.
PYDANTIC = ("Input should", "after validation", "String should", "Field required", "Extra inputs", "Value error",
            "should have", "Dictionary", "List should")
ODD_VALUES = [None, True, "x", "", -1, 0, 10**9, 1.5, [], {}, [1], ["x"], {"a": 1}, {"a": "b"}, 1.3, [None], "a" * 3000,
              ["x"] * 7, {f"g{i}": {} for i in range(4)}]


def test_no_problem_of_any_field_is_said_in_pydantic_words():
    """Every field of every section, given values YAML can hand over: each problem names the fix in plain words
    (this is the whole list of pydantic error kinds the config can produce, fields added later included)."""
    from infra.sections.messages import issues_of

    models: set[type[BaseModel]] = set()
    _models(StackConfig, models)
    kinds, leaks = set(), []
    for model in models:
        for name in model.model_fields:
            for value in ODD_VALUES:
                try:
                    model.model_validate({name: value})
                except ValidationError as error:
                    kinds |= {e["type"] for e in error.errors()}
                    leaks += [f"{model.__name__}.{name}={value!r}: {issue.problem}"
                              for issue in issues_of(error.errors(), model)
                              if any(words in issue.problem for words in PYDANTIC)]
    assert leaks == []
    assert {"too_short", "too_long", "literal_error", "greater_than", "less_than_equal", "string_too_short",
            "string_too_long", "missing", "extra_forbidden", "bool_type", "int_type"} <= kinds


@pytest.mark.parametrize("section, path, value, key, words", [
    (GEN, "general.disk_size_gib", 0, f"{GEN}.general.disk_size_gib", "must be from 20 to 2000, got 0"),
    (GEN, "general.max_size", 0, f"{GEN}.general.max_size", "must be greater than 0 and at most 450, got 0"),
    ("eks-platform:platform", "autoscaler.scale_down_utilization_threshold", 1.0,
     "eks-platform:platform.autoscaler.scale_down_utilization_threshold",
     "must be greater than 0 and less than 1, got 1.0"),
    (GEN, "general.capacity_type", "spot", f"{GEN}.general.capacity_type",
     "must be 'ON_DEMAND' or 'SPOT', got 'spot'; did you mean 'SPOT'?"),
    ("eks-platform:network", "azs", [], "eks-platform:network.azs", "is empty; list the AZs"),
    (GEN, "general.generations", {}, f"{GEN}.general.generations", "is empty; add the generation"),
    ("eks-platform:access", "role_mappings.0.username", "u" * 129, "eks-platform:access.role_mappings[0].username",
     "is 129 characters long, at most 128 allowed"),
])
def test_constraints_name_the_whole_range_and_what_to_write(dev_raw, section, path, value, key, words):
    issues = _issues(_set(dev_raw, section, path, value))
    assert any(i.startswith(f"{key}: {words}") for i in issues), issues


def test_aws_settings_are_the_installed_providers():
    """The pulumi-aws keys a typo is compared with are the pinned provider's (its config/vars.py)."""
    import re

    import pulumi_aws

    from infra.config import AWS_SETTINGS

    source = (Path(pulumi_aws.__file__).parent / "config" / "vars.py").read_text()
    assert sorted(AWS_SETTINGS) == sorted(set(re.findall(r"__config__\.get\w*\('(\w+)'", source)))


@pytest.mark.parametrize("key, words", [
    ("aws:regoin", "not a pulumi-aws setting, so the provider never reads it; remove it or fix the spelling (did you "
                   "mean aws:region?)"),
    ("aws:profle", "did you mean aws:profile?"),
    ("asw:region", "unknown namespace 'asw', so no one reads this key; did you mean aws:region?"),
    ("region", "has no namespace, so the program never reads it; write it as namespace:name (did you mean "
               "aws:region?)"),
])
def test_keys_outside_the_project_namespace_are_checked_too(dev_raw, key, words):
    raw = {**copy.deepcopy(dev_raw), key: "eu-west-1"}
    assert any(issue.startswith(f"{key}: ") and words in issue for issue in _issues(raw)), _issues(raw)


def test_other_providers_keys_are_left_alone(dev_raw):
    raw = {**copy.deepcopy(dev_raw), "kubernetes:context": "x", "aws:profile": "ops", "random:seed": 1}
    assert from_mapping("dev", raw).region == "eu-west-1"


def test_addon_hosts_are_not_judged_on_the_pools_that_validated(dev_raw):
    """With the pool that hosts CoreDNS failing on its own, the pools left over would all look unable to host it:
    that check waits for every pool, and only the real problem is reported."""
    spare = {**copy.deepcopy(dev_raw[GEN]["general"]), "min_size": 0, "desired_size": 0}
    raw = _set(_set(dev_raw, GEN, "spare", spare), GEN, "general.max_size", 0)
    issues = _issues(raw)
    assert [i.split(":", 2)[1] for i in issues] == ["node_pools.general.max_size"], issues


def test_a_stack_file_that_is_not_utf8_names_the_byte_and_line(tmp_path):
    text = (ROOT / "Pulumi.dev.yaml").read_bytes()
    (tmp_path / "Pulumi.dev.yaml").write_bytes(text.replace(b"name: eks-dev", b"name: eks-d\xe9v"))
    line = text[:text.index(b"name: eks-dev")].count(b"\n") + 1
    with pytest.raises(ConfigError) as caught:
        read_stack_file("dev", tmp_path)
    offset = text.index(b"name: eks-dev") + len(b"name: eks-d")
    assert str(caught.value) == (f"Pulumi.dev.yaml is not UTF-8 text (byte 0xe9 at offset {offset}, line {line}); "
                                 f"save it as UTF-8")


def test_every_duplicate_key_is_named_with_its_lines():
    from ruamel.yaml import YAML

    from infra.sections.source import duplicate_keys

    text = ("config:\n  aws:region: a\n  eks-platform:access:\n    role_mappings:\n      - role_arn: x\n"
            "        role_arn: y\n  aws:region: b\n  aws:region: c\n")
    assert [str(issue) for issue in duplicate_keys(YAML(typ="safe").compose(text))] == [
        "eks-platform:access.role_mappings[0].role_arn: given twice (lines 5 and 6); remove one",
        "aws:region: given 3 times (lines 2, 7 and 8); keep one"]


def test_a_committed_stack_file_is_checked_for_shape_only():
    """An old revision's values need not pass today's checks; an empty pool or a generation without an AMI type
    has nothing to compare, and a wrong shape names every key at once."""
    from infra.sections.source import generation_amis

    config = {"eks-platform:node_pools": {"general": {"generations": {"blue": {"ami_type": "AL2_x86_64"},
                                                                      "green": None, "red": {}}},
                                          "spare": None, "legacy": {"instance_types": ["m5.large"]}}}
    assert generation_amis(config, "f") == {"general": {"blue": "AL2_x86_64"}, "spare": {}, "legacy": {}}
    broken = {"eks-platform:node_pools": {"a": ["x"], "b": {"generations": "blue"}, "c": {"generations": {"g": 3}}}}
    with pytest.raises(ConfigError) as caught:
        generation_amis(broken, "Pulumi.dev.yaml at v1")
    assert [issue.key for issue in caught.value.issues] == [
        "eks-platform:node_pools.a", "eks-platform:node_pools.b.generations", "eks-platform:node_pools.c.generations.g"]
    assert caught.value.render().startswith("Pulumi.dev.yaml at v1: 3 config problems:")
