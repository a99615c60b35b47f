"""The secret-declared rule: every key a workload reads from `<service>-secrets` is declared by the stack."""
from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import load_stack_config
from infra.lint import runner as lint
from infra.lint import secret_rules
from infra.lint.secret_rules import SecretFacts
from infra.ops.io import manifests
from tests.support.k8s_tree import VERSIONS, container, copy_tree, edit, pod


@pytest.fixture(scope="module")
def dev_facts() -> SecretFacts:
    return SecretFacts.of(load_stack_config("dev").secrets, "Pulumi.dev.yaml")


def findings(root: Path, facts: SecretFacts) -> list[str]:
    objects = manifests.render(root / "overlays" / "dev")
    return [f"{f.resource}: {f.problem} -> {f.fix}" for f in secret_rules.check(objects, facts)]


def test_shipped_overlays_read_only_declared_keys(dev_facts):
    objects = manifests.render(manifests.K8S_ROOT / "overlays" / "dev")
    assert secret_rules.check(objects, dev_facts) == []
    read = {key for m in objects if m.kind in ("Deployment", "CronJob")
            for key in secret_rules._keys_read(secret_rules.Workload(m))}
    # the reader sees every way the shipped services read their Secret (else the clean result proves nothing)
    assert ("worker-secrets", "queue-token") in read and ("scheduler-secrets", "database") in read


def _file_env(name: str, path: str):
    def change(docs):
        container(docs, "Deployment").setdefault("env", []).append({"name": name, "value": path})
    return change


def _key_ref(secret: str, key: str):
    def change(docs):
        container(docs, "Deployment").setdefault("env", []).append(
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    return change


def _items(key: str):
    def change(docs):
        volume = next(v for v in pod(docs)["volumes"] if v["name"] == "secrets")
        volume["secret"]["items"] = [{"key": key, "path": "database"}]
    return change


@pytest.mark.parametrize(("change", "expected"), [
    (_file_env("PAYMENT_KEY_FILE", "/etc/secrets/payment-key"),
     ["Deployment/apps-dev/api: reads key 'payment-key' of Secret api-secrets", "declared: database, session-key",
      "declare eks-platform:secrets.services.api.payment-key in Pulumi.dev.yaml"]),
    (_key_ref("api-secrets", "sesion-key"), ["key 'sesion-key' of Secret api-secrets"]),
    (_key_ref("billing-secrets", "token"), ["reads Secret billing-secrets", "no secrets for service 'billing'",
                                            "declare eks-platform:secrets.services.billing in Pulumi.dev.yaml"]),
    (_items("db-url"), ["key 'db-url' of Secret api-secrets"]),
], ids=["file-path-under-mount", "secret-key-ref-typo", "undeclared-service", "volume-items"])
def test_undeclared_key_is_refused(tmp_path, dev_facts, change, expected):
    root = copy_tree(tmp_path)
    edit(root / "base" / "api" / "deployment.yaml", change)
    [found] = findings(root, dev_facts)
    assert all(fragment in found for fragment in expected), found


def test_paths_outside_the_mount_and_other_secrets_are_not_keys(tmp_path, dev_facts):
    root = copy_tree(tmp_path)
    edit(root / "base" / "api" / "deployment.yaml", _file_env("CA_FILE", "/etc/ssl/certs/ca.pem"))
    edit(root / "base" / "api" / "deployment.yaml", _key_ref("tls-cert", "tls.key"))
    assert findings(root, dev_facts) == []


def test_lint_judges_each_overlay_against_its_own_stack(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "base" / "worker" / "deployment.yaml", _file_env("EXTRA_FILE", "/etc/secrets/extra"))
    report = lint.run(root, checks=("render", "rules"), versions=VERSIONS)
    assert [(Path(f.file).parts[-3:], f.rule) for f in report.findings] == [
        (("base", "worker", "deployment.yaml"), "rules/secret-declared")] * 2
    assert sorted(f.fix for f in report.findings) == [
        f"declare eks-platform:secrets.services.worker.extra in Pulumi.{env}.yaml, or read a declared key"
        for env in ("dev", "prod")]
    assert report.failed


def test_an_unreadable_stack_leaves_the_rule_silent():
    assert secret_rules.check([], secret_rules.UNKNOWN) == []
    assert lint.stack_secrets({"dev": "Pulumi.dev.yaml: not valid YAML"}) == {"dev": secret_rules.UNKNOWN}
