"""Bad input to plan / preview / up, and bad stack configs: one clear line (one per problem for configs), exit 2,
nothing changed (no file, no `pulumi up`). Each config row is a variant of the real Pulumi.dev.yaml in a copy."""
from __future__ import annotations

import subprocess
from typing import Any

import pytest

from infra.config import ROOT, load_stack_config
from tests.support import bad_input as bad
from tests.support.bad_input import committed_on_branch, outputs, row, stack_edit, write_bytes
from tests.support.cli import invoke, spawn

GEN = "eks-platform:node_pools.general"
DEV = load_stack_config("dev").version
BLUE = "ami_type: AL2023_x86_64_STANDARD\n        green:"  # blue's AMI line (green's is followed by its types)
GREEN = "ami_type: AL2023_x86_64_STANDARD\n          instance_types: [t3a.large]"
DEPLOYED_AL2_GREEN = {"nodeGroupAmiTypes": {"general": {"blue": "AL2023_x86_64_STANDARD", "green": "AL2_x86_64"}}}
DEV_TEXT = (ROOT / "Pulumi.dev.yaml").read_text()
MAX_SIZE_LINE = DEV_TEXT.splitlines().index("      max_size: 3") + 1
REGION_LINE = DEV_TEXT.splitlines().index("  aws:region: eu-west-1") + 1
NOT_UTF8 = "Pulumi.dev.yaml is not UTF-8 text (byte 0x"
END = f"at offset {len(DEV_TEXT.encode())}, line {DEV_TEXT.count(chr(10)) + 1})"  # a byte added after the last line
ADMIN = "arn:aws:iam::111111111111:role/platform-admin"
ADMINS = f"admin_role_arns: [{ADMIN}]"
# pydantic's own sentences: a config problem is said in the file's words, never in these.
PYDANTIC = ("Input should", "after validation", "String should", "Field required", "Extra inputs", "Value error")


