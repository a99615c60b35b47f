"""Bad input to plan / preview / up, and bad stack configs: one clear line (one per problem for configs), exit 2,
nothing changed (no file, no `pulumi up`). Each config row is a variant of the real Pulumi.dev.yaml in a copy."""
from __future__ import annotations

import subprocess

import pytest

from infra.config import load_stack_config
from tests.support import bad_input as bad
from tests.support.bad_input import committed_on_branch, outputs, row, stack_edit
from tests.support.cli import invoke, spawn

GEN = "eks-platform:node_pools.general"
DEV = load_stack_config("dev").version
BLUE = "ami_type: AL2023_x86_64_STANDARD\n        green:"  # blue's AMI line (green's is followed by its types)
GREEN = "ami_type: AL2023_x86_64_STANDARD\n          instance_types: [t3a.large]"
DEPLOYED_AL2_GREEN = {"nodeGroupAmiTypes": {"general": {"blue": "AL2023_x86_64_STANDARD", "green": "AL2_x86_64"}}}

ARGUMENTS = [
    row("plan-env-missing", "plan", 2, "--env is required", "dev, prod"),
    row("plan-env-unknown", "plan --env staging", 2, "--env 'staging' is not a stack", "dev, prod"),
    row("plan-env-empty", "plan --env ''", 2, "--env is required", "dev, prod"),
    row("plan-env-uppercase", "plan --env DEV", 2, "--env 'DEV' is not a stack", "dev, prod"),
    row("plan-env-path", "plan --env ../dev", 2, "--env '../dev' is not a stack", "dev, prod"),
    row("plan-env-filename", "plan --env Pulumi.dev.yaml", 2, "is not a stack", "dev, prod"),
    row("plan-diff-unknown", "plan --env dev --diff qa", 2, "--diff 'qa' is not a stack", "dev, prod"),
    row("plan-diff-without-env", "plan --diff prod", 2, "--env is required"),
    row("plan-against-unknown-revision", "plan --env dev --against nosuchrev", 2, "--against",
        "name a commit or branch"),
    row("plan-against-ami-changed-in-place", "plan --env dev --against HEAD", 2,
        f"{GEN}.generations.blue.ami_type", "nodes.migrate",
        setup=stack_edit(BLUE, BLUE.replace("AL2023_x86_64_STANDARD", "BOTTLEROCKET_x86_64"))),
    row("preview-env-missing", "preview", 2, "--env is required", "dev, prod"),
    row("preview-env-unknown", "preview --env staging", 2, "--env 'staging' is not a stack"),
    row("preview-env-empty", "preview --env ''", 2, "--env is required"),
    row("up-env-missing", "up --yes", 2, "--env is required", "dev, prod"),
    row("up-env-unknown", "up --env qa --yes", 2, "--env 'qa' is not a stack"),
    row("up-env-uppercase", "up --env PROD --yes", 2, "--env 'PROD' is not a stack"),
    row("preview-ami-changed-vs-deployed", "preview --env dev", 2, f"{GEN}.generations.green.ami_type",
        "nodes.migrate", setup=outputs(DEPLOYED_AL2_GREEN)),
    row("up-ami-changed-vs-deployed", "up --env dev --yes", 2, f"{GEN}.generations.green.ami_type", "nodes.migrate",
        setup=outputs(DEPLOYED_AL2_GREEN)),
    row("up-auth-mode-backwards-vs-deployed", "up --env dev --yes", 2, "eks-platform:access.authentication_mode",
        "access.migrate", setup=outputs({"authenticationMode": "API"})),
    row("preview-auth-mode-backwards-vs-deployed", "preview --env dev", 2, "eks-platform:access.authentication_mode",
        "keep API", setup=outputs({"authenticationMode": "API"})),
    row("up-version-jumps-minors-vs-deployed", "up --env dev --yes", 2, "eks-platform:cluster.version",
        "one minor at a time", "invoke cluster.upgrade --env dev",
        setup=outputs({"clusterVersion": f"1.{DEV.minor - 2}"})),
    row("preview-version-downgrade-vs-deployed", "preview --env dev", 2, "eks-platform:cluster.version",
        "cannot downgrade", f'keep "1.{DEV.minor + 1}"', setup=outputs({"clusterVersion": f"1.{DEV.minor + 1}"})),
    row("plan-diff-itself", "plan --env dev --diff dev", 2, "--diff dev compares dev with itself", "--diff prod"),
    row("up-bad-config", "up --env dev --yes", 2, "eks-platform:network.cidr", "10.10.0.0/16",
        setup=stack_edit("cidr: 10.10.0.0/16", "cidr: 10.10.0.1/16")),
    row("preview-bad-config", "preview --env prod", 2, "eks-platform:node_pools.", "min_size <= desired_size",
        setup=stack_edit("min_size: 1", "min_size: 9", env="prod")),
    # an empty value is refused, not taken for "not given"
    row("plan-diff-empty", "plan --env dev --diff ''", 2, "--diff is empty", "leave --diff out"),
    row("plan-against-empty", "plan --env dev --against ''", 2, "--against is empty"),
    # a revision is resolved to a commit before git sees it: one that looks like an option is no option to git
    row("plan-against-is-a-git-option", "plan --env dev --against=--output=pwned.txt", 2,
        "--against '--output=pwned.txt' is not a commit", "name a commit or branch"),
    row("plan-against-stack-file-not-yaml", "plan --env dev --against broken-yaml", 2,
        "Pulumi.dev.yaml at broken-yaml", "not valid YAML",
        setup=committed_on_branch("broken-yaml", "Pulumi.dev.yaml", "config:\n  eks-platform:node_pools: [general\n")),
    row("plan-against-node-pools-a-list", "plan --env dev --against pools-as-list", 2,
        "Pulumi.dev.yaml at pools-as-list", "not a stack file's shape",
        setup=committed_on_branch("pools-as-list", "Pulumi.dev.yaml", "config:\n  eks-platform:node_pools: [general]\n")),
    row("plan-against-stack-file-a-list", "plan --env dev --against file-a-list", 2, "Pulumi.dev.yaml at file-a-list",
        "not a stack file's shape", setup=committed_on_branch("file-a-list", "Pulumi.dev.yaml", "- config\n")),
    row("plan-extra-argument", "plan --env dev prod", 2, "plan takes no further argument 'prod'"),
    row("preview-flag-of-up", "preview --env dev --yes", 2, "preview has no option --yes"),
    row("task-unknown", "plna --env dev", 2, "no task named 'plna'", "did you mean plan"),
    row("task-unknown-option-before-task", "--no-such-core-flag plan --env dev", 2, "--no-such-core-flag"),
]

