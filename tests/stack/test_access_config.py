"""Validation of eks-platform:access and eks-platform:secrets: clear errors naming the key and the fix."""
from __future__ import annotations

import copy

import pytest

from infra.config import ConfigError, check_auth_mode_history, from_mapping, load_stack_config, read_stack_file

ADMIN = "arn:aws:iam::111111111111:role/platform-admin"


def _with(env: str, section: str, change) -> dict:
    raw = copy.deepcopy(read_stack_file(env))
    change(raw[f"eks-platform:{section}"])
    return raw


def _problems(raw: dict, env: str = "dev") -> str:
    with pytest.raises(ConfigError) as error:
        from_mapping(env, raw)
    return error.value.render()


def test_real_stack_files_are_valid():
    assert load_stack_config("dev").access.authentication_mode == "API_AND_CONFIG_MAP"
    assert load_stack_config("prod").secrets.rotation is True


def test_mapping_to_system_masters_is_refused_for_anyone_but_the_admin_role():
    def change(access):
        access["role_mappings"].append({"role_arn": "arn:aws:iam::111111111111:role/ci-legacy",
                                        "username": "ci", "groups": ["system:masters"]})
    message = _problems(_with("dev", "access", change))
    assert "eks-platform:access" in message
    assert "ci-legacy to system:masters" in message and "admin_role_arns" in message


def test_the_configured_admin_role_may_map_to_system_masters():
    def change(access):
        access["role_mappings"].append({"role_arn": ADMIN, "username": "admin", "groups": ["system:masters"]})
    cfg = from_mapping("dev", _with("dev", "access", change))
    assert cfg.access.role_mappings[-1].role_arn == ADMIN


@pytest.mark.parametrize("group", ["system:nodes", "system:bootstrappers", "system:authenticated"])
def test_other_reserved_groups_are_refused(group):
    def change(access):
        access["role_mappings"][0]["groups"] = [group]
    message = _problems(_with("dev", "access", change))
    assert "eks-platform:access.role_mappings[0].groups" in message and "reserved" in message


@pytest.mark.parametrize("repo", ["acme/eks-platform", "eks-platform.git", "*", "eks-*", "..", "my repo", ""])
def test_bad_repository_names_are_refused(repo):
    message = _problems(_with("dev", "access", lambda access: access["github"].__setitem__("repo", repo)))
    assert "eks-platform:access.github.repo" in message


@pytest.mark.parametrize("org", ["-acme", "acme-", "ac--me", "acme/x", "a" * 40, "*"])
def test_bad_organization_names_are_refused(org):
    message = _problems(_with("dev", "access", lambda access: access["github"].__setitem__("org", org)))
    assert "eks-platform:access.github.org" in message


@pytest.mark.parametrize("environment", ["*", "prod*", "pr od", "repo:x"])
def test_github_environments_that_would_widen_the_trust_are_refused(environment):
    raw = _with("prod", "access", lambda access: access["github"].__setitem__("deploy_environment", environment))
    assert "eks-platform:access.github.deploy_environment" in _problems(raw, "prod")


def test_bad_role_arns_and_duplicate_mappings_are_refused():
    raw = _with("dev", "access", lambda access: access["admin_role_arns"].append("arn:aws:iam::1234:user/bob"))
    assert "eks-platform:access.admin_role_arns[1]" in _problems(raw)
    raw = _with("dev", "access", lambda access: access["role_mappings"].append(dict(access["role_mappings"][0])))
    assert "twice" in _problems(raw)


def test_unknown_auth_mode_is_refused_with_the_allowed_ones():
    raw = _with("dev", "access", lambda access: access.__setitem__("authentication_mode", "CONFIGMAP"))
    message = _problems(raw)
    assert "eks-platform:access.authentication_mode" in message and "API_AND_CONFIG_MAP" in message