def replace_between(first: str, upto: str, new: str) -> bad.Setup:
    """Pulumi.dev.yaml with the text from `first` up to (not including) `upto` replaced: a whole block."""
    def edit(world: bad.World) -> None:
        text = world.stack_path.read_text()
        start = text.index(first)
        world.stack_path.write_text(text[:start] + new + text[text.index(upto, start):])
    return edit

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
    row("plan-against-stack-file-not-utf8", "plan --env dev --against latin1", 2,
        "Pulumi.dev.yaml at latin1 is not UTF-8 text (byte 0xe9 at offset", "save it as UTF-8",
        setup=committed_on_branch("latin1", "Pulumi.dev.yaml", "config:\n  aws:region: caf\xe9\n".encode("latin-1"))),
    row("plan-against-duplicate-key", "plan --env dev --against twice", 2,
        "Pulumi.dev.yaml at twice: eks-platform:node_pools.general: given twice (lines 3 and 4); remove one",
        setup=committed_on_branch("twice", "Pulumi.dev.yaml",
                                  "config:\n  eks-platform:node_pools:\n    general: {}\n    general: {}\n")),
    row("plan-against-generations-a-list", "plan --env dev --against gens-as-list", 2,
        "Pulumi.dev.yaml at gens-as-list: eks-platform:node_pools.general.generations", "not a stack file's shape",
        "got a list", setup=committed_on_branch("gens-as-list", "Pulumi.dev.yaml",
                                                "config:\n  eks-platform:node_pools:\n    general:\n"
                                                "      generations: [blue]\n")),
    # a stack file that is not UTF-8: every task that reads it says so (the byte, its offset and line), exit 2
    row("plan-stack-file-not-utf8", "plan --env dev", 2, f"{NOT_UTF8}ff {END}", "save it as UTF-8",
        setup=write_bytes("Pulumi.dev.yaml", b"\xff# caf\n")),
    row("preview-stack-file-not-utf8", "preview --env dev", 2, NOT_UTF8, setup=write_bytes("Pulumi.dev.yaml", b"\xff")),
    row("up-stack-file-not-utf8", "up --env dev --yes", 2, NOT_UTF8, setup=write_bytes("Pulumi.dev.yaml", b"\xff")),
    row("nodes-migrate-dry-run-stack-file-not-utf8", "nodes.migrate --env dev --pool general --to green --dry-run", 2,
        f"{NOT_UTF8}c3 {END}", setup=write_bytes("Pulumi.dev.yaml", b"\xc3\x28")),
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
    ("duplicate-key", "max_size: 3", "max_size: 3\n      max_size: 4",
     (f"{GEN}.max_size: given twice (lines {MAX_SIZE_LINE} and {MAX_SIZE_LINE + 1}); remove one",)),
    ("duplicate-top-level-key", "  aws:region: eu-west-1\n", "  aws:region: eu-west-1\n  aws:region: eu-west-2\n",
     (f"aws:region: given twice (lines {REGION_LINE} and {REGION_LINE + 1})",)),
    ("yaml-control-character", "name: eks-dev", "name: eks-dev\x01", ("not valid YAML", "U+0001", "remove it")),
    ("azs-empty", "azs: [eu-west-1a, eu-west-1b]", "azs: []",
     ("eks-platform:network.azs: is empty", "list the AZs", "[eu-west-1a, eu-west-1b]")),
    ("azs-too-many", "azs: [eu-west-1a, eu-west-1b]", f"azs: [{', '.join(f'eu-west-1{z}' for z in 'abcdefg')}]",
     ("eks-platform:network.azs: has 7 items, at most 6 allowed",)),
    ("generations-too-many", "          instance_types: [t3a.large]\n",
     "          instance_types: [t3a.large]\n" + "".join(f"        {g}:\n          ami_type: AL2023_x86_64_STANDARD\n"
                                                        for g in ("red", "gold")),
     (f"{GEN}.generations: has 4 entries, at most 3 allowed", "nodes.migrate")),
    ("admin-arn-listed-twice", ADMINS, f"admin_role_arns: [{ADMIN}, {ADMIN}]",
     ("eks-platform:access.admin_role_arns[1]", "listed twice", "keep one")),
    ("admin-arn-twice-other-path", ADMINS, f"admin_role_arns: [{ADMIN}, {ADMIN.replace('role/', 'role/ops/')}]",
     ("eks-platform:access.admin_role_arns[1]", "listed twice", "path and case do not make it another role")),
    ("admin-arn-mapped-under-other-path", "role_arn: arn:aws:iam::111111111111:role/developers",
     "role_arn: arn:aws:iam::111111111111:role/team/platform-admin",
     ("eks-platform:access.role_mappings[0].role_arn", f"is the admin role {ADMIN}", "write the same ARN")),
    ("creator-arn-other-path", f"cluster_creator_arn: {ADMIN}", f"cluster_creator_arn: {ADMIN.replace('role/', 'role/x/')}",
     ("eks-platform:access.cluster_creator_arn", "under another path", "write the same ARN")),
    ("key-without-namespace", "  eks-platform:nat:\n", "  nat:\n",
     ("nat: has no namespace", "did you mean eks-platform:nat?")),
    ("aws-namespace-typo", "  aws:region: eu-west-1\n", "  aws:region: eu-west-1\n  asw:profile: ops\n",
     ("asw:profile", "unknown namespace 'asw'", "did you mean aws:profile?")),
    ("ami-type-lowercase", BLUE, BLUE.replace("AL2023_x86_64_STANDARD", "al2023_x86_64_standard"),
     (f"{GEN}.generations.blue.ami_type", "did you mean 'AL2023_x86_64_STANDARD'?")),
    ("secret-description-empty", "description: Signing key for API session cookies", "description: ''",
     ("eks-platform:secrets.services.api.session-key.description: is empty",)),
    ("refresh-interval-words", "recovery_window_days: 7", "recovery_window_days: 7\n    refresh_interval: hourly",
     ("eks-platform:secrets.refresh_interval", "'hourly' is not an interval", "1h")),
    ("probe-targets-empty", "failback_min_seconds: 120", "failback_min_seconds: 120\n    probe_targets: []",
     ("eks-platform:nat.probe_targets: is empty", "tcp://1.1.1.1:443")),
]

def several(id: str, *fragments: str, setup: bad.Setup | tuple[bad.Setup, ...]) -> Any:
    """A config with several problems for `plan --env dev`: every one reported at once, one line each under a
    counting header, none in pydantic's words."""
    return row(id, "plan --env dev", 2, *fragments, setup=setup, lines=None, absent=PYDANTIC)


