"""invoke lint's edge rules: the shipped routes pass; each seeded break of the api's route is refused by its rule."""
from __future__ import annotations

from pathlib import Path

import pytest

from infra.lint import runner as lint
from infra.lint.edge_rules import EdgeFacts
from tests.support.k8s_tree import VERSIONS, container, copy_tree, edit

CHECKS = ("render", "rules")
ALB = "alb.ingress.kubernetes.io/"
EDGES = {"dev": EdgeFacts(frozenset({"alb"}), frozenset({"api.dev.example.com"}), stack_file="Pulumi.dev.yaml"),
         "prod": EdgeFacts(frozenset({"alb"}), frozenset({"api.example.com"}), stack_file="Pulumi.prod.yaml")}


def run(root: Path, edges: dict[str, EdgeFacts] = EDGES) -> lint.Report:
    return lint.run(root, checks=CHECKS, versions=VERSIONS, edges=edges)


def ingress(docs):
    return next(d for d in docs if d["kind"] == "Ingress")


def annotations(docs):
    return ingress(docs)["metadata"].setdefault("annotations", {})


def test_shipped_routes_pass_with_the_stacks_own_edge_config():
    report = lint.run(checks=CHECKS)  # edges read from Pulumi.<env>.yaml
    assert [f for f in report.findings if "edge" in f.rule] == []
    assert not report.failed


def _nginx_class(docs):
    ingress(docs)["spec"]["ingressClassName"] = "nginx"


def _unknown_class(docs):
    ingress(docs)["spec"]["ingressClassName"] = "traefik"


def _no_class(docs):
    del ingress(docs)["spec"]["ingressClassName"]


def _nginx_annotation(docs):
    annotations(docs)["nginx.ingress.kubernetes.io/ssl-redirect"] = "true"


def _issuer_annotation(docs):
    annotations(docs)["cert-manager.io/cluster-issuer"] = "letsencrypt-prod"


def _host_not_under_tls(docs):
    ingress(docs)["spec"]["tls"] = [{"hosts": ["other.example.invalid"]}]


def _tls_secret(docs):
    ingress(docs)["spec"]["tls"][0]["secretName"] = "api-tls"


def _health_elsewhere(docs):
    annotations(docs)[f"{ALB}healthcheck-path"] = "/healthz"


def _long_deregistration(docs):
    annotations(docs)[f"{ALB}target-group-attributes"] = "deregistration_delay.timeout_seconds=30"


def _default_deregistration(docs):
    del annotations(docs)[f"{ALB}target-group-attributes"]


def _instance_targets(docs):
    annotations(docs)[f"{ALB}target-type"] = "instance"


def _plain_http(docs):
    annotations(docs)[f"{ALB}listen-ports"] = '[{"HTTP": 80}]'


BROKEN_ROUTE = [
    (_nginx_class, "rules/edge-retired", "ingress-nginx was retired"),
    (_unknown_class, "rules/edge-class", "ingressClassName traefik is not a class the platform installs"),
    (_no_class, "rules/edge-class", "ingressClassName (unset)"),
    (_nginx_annotation, "rules/edge-retired", "nginx.ingress.kubernetes.io/ssl-redirect needs ingress-nginx"),
    (_issuer_annotation, "rules/edge-retired", "cert-manager.io/cluster-issuer needs cert-manager"),
    (_health_elsewhere, "rules/edge-health", "is not api's readiness path /readyz"),
    (_long_deregistration, "rules/edge-drain", "deregistration delay 30 s is not shorter than api's preStop sleep"),
    (_default_deregistration, "rules/edge-drain", "the default 300 s"),
    (_instance_targets, "rules/edge-target", "target type is not ip"),
    (_plain_http, "rules/edge-tls", "must listen on 443 and redirect 80"),
]


@pytest.mark.parametrize("change, rule, words", BROKEN_ROUTE, ids=[c.__name__ for c, _, _ in BROKEN_ROUTE])
def test_each_broken_route_is_refused_by_its_rule(tmp_path, change, rule, words):
    root = copy_tree(tmp_path)
    edit(root / "base/api/ingress.yaml", change)
    report = run(root)
    hits = [f for f in report.findings if f.rule == rule and words in f.problem]
    assert {f.resource for f in hits} == {"Ingress/apps-dev/api", "Ingress/apps-prod/api"}, report.findings
    assert report.failed and all(f.fix for f in hits)


