"""Every IAM document in the stack, linted with parliament (duo-labs): malformed ARNs, actions that match no
resource, conditions an action ignores, unknown actions. Those pass `pulumi up` and then deny or allow the
wrong thing at run time, which no mock can see.
"""
from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from pulumi_policy import ResourceValidationArgs

from infra.policy.support import DOCUMENTS, MANDATORY, documents, plain, resource_rule

# parliament's severities, most severe first; findings at or above THRESHOLD are violations.
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO")
THRESHOLD = "MEDIUM"
# Below the threshold, yet a sure failure: an unknown action or service prefix grants nothing (a typo).
ALWAYS = frozenset({"UNKNOWN_ACTION", "UNKNOWN_PREFIX"})
# Findings accepted on purpose, each with the reason. Keep this list short and every entry explained.
ALLOWED: dict[str, str] = {}
# (issue, action) pairs accepted on purpose: parliament matches each statement alone, but these actions authorize
# against two resources at once, and each statement names one of them (so a tag condition can apply to the key).
ALLOWED_ACTIONS: dict[tuple[str, str], str] = {
    ("RESOURCE_MISMATCH", "kms:createalias"): "authorizes on the alias and on the key: one statement each",
    ("RESOURCE_MISMATCH", "kms:deletealias"): "authorizes on the alias and on the key: one statement each",
    ("RESOURCE_MISMATCH", "kms:updatealias"): "authorizes on the alias and on the key: one statement each",
}
# What parliament 1.6.4's bundled service table (2023) lacks, checked 2026-12-05 against the AWS service
# authorization reference: real actions it reports as unknown, and real condition keys it says an action ignores.
KNOWN_NEWER_ACTIONS = frozenset({
    # ELBv2 ModifyIpPools (ALB IPAM pools, 2024), in the AWS Load Balancer Controller's upstream policy:
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_ModifyIpPools.html
    "elasticloadbalancing:modifyippools",
})
KNOWN_NEWER_CONDITIONS = frozenset({
    # Tag-on-create: AddTags allowed only inside CreateTargetGroup/CreateLoadBalancer (the upstream controller policy):
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/userguide/tagging-resources-during-creation.html
    ("elasticloadbalancing:addtags", "elasticloadbalancing:createaction"),
})
_UNKNOWN = re.compile(r"^unknown (?:action (?P<action>\S+)|condition (?P<key>\S+) for action (?P<for>\S+))$")


def _known_newer(issue: str, text: str) -> bool:
    """An UNKNOWN_ACTION / UNKNOWN_CONDITION_FOR_ACTION finding about something listed above (parliament is stale)."""
    found = _UNKNOWN.match(text.lower().strip('"'))
    if not found or issue not in ("UNKNOWN_ACTION", "UNKNOWN_CONDITION_FOR_ACTION"):
        return False
    if found["action"]:
        return found["action"] in KNOWN_NEWER_ACTIONS
    return (found["for"], found["key"]) in KNOWN_NEWER_CONDITIONS


@cache
def _parliament() -> Any:
    with warnings.catch_warnings():  # it imports pkg_resources, deprecated in setuptools
        warnings.simplefilter("ignore")
        import parliament
    return parliament


def findings(doc: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(issue, severity, detail) of each parliament finding on one document that counts as a violation."""
    lib = _parliament()
    policy = lib.analyze_policy_string(json.dumps(plain(doc)))
    found = []
    for finding in policy.findings:
        lib.enhance_finding(finding)
        severity = str(finding.severity or "LOW").upper()
        if finding.issue in ALLOWED or not (finding.issue in ALWAYS or _at_least(severity, THRESHOLD)):
            continue
        detail = finding.detail
        if isinstance(detail, list):  # per-action details: drop the accepted ones
            detail = [item for item in detail if not (isinstance(item, dict) and (
                finding.issue, str(item.get("action", "")).lower()) in ALLOWED_ACTIONS)]
            if not detail:
                continue
        text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
        if _known_newer(finding.issue, text):
            continue
        found.append((finding.issue, severity, text))
    return found


def _at_least(severity: str, threshold: str) -> bool:
    rank = {name: index for index, name in enumerate(SEVERITIES)}
    return rank.get(severity, len(SEVERITIES)) <= rank[threshold]


def _lint(props: Mapping[str, Any], args: ResourceValidationArgs) -> Iterator[str]:
    for prop, doc in documents(args.resource_type, props):
        if prop == "assumeRolePolicy":
            continue  # parliament does not model trust policies (statement.py); iam-federated-trust-pinned does
        for issue, severity, detail in findings(doc):
            yield f"{prop}: parliament {issue} ({severity}): {detail[:300]}"


parliament_lint = resource_rule(
    "iam-parliament",
    f"IAM documents are linted with parliament; findings of severity {THRESHOLD} or higher, and unknown actions, "
    f"are violations unless listed with a reason in infra/policy/rules/parliament.py. Source: "
    f"https://github.com/duo-labs/parliament (1.6.4).",
    DOCUMENTS, _lint, MANDATORY, "fix the document (see parliament's finding); allow-list only with a written reason")

POLICIES = [parliament_lint]