# Configs with several problems: every one is reported at once, one line each under a counting header.
SEVERAL = [
    several("unknown-key-suggests-spelling", f"{GEN}.min_sise", "did you mean 'min_size'",
        f"{GEN}.min_size: required", setup=stack_edit("min_size: 1", "min_sise: 1")),
    several("network-key-typo", "eks-platform:network.cdir", "did you mean 'cidr'",
        setup=stack_edit("cidr: 10.10.0.0/16", "cdir: 10.10.0.0/16")),
    several("region-unknown-names-every-az", "eks-platform:network.azs[0]",
        "eks-platform:network.azs[1]", "eu-west-9", setup=stack_edit("aws:region: eu-west-1", "aws:region: eu-west-9")),
    several("four-sections-at-once", "4 config problems", "eks-platform:network.cidr", GEN,
        "eks-platform:secrets.services.worker.queue-token.kind", "eks-platform:nat.mode",
        setup=(stack_edit("cidr: 10.10.0.0/16", "cidr: 10.10.0.1/16"), stack_edit("min_size: 1", "min_size: 4"),
               stack_edit("mode: dual-instance", "mode: dual"), stack_edit("kind: external", "kind: manual"))),
    several("cross-section-network-behind-pools", "2 config problems",
        "eks-platform:network.azs[0]", GEN,
        setup=(stack_edit("azs: [eu-west-1a, eu-west-1b]", "azs: [us-east-1a, eu-west-1b]"),
               stack_edit("min_size: 1", "min_size: 4"))),
    several("cross-section-secrets-behind-pools", "2 config problems",
        "eks-platform:secrets.services.wroker", GEN,
        setup=(stack_edit("      worker:\n        database:", "      wroker:\n        database:"),
               stack_edit("min_size: 1", "min_size: 4"))),
    several("min-size-true-beside-cidr", "2 config problems", f"{GEN}.min_size",
        "eks-platform:network.cidr",
        setup=(stack_edit("min_size: 1", "min_size: true"), stack_edit("cidr: 10.10.0.0/16", "cidr: 10.10.0.1/16"))),
    several("al2-refused-from-1.33", f"{GEN}.generations.blue.ami_type", "invoke nodes.migrate",
        setup=(stack_edit('version: "1.35"', 'version: "1.33"'),
               stack_edit("upgrade_policy: STANDARD", "upgrade_policy: EXTENDED"),
               stack_edit("kube-proxy: v1.35.3-eksbuild.13", "kube-proxy: v1.33.0-eksbuild.2"),
               stack_edit(BLUE, BLUE.replace("AL2023_x86_64_STANDARD", "AL2_x86_64")))),
    several("aws-region-typo", "2 config problems", "aws:region: required but missing",
        "aws:regoin: not a pulumi-aws setting", "did you mean aws:region?",
        setup=stack_edit("aws:region: eu-west-1", "aws:regoin: eu-west-1")),
    several("node-pools-empty", "eks-platform:node_pools: is empty", "add a pool",
        "generations: {blue: {ami_type: AL2023_x86_64_STANDARD}}",
        setup=replace_between("  eks-platform:node_pools:\n", "  # Cluster access", "  eks-platform:node_pools: {}\n")),
    several("generations-empty", f"{GEN}.generations: is empty",
        "e.g. blue: {ami_type: AL2023_x86_64_STANDARD}",
        setup=replace_between("      generations:\n", "  # Cluster access", "      generations: {}\n")),
    several("duplicate-keys-all-at-once", "3 config problems", f"{GEN}.max_size: given twice",
        "eks-platform:network.cidr: given twice", f"{GEN}.generations.blue.ami_type: given twice",
        setup=(stack_edit("max_size: 3", "max_size: 3\n      max_size: 4"),
               stack_edit("cidr: 10.10.0.0/16", "cidr: 10.10.0.0/16\n    cidr: 10.20.0.0/16"),
               stack_edit(BLUE, BLUE.replace("green:", "").rstrip() + "\n          ami_type: AL2_x86_64\n        green:"))),
    several("endpoint-unreachable", "unreachable",
        setup=(stack_edit("endpoint_public_access: true", "endpoint_public_access: false"),
               stack_edit("endpoint_private_access: true", "endpoint_private_access: false"),
               stack_edit("public_access_cidrs: [0.0.0.0/0]", "public_access_cidrs: []"))),
]

TYPO_SECRET_SERVICE_ABSENT = ("shared",)  # the shared base has no ServiceAccount: never a secret's service

TABLE = ARGUMENTS + [
    row(f"config-{name}", "plan --env dev", 2, *fragments, setup=stack_edit(old, new),
        absent=PYDANTIC + (TYPO_SECRET_SERVICE_ABSENT if name == "typo-secret-service" else ()))
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
