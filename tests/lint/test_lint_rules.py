"""invoke lint's fast checks: the real tree is clean, and each seeded break is caught by the right rule."""
from __future__ import annotations

from pathlib import Path

import pytest

from infra.lint import runner as lint
from infra.ops.io import manifests
from infra.ops.io.manifests import K8S_ROOT
from tests.support.cli import invoke
from tests.support.k8s_tree import FAST_CHECKS, VERSIONS, container, copy_tree, edit, pod

# Seeded breaks need only the checks that can see them (schema and yamllint are the slow ones); the
# clean-tree test runs every fast check.
STRUCTURE = ("render", "deprecations", "rules")


def run(root: Path, checks: tuple[str, ...] = STRUCTURE) -> lint.Report:
    return lint.run(root, checks=checks, versions=VERSIONS)


def test_real_tree_is_clean_against_the_stack_versions():
    report = lint.run(K8S_ROOT, checks=FAST_CHECKS)  # versions read from Pulumi.<env>.yaml
    assert report.findings == []
    assert report.overlays == ("dev", "prod")
    assert not report.failed


def _drop_liveness(docs):
    del container(docs)["livenessProbe"]



def _privileged(docs):
    container(docs)["securityContext"]["privileged"] = True


def _same_probes(docs):
    c = container(docs)
    c["livenessProbe"]["httpGet"] = dict(c["readinessProbe"]["httpGet"])


def _no_prestop(docs):
    del container(docs)["lifecycle"]


def _short_grace(docs):
    pod(docs)["terminationGracePeriodSeconds"] = 5


def _no_zone_spread(docs):
    del pod(docs)["topologySpreadConstraints"]


def _no_logging_mount(docs):
    container(docs)["volumeMounts"] = [m for m in container(docs)["volumeMounts"] if m["name"] != "logging-config"]


def _no_timeout(docs):
    del container(docs)["readinessProbe"]["timeoutSeconds"]


def _writable_root(docs):
    del container(docs)["securityContext"]["readOnlyRootFilesystem"]


def _no_revision_limit(docs):
    del next(d for d in docs if d["kind"] == "Deployment")["spec"]["revisionHistoryLimit"]


def _typo_field(docs):
    container(docs)["readinessprobe"] = container(docs).pop("readinessProbe")


def _token_mounted(docs):
    pod(docs)["automountServiceAccountToken"] = True


BROKEN_WORKER = [
    (_drop_liveness, "rules/probes", "no livenessProbe"),
    (_privileged, "rules/security", "is privileged"),
    (_same_probes, "rules/probes-split", "same endpoint"),
    (_no_prestop, "rules/prestop", "no preStop"),
    (_short_grace, "rules/prestop", "not less than terminationGracePeriodSeconds"),
    (_no_zone_spread, "rules/spread", "across zones"),
    (_no_logging_mount, "rules/logging-config", "logging-config"),
    (_no_timeout, "rules/probes", "timeoutSeconds"),
    (_writable_root, "rules/security", "writable"),
    (_no_revision_limit, "rules/rollout", "revisionHistoryLimit"),
    (_typo_field, "schema", "'readinessprobe' was unexpected"),
    (_token_mounted, "rules/service-account-token", "mounts a service-account token"),
]


@pytest.mark.parametrize("change, rule, words", BROKEN_WORKER, ids=[b[0].__name__ for b in BROKEN_WORKER])
def test_each_rule_fails_on_a_seeded_broken_worker(tmp_path, change, rule, words):
    root = copy_tree(tmp_path)
    edit(root / "base/worker/deployment.yaml", change)
    report = run(root, STRUCTURE + ("schema",) if rule == "schema" else STRUCTURE)
    hits = [f for f in report.findings if f.rule == rule and words in f.problem]
    assert hits, report.findings
    assert report.failed
    assert {f.resource for f in hits} >= {"Deployment/apps-dev/worker", "Deployment/apps-prod/worker"}
    assert all(f.file.endswith("base/worker/deployment.yaml") and f.fix for f in hits)
    assert not [f for f in report.findings if "api" in f.resource or "scheduler" in f.resource]