@pytest.mark.parametrize("change, words", [
    (_host_not_under_tls, "is not under spec.tls, so it has no certificate source"),
    (_tls_secret, "the ALB never reads Secrets")], ids=["host_not_under_tls", "tls_secret"])
def test_a_tls_host_without_a_certificate_source_is_refused(tmp_path, change, words):
    root = copy_tree(tmp_path)
    for env in ("dev", "prod"):  # the overlays set the host and its tls entry
        edit(root / f"overlays/{env}/patches/api.yaml", change)
    hits = [f for f in run(root).findings if f.rule == "rules/edge-tls" and words in f.problem]
    assert {f.resource for f in hits} == {"Ingress/apps-dev/api", "Ingress/apps-prod/api"}


def test_a_host_the_stacks_certificate_does_not_cover_names_the_config_line(tmp_path):
    root = copy_tree(tmp_path)
    edges = {**EDGES, "prod": EdgeFacts(frozenset({"alb"}), frozenset({"www.example.com"}),
                                        stack_file="Pulumi.prod.yaml")}
    report = run(root, edges)
    [finding] = report.findings
    assert (finding.rule, finding.resource) == ("rules/edge-tls", "Ingress/apps-prod/api")
    assert "add `api: api.example.com` to eks-platform:edge.hostnames in Pulumi.prod.yaml" in finding.fix


def test_a_stack_without_an_edge_installs_no_class(tmp_path):
    root = copy_tree(tmp_path)
    report = run(root, {**EDGES, "dev": EdgeFacts.of(None, "Pulumi.dev.yaml")})
    [finding] = report.findings
    assert (finding.rule, finding.resource) == ("rules/edge-class", "Ingress/apps-dev/api")
    assert "installed: none" in finding.problem and "add eks-platform:edge to Pulumi.dev.yaml" in finding.fix


def test_shield_on_in_the_stack_needs_the_annotation(tmp_path):
    root = copy_tree(tmp_path)
    shielded = EdgeFacts(frozenset({"alb"}), frozenset({"api.example.com"}), shield=True)
    assert [f.rule for f in run(root, {**EDGES, "prod": shielded}).findings] == ["rules/edge-shield"]
    edit(root / "overlays/prod/patches/api.yaml",
         lambda docs: annotations(docs).__setitem__(f"{ALB}shield-advanced-protection", "true"))
    assert run(root, {**EDGES, "prod": shielded}).findings == []


def test_a_preStop_shortened_below_the_deregistration_delay_is_caught(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "base/api/deployment.yaml", lambda docs: container(docs)["lifecycle"]["preStop"]["sleep"].update(
        seconds=4))
    assert {f.rule for f in run(root).findings} == {"rules/edge-drain"}


def test_retired_controllers_are_refused_beyond_the_ingress(tmp_path):
    root = copy_tree(tmp_path)

    def from_nginx_namespace(docs):
        policy = next(d for d in docs if d["metadata"]["name"] == "api")
        policy["spec"]["ingress"][0]["from"].append(
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}})

    edit(root / "base/api/networkpolicy.yaml", from_nginx_namespace)
    (root / "base/api/certificate.yaml").write_text(
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: api\n"
        "spec:\n  secretName: api-tls\n  dnsNames: [api.example.com]\n"
        "  issuerRef: {name: letsencrypt-prod, kind: ClusterIssuer}\n")
    edit(root / "base/api/kustomization.yaml", lambda docs: docs[0]["resources"].append("certificate.yaml"))
    findings = [f for f in run(root).findings if f.rule == "rules/edge-retired"]
    assert {(f.resource, f.problem.split(":")[0].split(",")[0]) for f in findings} == {
        ("NetworkPolicy/apps-dev/api", "allows traffic from namespace ingress-nginx"),
        ("NetworkPolicy/apps-prod/api", "allows traffic from namespace ingress-nginx"),
        ("Certificate/apps-dev/api", "Certificate of cert-manager.io"),
        ("Certificate/apps-prod/api", "Certificate of cert-manager.io")}