@pytest.mark.parametrize("deployed, wanted, refused", [
    ("API", "API_AND_CONFIG_MAP", True), ("API", "CONFIG_MAP", True), ("API_AND_CONFIG_MAP", "CONFIG_MAP", True),
    ("CONFIG_MAP", "API", False), ("API_AND_CONFIG_MAP", "API", False), (None, "CONFIG_MAP", False),
])
def test_going_backwards_in_auth_mode_is_refused_against_the_deployed_mode(deployed, wanted, refused):
    raw = _with("dev", "access", lambda access: access.__setitem__("authentication_mode", wanted))
    issues = check_auth_mode_history(from_mapping("dev", raw), deployed)
    assert bool(issues) is refused
    if refused:
        assert issues[0].key == "eks-platform:access.authentication_mode"
        assert f"from {deployed} to {wanted}" in issues[0].problem


def test_secret_for_an_unknown_service_and_bad_kinds_are_refused():
    raw = _with("dev", "secrets", lambda s: s["services"].__setitem__("billing", {"key": {"description": "x"}}))
    assert "eks-platform:secrets.services.billing: no service 'billing'" in _problems(raw)

    def external_rotation(s):
        s["services"]["worker"]["queue-token"]["rotation_days"] = 30
    assert "no generator to rotate" in _problems(_with("dev", "secrets", external_rotation))

    def database_without_target(s):
        del s["services"]["api"]["database"]["database"]
    assert "needs a `database:` block" in _problems(_with("dev", "secrets", database_without_target))

    def bad_key(s):
        s["services"]["api"]["Bad Key"] = {"description": "x"}
    assert "secret key api.Bad Key is invalid" in _problems(_with("dev", "secrets", bad_key))



def test_previews_need_an_environment_of_their_own():
    """A preview environment equal to a deploy environment would let pull-request code assume a role that writes."""
    raw = _with("prod", "access", lambda access: access["github"].__setitem__("preview_environment", "infra-prod"))
    message = _problems(raw, "prod")
    assert "eks-platform:access.github" in message and "preview_environment 'infra-prod'" in message
    raw = _with("prod", "access", lambda access: access["github"].__setitem__("preview_environment", "pr-*"))
    assert "eks-platform:access.github.preview_environment" in _problems(raw, "prod")


@pytest.mark.parametrize("change, key, words", [
    (lambda a: a["admin_role_arns"].append(ADMIN), "admin_role_arns[1]", "listed twice (also admin_role_arns[0])"),
    (lambda a: a["admin_role_arns"].append(ADMIN.replace("role/platform-admin", "role/ops/Platform-Admin")),
     "admin_role_arns[1]", "path and case do not make it another role"),
    (lambda a: a["role_mappings"].append({"role_arn": "arn:aws:iam::111111111111:role/x/developers", "username": "d",
                                          "groups": ["g"]}), "role_mappings[1].role_arn", "maps"),
    (lambda a: a["role_mappings"][0].__setitem__("role_arn", ADMIN.replace("role/", "role/team/")),
     "role_mappings[0].role_arn", f"is the admin role {ADMIN} (admin_role_arns[0]) under another path"),
    (lambda a: a.__setitem__("cluster_creator_arn", ADMIN.replace("platform-admin", "Platform-Admin")),
     "cluster_creator_arn", "under another path or case"),
])
def test_one_iam_role_gets_one_entry_whatever_its_path_or_case(change, key, words):
    """IAM role names are unique per account regardless of path and case, so two spellings are one principal:
    EKS would refuse its second access entry (409) and aws-auth would map it twice."""
    message = _problems(_with("dev", "access", change))
    assert f"eks-platform:access.{key}: " in message and words in message, message


def test_an_admin_listed_in_role_mappings_with_the_same_arn_is_one_principal():
    """The mapping only gives the admin its username and groups (infra/components/access.py merges them)."""
    def change(access):
        access["role_mappings"].append({"role_arn": ADMIN, "username": "admin:{{SessionName}}", "groups": ["ops"]})
    assert from_mapping("dev", _with("dev", "access", change)).access.role_mappings[-1].role_arn == ADMIN