def test_missing_limits_fail(tmp_path):
    root = copy_tree(tmp_path)
    for path in (root / "base/worker/deployment.yaml", root / "overlays/dev/patches/worker.yaml",
                 root / "overlays/prod/patches/worker.yaml"):
        edit(path, lambda docs: container(docs)["resources"].pop("limits"))
    report = run(root)
    assert {(f.rule, f.resource, f.problem) for f in report.findings} == {
        ("rules/resources", f"Deployment/apps-{env}/worker", "container worker has no limits for cpu, memory")
        for env in ("dev", "prod")}
    assert report.findings[0].file.endswith("base/worker/deployment.yaml")


def test_latest_tag_fails(tmp_path):
    root = copy_tree(tmp_path)
    kustomization = root / "overlays/prod/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace('newTag: "0.1.0"', "newTag: latest", 1))
    report = run(root)
    assert [(f.rule, f.resource) for f in report.findings] == [("rules/image-tag", "Deployment/apps-prod/api")]
    assert "latest" in report.findings[0].problem


def test_untagged_image_fails(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "base/scheduler/cronjob.yaml", lambda docs: container(docs, "CronJob").update(image="busybox"))
    report = run(root)
    assert {f.rule for f in report.findings} == {"rules/image-tag"}
    assert "untagged" in report.findings[0].problem


def test_removed_pdb_api_fails_as_removed_not_as_unknown_schema(tmp_path):
    root = copy_tree(tmp_path)
    pdb = root / "base/worker/pdb.yaml"
    pdb.write_text(pdb.read_text().replace("apiVersion: policy/v1", "apiVersion: policy/v1beta1"))
    report = run(root)
    assert {(f.rule, f.resource) for f in report.findings} == {
        ("deprecations/removed", "PodDisruptionBudget/apps-dev/worker"),
        ("deprecations/removed", "PodDisruptionBudget/apps-prod/worker")}
    finding = report.findings[0]
    assert finding.failed and "1.25" in finding.problem and finding.fix == "move to policy/v1"


def test_api_removed_in_the_next_version_fails_before_the_upgrade(tmp_path):
    root = copy_tree(tmp_path)
    (root / "base/shared/flowschema.yaml").write_text(
        "apiVersion: flowcontrol.apiserver.k8s.io/v1beta3\nkind: FlowSchema\nmetadata:\n  name: apps\n"
        "spec:\n  priorityLevelConfiguration:\n    name: workload-low\n")
    edit(root / "base/shared/kustomization.yaml", lambda docs: docs[0]["resources"].append("flowschema.yaml"))
    report = lint.run(root, checks=("deprecations",), versions=VERSIONS)  # 1.31: removed in 1.32
    assert {f.rule for f in report.findings} == {"deprecations/removed"} and report.failed
    early = lint.run(root, checks=("deprecations",), versions={"dev": VERSIONS["dev"].__class__(1, 29),
                                                                 "prod": VERSIONS["prod"]})
    dev = [f for f in early.findings if "dev" in f.resource]
    assert dev and dev[0].severity == "warning"  # 1.29: deprecated, removal is two upgrades away


def test_pdb_that_blocks_drains_fails(tmp_path):
    root = copy_tree(tmp_path)

    def min_available(docs):
        del docs[0]["spec"]["maxUnavailable"]
        docs[0]["spec"]["minAvailable"] = 1
    edit(root / "base/worker/pdb.yaml", min_available)
    report = run(root)
    # dev runs one worker, so minAvailable 1 blocks every eviction; prod runs three, which is fine
    assert [(f.rule, f.resource) for f in report.findings] == [("rules/pdb-blocks-drain", "Deployment/apps-dev/worker")]


def test_missing_pdb_fails(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "base/scheduler/kustomization.yaml", lambda docs: docs[0]["resources"].remove("pdb.yaml"))
    assert {(f.rule, f.resource) for f in run(root).findings} == {
        ("rules/pdb", "CronJob/apps-dev/scheduler"), ("rules/pdb", "CronJob/apps-prod/scheduler")}


def test_replicas_on_an_autoscaled_deployment_fails(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "overlays/dev/kustomization.yaml", lambda docs: docs[0]["replicas"].append({"name": "api", "count": 2}))
    assert [f.rule for f in run(root).findings] == ["rules/hpa-owns-replicas"]


def test_missing_default_deny_fails(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "base/shared/networkpolicy.yaml", lambda docs: docs.pop(0))
    assert [(f.rule, f.resource) for f in run(root).findings] == [
        ("rules/default-deny", "Namespace/apps-dev"), ("rules/default-deny", "Namespace/apps-prod")]