# Config rows: (id, snippet of Pulumi.dev.yaml, its replacement, fragments); each runs `invoke plan --env dev`.
CONFIGS = [
    ("az-wrong-region", "azs: [eu-west-1a, eu-west-1b]", "azs: [us-east-1a, eu-west-1b]",
     ("eks-platform:network.azs[0]", "not an AZ of region eu-west-1", "eu-west-1a")),
    ("az-listed-twice", "azs: [eu-west-1a, eu-west-1b]", "azs: [eu-west-1a, eu-west-1a]",
     ("eks-platform:network.azs", "listed twice")),
    ("az-not-a-list", "azs: [eu-west-1a, eu-west-1b]", "azs: eu-west-1a", ("eks-platform:network.azs",)),
    ("cidr-bad-mask", "cidr: 10.10.0.0/16", "cidr: 10.10.0.0/33", ("eks-platform:network.cidr", "10.10.0.0/16")),
    ("cidr-host-bits", "cidr: 10.10.0.0/16", "cidr: 10.10.0.1/16", ("eks-platform:network.cidr", "host bits")),
    ("cidr-public", "cidr: 10.10.0.0/16", "cidr: 8.8.0.0/16", ("eks-platform:network.cidr", "RFC 1918")),
    ("cidr-garbage", "cidr: 10.10.0.0/16", "cidr: ten-ten", ("eks-platform:network.cidr", "write it like")),
    ("cidr-too-small-for-subnets", "private_subnet_prefix: 19", "private_subnet_prefix: 16",
     ("eks-platform:network", "too small")),
    ("service-cidr-overlaps-vpc", 'version: "1.35"', 'version: "1.35"\n    service_cidr: 10.10.0.0/16',
     ("eks-platform:cluster.service_cidr", "overlaps the VPC")),
    ("public-access-cidr-bad", "public_access_cidrs: [0.0.0.0/0]", "public_access_cidrs: [0.0.0.0/33]",
     ("eks-platform:cluster.public_access_cidrs[0]",)),
    ("version-unquoted-1.30", 'version: "1.35"', "version: 1.30",
     ("eks-platform:cluster.version", "1.30", "quote")),
    ("version-unquoted-1.35", 'version: "1.35"', "version: 1.35", ("eks-platform:cluster.version", "quote")),
    ("version-patch-level", 'version: "1.35"', 'version: "1.35.2"',
     ("eks-platform:cluster.version", "not a Kubernetes minor version")),
    ("version-too-old", 'version: "1.35"', 'version: "1.24"', ("eks-platform:cluster.version", "supported range")),
    ("version-2.0", 'version: "1.35"', 'version: "2.0"', ("eks-platform:cluster.version",)),
    ("version-latest", 'version: "1.35"', "version: latest", ("eks-platform:cluster.version", '"1.31"')),
    ("kube-proxy-mismatch", "kube-proxy: v1.35.3-eksbuild.13", "kube-proxy: v1.30.6-eksbuild.3",
     ("eks-platform:cluster", "does not match cluster version 1.35")),
    ("addon-version-format", "coredns: v1.14.2-eksbuild.4", "coredns: 1.11", ("eks-platform:cluster.addons",)),
    ("cluster-name-invalid", "name: eks-dev", "name: 1-bad name", ("eks-platform:cluster.name",)),
    ("log-retention-not-allowed", "log_retention_days: 14", "log_retention_days: 10",
     ("eks-platform:cluster.log_retention_days", "such as 7")),
    ("log-type-unknown", "log_types: [api, audit, authenticator]", "log_types: [api, everything]",
     ("eks-platform:cluster.log_types[1]", "controllerManager")),
    ("deletion-protection-not-bool", "deletion_protection: false", "deletion_protection: maybe",
     ("eks-platform:cluster.deletion_protection", "'maybe'", "true")),
    ("min-greater-than-max", "min_size: 1", "min_size: 4", (GEN, "min_size <= desired_size <= max_size")),
    ("min-size-true", "min_size: 1", "min_size: true", (f"{GEN}.min_size",)),
    ("max-size-negative", "max_size: 3", "max_size: -1", (f"{GEN}.max_size", "greater than 0")),
    ("max-size-zero", "max_size: 3", "max_size: 0", (f"{GEN}.max_size", "greater than 0")),
    ("max-size-text", "max_size: 3", "max_size: abc", (f"{GEN}.max_size", "'abc'")),
    ("desired-size-fraction", "desired_size: 1", "desired_size: 1.5", (f"{GEN}.desired_size", "1.5")),
    ("disk-size-zero", "disk_size_gib: 40", "disk_size_gib: 0", (f"{GEN}.disk_size_gib", "20")),
    ("instance-types-empty", "instance_types: [t3.large]", "instance_types: []", (f"{GEN}.instance_types",)),
    ("instance-type-invalid", "instance_types: [t3.large]", "instance_types: [large]",
     (f"{GEN}.instance_types", "not EC2 instance types")),
    ("capacity-type-lowercase", "capacity_type: ON_DEMAND", "capacity_type: on-demand",
     (f"{GEN}.capacity_type", "ON_DEMAND")),
    ("ami-type-unknown", BLUE, BLUE.replace("AL2023_x86_64_STANDARD", "AL2024"),
     (f"{GEN}.generations.blue.ami_type", "AL2023_x86_64_STANDARD")),
    ("ami-arch-mismatch", GREEN, GREEN.replace("x86_64", "ARM_64"), (f"{GEN}.generations.green.ami_type", "arm64")),
    ("generation-name-invalid", "        green:\n", "        Green_1:\n", (f"{GEN}.generations.Green_1",)),
    ("kubelet-newer-than-control-plane", GREEN, GREEN + '\n          version: "1.36"',
     (f"{GEN}.generations.green.version", "newer than the control plane")),
    ("pool-az-not-in-network", "max_unavailable: 1", "max_unavailable: 1\n      azs: [eu-west-1c]",
     (f"{GEN}.azs", "not in network.azs")),
    ("reserved-label", "max_unavailable: 1", "max_unavailable: 1\n      labels: {pool: x}",
     (f"{GEN}.labels", "set by the platform")),
    ("taint-effect", "max_unavailable: 1", "max_unavailable: 1\n      taints: [{key: a, effect: NoSchedule}]",
     (f"{GEN}.taints[0].effect", "NO_SCHEDULE")),
    ("auth-mode-lowercase", "authentication_mode: API_AND_CONFIG_MAP", "authentication_mode: api",
     ("eks-platform:access.authentication_mode", "API_AND_CONFIG_MAP")),
    ("github-org-with-space", "org: acme-platform", "org: acme platform", ("eks-platform:access.github.org",)),
    ("admin-arn-not-an-arn", "admin_role_arns: [arn:aws:iam::111111111111:role/platform-admin]",
     "admin_role_arns: [platform-admin]",
     ("eks-platform:access.admin_role_arns[0]", "arn:aws:iam::123456789012:role/name")),
    ("mapping-to-system-masters", "groups: [developers]", "groups: [system:masters]",
     ("eks-platform:access", "system:masters", "admin_role_arns")),
    ("recovery-window-too-short", "recovery_window_days: 7", "recovery_window_days: 3",
     ("eks-platform:secrets.recovery_window_days", "7")),
    ("secret-length-too-short", "length: 64", "length: 8", ("eks-platform:secrets.services.api.session-key.length",)),
    ("secret-rotation-zero", "rotation_days: 90", "rotation_days: 0",
     ("eks-platform:secrets.services.api.session-key.rotation_days",)),
    ("secret-kind-unknown", "kind: external", "kind: manual",
     ("eks-platform:secrets.services.worker.queue-token.kind", "external")),
    ("nat-mode-unknown", "mode: dual-instance", "mode: dual", ("eks-platform:nat.mode", "dual-instance")),
    ("nat-instance-arch-mismatch", "instance_type: t4g.nano", "instance_type: t3.nano",
     ("eks-platform:nat", "t4g.nano")),
    ("nat-probe-interval-zero", "probe_interval_seconds: 1", "probe_interval_seconds: 0",
     ("eks-platform:nat.probe_interval_seconds", "0.5")),
    ("nat-threshold-text", "failure_threshold: 2", "failure_threshold: abc",
     ("eks-platform:nat.failure_threshold", "'abc'")),
    ("monitoring-retention-words", "retention: 7d", "retention: 7 days",
     ("eks-platform:platform.monitoring.retention", "15d")),
    ("reclaim-policy-unknown", "reclaim_policy: Delete", "reclaim_policy: Recycle",
     ("eks-platform:platform.storage.reclaim_policy", "Retain")),
    ("quota-pods-negative", "pods: 40", "pods: -5", ("eks-platform:platform.namespaces.apps-dev.quota.pods",)),
    ("unknown-top-level-key", "config:\n", "config:\n  eks-platform:nodepools: {}\n",
     ("eks-platform:nodepools", "did you mean eks-platform:node_pools")),
    ("config-map-missing", "config:\n", "conf:\n", ("config", "add it")),
    ("yaml-broken-indent", "  aws:region: eu-west-1\n", " aws:region: eu-west-1\n", ("not valid YAML",)),
    ("typo-secret-service", "      worker:\n        database:", "      wroker:\n        database:",
     ("eks-platform:secrets.services.wroker", "worker")),
]

