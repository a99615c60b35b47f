"""Each upgrade preflight check judged on a passing and a failing fixture, plus the table rendering."""
from __future__ import annotations

from rich.console import Console

from infra import deprecations
from infra.ops.io.eks import AddonBuild, Insight, NodeGroupFacts, SubnetFacts
from infra.ops.lifecycle import preflight
from infra.ops.lifecycle.preflight import FAIL, PASS, SKIP, UNKNOWN, WARN, Check
from infra.versions import KubeVersion

V = KubeVersion.parse


def test_removed_api_in_use_blocks():
    objects = [{"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta3", "kind": "FlowSchema",
                "metadata": {"name": "mine"}},
               {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "apps-dev"}}]
    check = preflight.deprecated_apis(deprecations.scan(objects, V("1.32")), V("1.32"))
    assert check.status == FAIL and "FlowSchema/mine" in check.detail and check.fix
    assert preflight.deprecated_apis(deprecations.scan(objects, V("1.31")), V("1.31")).status == WARN
    assert preflight.deprecated_apis(deprecations.scan(objects[1:], V("1.32")), V("1.32")).status == PASS


BUILDS = [AddonBuild("v1.20.0-eksbuild.1", True), AddonBuild("v1.19.2-eksbuild.1", False)]


def test_addon_kept_when_compatible_else_moved_to_default():
    check, chosen = preflight.addon_compatibility("vpc-cni", "v1.19.2-eksbuild.1", BUILDS, V("1.32"))
    assert (check.status, chosen) == (PASS, "v1.19.2-eksbuild.1")
    check, chosen = preflight.addon_compatibility("vpc-cni", "v1.18.0-eksbuild.1", BUILDS, V("1.32"))
    assert (check.status, chosen) == (PASS, "v1.20.0-eksbuild.1")
    assert "-> v1.20.0-eksbuild.1" in check.detail


def test_kube_proxy_always_follows_the_control_plane():
    builds = [AddonBuild("v1.32.0-eksbuild.2", True), AddonBuild("v1.31.3-eksbuild.2", False)]
    _, chosen = preflight.addon_compatibility("kube-proxy", "v1.31.3-eksbuild.2", builds, V("1.32"))
    assert chosen == "v1.32.0-eksbuild.2"


def test_addon_without_build_or_lookup_failure_blocks():
    check, chosen = preflight.addon_compatibility("coredns", "v1.11.4-eksbuild.2", [], V("1.35"))
    assert (check.status, chosen) == (FAIL, None) and "no coredns build for 1.35" in check.detail
    check, _ = preflight.addon_compatibility("coredns", "v1", None, V("1.32"), error="AccessDenied")
    assert check.status == FAIL and "AccessDenied" in check.detail


def test_addon_builds_that_cannot_be_learned_are_unknown_not_failed():
    """An endpoint without DescribeAddonVersions (moto) leaves the builds unknown: the row says so and why, keeps the
    current build, names the lookup to do by hand, and blocks nothing."""
    check, chosen = preflight.addon_compatibility("vpc-cni", "v1.19.2-eksbuild.1", None, V("1.32"),
                                                  unknown="describe_addon_versions failed: http://x answered HTTP 404")
    assert (check.status, chosen, check.blocks) == (UNKNOWN, None, False)
    assert check.detail == ("cannot learn the builds EKS offers for 1.32 (describe_addon_versions failed: http://x "
                            "answered HTTP 404); the step keeps v1.19.2-eksbuild.1")
    assert "aws eks describe-addon-versions --addon-name vpc-cni --kubernetes-version 1.32" in check.fix
    proxy, _ = preflight.addon_compatibility("kube-proxy", "v1.31.3-eksbuild.2", None, V("1.32"), unknown="lacking")
    assert "kube-proxy should follow the control plane" in proxy.fix
    assert preflight.blocking([check, proxy, Check("AL2 node groups", WARN, "blue runs AL2")]) == []


def test_kubelet_skew_after_the_step():
    assert preflight.kubelet_skew(V("1.32"), {"ng-a": V("1.31"), "node x": V("1.29")}).status == PASS
    check = preflight.kubelet_skew(V("1.33"), {"ng-a": V("1.32"), "node old": V("1.29")})
    assert check.status == FAIL and "node old" in check.detail and "by 4 minors" in check.detail


def test_al2_node_groups_block_from_1_33():
    check = preflight.al2_node_groups(V("1.33"), ["general-blue-a"], "dev", ["general"])
    assert check.status == FAIL and "invoke nodes.migrate --env dev --pool general --to" in check.fix
    assert preflight.al2_node_groups(V("1.32"), ["general-blue-a"], "dev").status == WARN
    assert preflight.al2_node_groups(V("1.33"), [], "dev").status == PASS


def test_insights():
    assert preflight.upgrade_insights(None, V("1.32")).status == SKIP
    failing = [Insight("Deprecated APIs", "ERROR", "uses removed API", "")]
    assert preflight.upgrade_insights(failing, V("1.32")).status == FAIL
    assert preflight.upgrade_insights([Insight("Kubelet skew", "PASSING", "", "")], V("1.32")).status == PASS
    denied = preflight.upgrade_insights(None, V("1.32"), error="AccessDenied")
    assert denied.status == WARN and "AccessDenied" in denied.detail


def test_subnet_without_room_for_surge_nodes_blocks():
    groups = [NodeGroupFacts("general-blue-a", V("1.31"), "AL2_x86_64", "ACTIVE", ("subnet-a",), max_unavailable=2)]
    assert preflight.subnet_ips([SubnetFacts("subnet-a", "eu-west-1a", 500)], groups).status == PASS
    check = preflight.subnet_ips([SubnetFacts("subnet-a", "eu-west-1a", 20)], groups)
    assert check.status == FAIL and "subnet-a (eu-west-1a) has 20 free IPs" in check.detail


def test_table_and_markdown_show_every_row():
    checks = [Check("a", PASS, "fine"), Check("b", FAIL, "broken | badly", "fix it")]
    console = Console(width=200, record=True)
    console.print(preflight.table(checks, "preflight"))
    text = console.export_text()
    assert "broken" in text and "fix it" in text and "FAIL" in text
    lines = preflight.markdown(checks)
    assert lines[0] == "| check | status | detail | fix |" and "broken / badly" in lines[3]
    assert preflight.blocking(checks) == [checks[1]]


def test_markdown_cells_never_carry_markup_or_line_breaks():
    """An error that quotes a web page stays one row of text in the playbook."""
    page = "AWS said: <!doctype html>\n<html><h1>Not Found</h1>\n</html>"
    [_, _, row] = preflight.markdown([Check("add-on coredns", FAIL, page, "retry <later>")])
    assert row == ("| add-on coredns | FAIL | AWS said: &lt;!doctype html> &lt;html>&lt;h1>Not Found&lt;/h1> &lt;/html> "
                   "| retry &lt;later> |")