def test_cronjob_without_bounds_fails(tmp_path):
    root = copy_tree(tmp_path)

    def unbounded(docs):
        docs[0]["spec"]["concurrencyPolicy"] = "Allow"
        del docs[0]["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    edit(root / "base/scheduler/cronjob.yaml", unbounded)
    assert sorted(f.problem for f in run(root).findings if "dev" in f.resource) == [
        "a hung run is never stopped", "concurrencyPolicy allows overlapping runs"]


def test_yamllint_reports_file_and_line(tmp_path):
    root = copy_tree(tmp_path)
    service = root / "base/api/service.yaml"
    service.write_text(service.read_text().replace("  type: ClusterIP", "  type: ClusterIP   "))
    report = lint.run(root, checks=("yamllint",), versions=VERSIONS)
    assert [(f.rule, f.file.rsplit("/", 1)[-1]) for f in report.findings] == [
        ("yamllint/trailing-spaces", "service.yaml:6")]


def test_kustomize_error_is_a_finding_for_the_overlay(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "overlays/prod/kustomization.yaml", lambda docs: docs[0]["resources"].append("../../base/missing"))
    report = run(root)
    assert [(f.rule, f.resource) for f in report.findings] == [("render", "overlay prod")]
    assert "missing" in report.findings[0].problem


def test_unreadable_stack_version_is_reported_not_skipped(tmp_path):
    root = copy_tree(tmp_path)
    report = lint.run(root, checks=("schema",), versions={"dev": VERSIONS["dev"], "prod": "Pulumi.prod.yaml: bad"})
    assert [(f.rule, f.file) for f in report.findings] == [("stack-config", "Pulumi.prod.yaml")]


def test_check_selection_refuses_unknown_names():
    assert lint.select(skip=["checkov", "dockerfiles", "policy"]) == FAST_CHECKS
    assert lint.select(only=["rules", "yamllint"]) == ("yamllint", "rules")
    with pytest.raises(lint.Selection, match="--only: unknown check nope; choose from yamllint"):
        lint.select(only=["nope"])
    with pytest.raises(lint.Selection, match="--skip: unknown check nope; choose from yamllint, .*, extra$"):
        lint.select(skip=["nope"], known=(*lint.CHECKS, "extra"))


@pytest.mark.parametrize("only, skip", [(["checkov"], ["checkov"]), ([], list(lint.CHECKS))])
def test_check_selection_refuses_to_run_nothing(only, skip):
    with pytest.raises(lint.Selection, match="leaves no check to run") as caught:
        lint.select(only=only, skip=skip)
    assert caught.value.exit_code == 2


def test_memory_limit_other_than_the_request_fails(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "overlays/dev/patches/worker.yaml", lambda docs: container(docs)["resources"]["limits"].update(
        memory="384Mi"))
    findings = run(root).findings
    assert [(f.rule, f.resource) for f in findings] == [("rules/resources-memory", "Deployment/apps-dev/worker")]
    assert "limit 384Mi differs from its request 192Mi" in findings[0].problem
    assert "requests.memory" in findings[0].fix


def test_memory_limit_equal_to_the_request_in_other_units_passes(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "overlays/dev/patches/worker.yaml", lambda docs: container(docs)["resources"]["limits"].update(
        memory="0.1875Gi"))  # = 192Mi
    assert run(root).findings == []


def test_cpu_limit_below_the_request_fails(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "overlays/prod/patches/worker.yaml", lambda docs: container(docs)["resources"]["limits"].update(
        cpu="200m"))  # request 250m
    assert [(f.rule, f.resource) for f in run(root).findings] == [("rules/resources", "Deployment/apps-prod/worker")]


def test_token_from_the_service_account_default_fails(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "base/worker/deployment.yaml", lambda docs: pod(docs).pop("automountServiceAccountToken"))
    assert run(root).findings == []  # the worker ServiceAccount says false: the pod inherits it
    edit(root / "base/worker/serviceaccount.yaml", lambda docs: docs[0].pop("automountServiceAccountToken"))
    findings = run(root).findings
    assert {(f.rule, f.resource) for f in findings} == {
        ("rules/service-account-token", f"Deployment/apps-{env}/worker") for env in ("dev", "prod")}
    assert "neither the pod nor ServiceAccount worker sets automountServiceAccountToken: false" in findings[0].problem


def test_missing_patch_file_is_reported_with_kustomizes_message(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "overlays/prod/kustomization.yaml",
         lambda docs: docs[0]["patches"].append({"path": "patches/missing.yaml"}))
    [finding] = run(root).findings
    assert (finding.rule, finding.resource) == ("render", "overlay prod")
    assert "\n" not in finding.problem and finding.problem.strip() not in ("", ">")
    assert "patches/missing.yaml" in finding.problem and "no such file or directory" in finding.problem
    assert "kustomize-" not in finding.problem  # the scratch wrapper's layer is not shown


KLOG_MULTILINE = """E1201 19:37:08.499988   10580 run.go:72] "command failed" err=<
\ttrouble configuring builtin PatchTransformer with config: `
\tpath: nothere.yaml
\t`: failed to get the patch file from path(nothere.yaml): no such file or directory
 >
"""
KLOG_QUOTED = 'E1201 19:40:01.211236   12775 run.go:72] "command failed" err="invalid Kustomization: \\"x\\" bad"\n'


@pytest.mark.parametrize("stderr, message", [
    (KLOG_MULTILINE, "trouble configuring builtin PatchTransformer with config: ` path: nothere.yaml `: failed to "
                     "get the patch file from path(nothere.yaml): no such file or directory"),
    (KLOG_QUOTED, 'invalid Kustomization: "x" bad'),
    ("error: unable to find one of 'kustomization.yaml'\n", "unable to find one of 'kustomization.yaml'"),
], ids=["klog-multiline", "klog-quoted", "plain"])
def test_kustomize_error_is_one_line_of_kustomizes_own_message(stderr, message):
    assert manifests.kustomize_error(stderr) == message


def test_pre_commit_hooks_run_the_same_checks():
    import shlex

    import yaml

    repo = K8S_ROOT.parents[1]
    hooks = [h for h in yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
             if h["entry"].startswith(".venv/bin/invoke lint ")]  # other hooks (e.g. ci.check) are not lint's
    covered = []
    for hook in hooks:
        words = shlex.split(hook["entry"])
        assert words[:4] == [".venv/bin/invoke", "lint", "--only", words[3]] and not hook["pass_filenames"]
        covered += lint.select(only=words[3].split(","))
    assert set(covered) == set(lint.CHECKS)
    yamllint_hook = next(h for h in hooks if h["id"] == "yamllint")
    done = invoke(*shlex.split(yamllint_hook["entry"])[1:], cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_field_of_the_wrong_type_is_a_finding_not_a_crash(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "base/worker/deployment.yaml", lambda docs: pod(docs).update(terminationGracePeriodSeconds="soon"))
    findings = lint.run(root, checks=("rules",), versions=VERSIONS).findings  # no schema check to catch it first
    assert {(f.rule, f.resource) for f in findings} == {
        ("rules/prestop", f"Deployment/apps-{env}/worker") for env in ("dev", "prod")}
    assert all("cannot check" in f.problem and f.failed for f in findings)


def test_an_overlay_that_renders_nothing_fails_instead_of_passing_every_check(tmp_path):
    root = copy_tree(tmp_path)

    def empty(docs):
        docs[0]["resources"] = []
        for key in ("images", "replicas", "patches"):
            docs[0].pop(key)
    edit(root / "overlays/dev/kustomization.yaml", empty)
    [finding] = run(root).findings
    assert (finding.rule, finding.resource, finding.failed) == ("render", "overlay dev", True)
    assert "renders no objects" in finding.problem


def test_yamllint_names_a_file_that_is_not_utf8_and_skips_a_directory_named_like_yaml(tmp_path):
    root = copy_tree(tmp_path)
    (root / "base/api/notes.yaml").write_bytes(b"a: 1\nb: caf\xe9\n")
    (root / "base/api/old.yaml").mkdir()
    report = lint.run(root, checks=("yamllint",), versions=VERSIONS)
    assert [(f.rule, f.file.rsplit("/", 1)[-1], f.problem) for f in report.findings] == [
        ("yamllint/encoding", "notes.yaml", "not UTF-8 text (byte 0xe9 at offset 11, line 2)")]