# Configs with several problems: every one is reported at once, one line each under a counting header.
SEVERAL = [
    row("unknown-key-suggests-spelling", "plan --env dev", 2, f"{GEN}.min_sise", "did you mean 'min_size'",
        f"{GEN}.min_size: required", setup=stack_edit("min_size: 1", "min_sise: 1"), lines=None),
    row("network-key-typo", "plan --env dev", 2, "eks-platform:network.cdir", "did you mean 'cidr'",
        setup=stack_edit("cidr: 10.10.0.0/16", "cdir: 10.10.0.0/16"), lines=None),
    row("region-unknown-names-every-az", "plan --env dev", 2, "eks-platform:network.azs[0]",
        "eks-platform:network.azs[1]", "eu-west-9", setup=stack_edit("aws:region: eu-west-1", "aws:region: eu-west-9"),
        lines=None),
    row("four-sections-at-once", "plan --env dev", 2, "4 config problems", "eks-platform:network.cidr", GEN,
        "eks-platform:secrets.services.worker.queue-token.kind", "eks-platform:nat.mode",
        setup=(stack_edit("cidr: 10.10.0.0/16", "cidr: 10.10.0.1/16"), stack_edit("min_size: 1", "min_size: 4"),
               stack_edit("mode: dual-instance", "mode: dual"), stack_edit("kind: external", "kind: manual")),
        lines=None),
    row("cross-section-network-behind-pools", "plan --env dev", 2, "2 config problems",
        "eks-platform:network.azs[0]", GEN,
        setup=(stack_edit("azs: [eu-west-1a, eu-west-1b]", "azs: [us-east-1a, eu-west-1b]"),
               stack_edit("min_size: 1", "min_size: 4")), lines=None),
    row("cross-section-secrets-behind-pools", "plan --env dev", 2, "2 config problems",
        "eks-platform:secrets.services.wroker", GEN,
        setup=(stack_edit("      worker:\n        database:", "      wroker:\n        database:"),
               stack_edit("min_size: 1", "min_size: 4")), lines=None),
    row("min-size-true-beside-cidr", "plan --env dev", 2, "2 config problems", f"{GEN}.min_size",
        "eks-platform:network.cidr",
        setup=(stack_edit("min_size: 1", "min_size: true"), stack_edit("cidr: 10.10.0.0/16", "cidr: 10.10.0.1/16")),
        lines=None),
    row("al2-refused-from-1.33", "plan --env dev", 2, f"{GEN}.generations.blue.ami_type", "invoke nodes.migrate",
        setup=(stack_edit('version: "1.35"', 'version: "1.33"'),
               stack_edit("upgrade_policy: STANDARD", "upgrade_policy: EXTENDED"),
               stack_edit("kube-proxy: v1.35.3-eksbuild.13", "kube-proxy: v1.33.0-eksbuild.2"),
               stack_edit(BLUE, BLUE.replace("AL2023_x86_64_STANDARD", "AL2_x86_64"))), lines=None),
    row("endpoint-unreachable", "plan --env dev", 2, "unreachable",
        setup=(stack_edit("endpoint_public_access: true", "endpoint_public_access: false"),
               stack_edit("endpoint_private_access: true", "endpoint_private_access: false"),
               stack_edit("public_access_cidrs: [0.0.0.0/0]", "public_access_cidrs: []")), lines=None),
]

