"""The traffic edge: the AWS Load Balancer Controller's IRSA role carries exactly its release's upstream policy.

The controller calls what its own version needs (ModifyIpPools, tag-on-create conditions, WAF and Shield reads);
a policy trimmed or edited by hand passes `pulumi up` and then fails reconciles one AWS call at a time.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from pulumi_policy import PolicyResource

from infra.charts import EDGE_CONTROLLER, EDGE_CONTROLLER_POLICY
from infra.policy.rules.iam import ROLE, role_documents
from infra.policy.support import MANDATORY, as_list, documents, get, label, of_type, plain, stack_rule, statements


def _subjects(role: PolicyResource) -> set[str]:
    """The service accounts a web-identity trust names (`<issuer>:sub` under StringEquals)."""
    return {str(value) for prop, doc in documents(ROLE, role.props) if prop == "assumeRolePolicy"
            for statement in statements(doc)
            for key, values in (get(statement, "Condition.StringEquals") or {}).items() if str(key).endswith(":sub")
            for value in as_list(values)}


def _canonical(statement: object) -> str:
    return json.dumps(plain(statement), sort_keys=True)


def _controller_policy(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    upstream = json.loads(EDGE_CONTROLLER_POLICY.read_text())
    wanted = {_canonical(statement) for statement in upstream["Statement"]}
    docs = role_documents(resources)
    for role in of_type(resources, ROLE):
        if not any(s.startswith("system:serviceaccount:") and s.endswith(f":{EDGE_CONTROLLER}") for s in _subjects(role)):
            continue
        carried = docs[role.urn]
        if len(carried) != 1:
            yield role.urn, (f"{label(role)} (the {EDGE_CONTROLLER}'s IRSA role) carries {len(carried)} permission "
                             f"documents; it must carry exactly the upstream policy {EDGE_CONTROLLER_POLICY.name}")
            continue
        have = {_canonical(statement) for statement in statements(carried[0])}
        missing, extra = len(wanted - have), len(have - wanted)
        if missing or extra:
            yield role.urn, (f"{label(role)} (the {EDGE_CONTROLLER}'s IRSA role) differs from the upstream policy "
                             f"{EDGE_CONTROLLER_POLICY.name}: {missing} statement(s) missing, {extra} not upstream; "
                             f"the controller fails the reconciles whose calls it lacks")


controller_policy_upstream = stack_rule(
    "edge-controller-policy-upstream",
    f"The {EDGE_CONTROLLER}'s IRSA role carries exactly the IAM policy its pinned release publishes "
    f"(infra/components/data/{EDGE_CONTROLLER_POLICY.name}, docs/install/iam_policy.json of the release; checked "
    f"2026-12-05), no more (least privilege) and no less (failed reconciles). Source: "
    f"https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/deploy/installation/ (checked 2026-12-05).",
    _controller_policy, MANDATORY,
    "pass the data file unchanged (infra/components/edge.py controller_policy); update it with the chart pin")

POLICIES = [controller_policy_upstream]