TYPO_SECRET_SERVICE_ABSENT = ("shared",)  # the shared base has no ServiceAccount: never a secret's service

TABLE = ARGUMENTS + [
    row(f"config-{name}", "plan --env dev", 2, *fragments, setup=stack_edit(old, new),
        absent=TYPO_SECRET_SERVICE_ABSENT if name == "typo-secret-service" else ())
    for name, old, new, fragments in CONFIGS
] + SEVERAL


@pytest.fixture
def world(bad_input_project, tmp_path, monkeypatch):
    return bad.make_world(bad_input_project, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", TABLE)
def test_bad_input(world, case):
    bad.check(world, case)


def test_the_table_is_whole():
    assert bad.ids_are_unique(TABLE) and len(TABLE) >= 95


def test_plan_into_a_full_disk_is_one_line(world):
    """`invoke plan --env dev > /dev/full`: the write fails (ENOSPC); one line, exit 1, nothing changed."""
    before = bad.file_hashes(world.root)
    with open("/dev/full", "w") as full:
        task = invoke("plan", "--env", "dev", cwd=world.root, stdout=full, timeout=bad.CASE_TIMEOUT_S)
    lines = task.stderr.strip().splitlines()
    assert task.returncode == 1 and "Traceback" not in task.stderr, task.stderr
    assert lines == ["error: cannot write the output (stdout): No space left on device; free space or send it "
                     "elsewhere"], task.stderr
    assert bad.changed_files(before, bad.file_hashes(world.root)) == []


def test_plan_json_into_a_closed_pipe_ends_quietly(world):
    """`invoke plan --json | head -1`: the reader leaves after one line (the plan is ~190 KB, more than a pipe
    holds), so the task meets a closed pipe mid-write; it must end without a traceback or a second error."""
    before = bad.file_hashes(world.root)
    task = spawn("plan", "--env", "dev", "--json", cwd=world.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 text=True)
    assert task.stdout.readline().strip() == "{"
    task.stdout.close()
    try:
        _, err = task.communicate(timeout=bad.CASE_TIMEOUT_S)
    finally:
        task.kill()
    assert "Traceback" not in err and err.strip() == "", err
    assert task.returncode == 0
    assert bad.changed_files(before, bad.file_hashes(world.root)) == []
