"""Bad input to nodes.migrate / cluster.upgrade / access.migrate: one clear line, exit 2 (1 for an outside failure),
nothing changed: no stack-file edit, no `pulumi up`, no write to the kubesim cluster (general/blue nodes in three
AZs, no checkpoint), no change to the EKS cluster and node groups moto holds (dev as Pulumi.dev.yaml declares it)."""
from __future__ import annotations

import json
import os

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infra.config import load_stack_config
from tests.support import bad_input as bad
from tests.support.bad_input import api_answers, aws_answers_not_aws, no_aws_credentials, outputs, row, stack_edit
from tests.support.cli import invoke_into_reader
from tests.support.fake_pulumi import seed_eks

CHECKPOINTS = ("eks-platform-migrate-general", "eks-platform-upgrade-eks-dev")


def checkpoint(name: str, state: str | None) -> bad.Setup:
    """ConfigMap kube-system/<name> as an earlier run or a hand edit left it (state None: no data.state at all)."""
    def put(world: bad.World) -> None:
        client.CoreV1Api(world.cluster.api_client()).create_namespaced_config_map("kube-system", {
            "metadata": {"name": name}, "data": {} if state is None else {"state": state}})
    return put


def kubelets_at_the_stack_version(world: bad.World) -> None:
    """The world's nodes run 1.35 kubelets, as dev's node groups do (kubesim starts them at 1.32, too far behind a
    1.36 control plane for the preflight), until the case ends."""
    core = client.CoreV1Api(world.cluster.api_client())

    def run(versions: dict[str, str]) -> None:
        for name, version in versions.items():
            core.patch_node_status(name, {"status": {"nodeInfo": {"kubeletVersion": version}}})

    nodes = core.list_node().items
    run({node.metadata.name: "v1.35.2-eks-1234567" for node in nodes})
    world.cleanups.append(lambda: run({node.metadata.name: node.status.node_info.kubelet_version for node in nodes}))


def no_pulumi(world: bad.World) -> None:
    """A machine without the Pulumi CLI: PATH without the fake one (python, git and kubectl stay)."""
    path = [part for part in os.environ["PATH"].split(os.pathsep) if part != str(world.pulumi.bin)]
    world.monkeypatch.setenv("PATH", os.pathsep.join(path))


REQUIRED = "--pool and --to are required"
MIGRATE = "nodes.migrate --env dev --pool general"
UPGRADE = "cluster.upgrade --env dev"
RANGE = "outside the supported range 1.29..1.36"
NOT_A_MINOR = "is not a Kubernetes minor version"
ON_DEV_CLUSTER = "is stack dev's cluster eks-dev"  # the kubeconfig reaches dev's cluster (its identity ConfigMap)
MIGRATE_CM = "ConfigMap kube-system/eks-platform-migrate-general does not hold a readable checkpoint"
MIGRATE_DELETE = "`kubectl -n kube-system delete configmap eks-platform-migrate-general`"
UPGRADE_CM = "ConfigMap kube-system/eks-platform-upgrade-eks-dev does not hold a readable checkpoint"
UPGRADE_DELETE = "`kubectl -n kube-system delete configmap eks-platform-upgrade-eks-dev`"

NODES_MIGRATE = [
    row("migrate-nothing-given", "nodes.migrate", 2, REQUIRED, "--pool general --to green"),
    row("migrate-env-only", "nodes.migrate --env dev", 2, REQUIRED),
    row("migrate-pool-without-to", MIGRATE, 2, REQUIRED),
    row("migrate-to-without-pool", "nodes.migrate --env dev --to green", 2, REQUIRED),
    row("migrate-pool-empty", "nodes.migrate --env dev --pool '' --to green", 2, REQUIRED),
    row("migrate-env-missing", "nodes.migrate --pool general --to green --dry-run", 2, "--env is required"),
    row("migrate-env-unknown", "nodes.migrate --env staging --pool general --to green", 2,
        "--env 'staging' is not a stack", "dev, prod"),
    row("migrate-pool-unknown", "nodes.migrate --env dev --pool gpu --to green", 2,
        "--pool 'gpu' is not a node pool of dev", "use one of: general"),
    row("migrate-pool-uppercase", "nodes.migrate --env dev --pool General --to green", 2, "--pool 'General'",
        "general"),
    row("migrate-pool-of-other-stack", "nodes.migrate --env dev --pool system --to green", 2, "--pool 'system'",
        "general"),
    row("migrate-to-undeclared-without-add", f"{MIGRATE} --to purple --from blue --dry-run", 2,
        "generation 'purple' is not declared", "--add"),
    row("migrate-to-ambiguous-source", f"{MIGRATE} --to purple --dry-run", 2, "name the one to leave with --from"),
    row("migrate-to-uppercase-name-add", f"{MIGRATE} --to Green --from blue --add --dry-run", 2,
        "--add would make an invalid stack config", "Green"),
    row("migrate-to-path-traversal-add", f"{MIGRATE} --to ../x --from blue --add --dry-run", 2,
        "--add would make an invalid stack config", "../x"),
    row("migrate-ami-type-unknown", f"{MIGRATE} --to purple --from blue --add --ami-type AL2024 --dry-run", 2,
        "--add would make an invalid stack config", "AL2023_x86_64_STANDARD"),
    row("migrate-ami-type-wrong-arch", f"{MIGRATE} --to purple --from blue --add --ami-type AL2023_ARM_64_STANDARD "
        "--dry-run", 2, "--add would make an invalid stack config", "arm64"),
    row("migrate-ami-type-lowercase", f"{MIGRATE} --to purple --from blue --add --ami-type al2023_x86_64_standard "
        "--dry-run", 2, "--add would make an invalid stack config"),
    row("migrate-from-equals-to", f"{MIGRATE} --to green --from green", 2,
        "--from 'green' is not another generation of pool general", "use one of: blue"),
    row("migrate-from-unknown", f"{MIGRATE} --to green --from purple", 2, "--from 'purple'", "use one of: blue"),
    row("migrate-parallelism-text", f"{MIGRATE} --to green --parallelism abc", 2, "--parallelism"),
    row("migrate-parallelism-fraction", f"{MIGRATE} --to green --parallelism 1.5", 2, "--parallelism"),
    row("migrate-parallelism-zero", f"{MIGRATE} --to green --parallelism 0", 2, "--parallelism", "'0'", "1"),
    row("migrate-parallelism-negative", f"{MIGRATE} --to green --parallelism -1", 2, "--parallelism", "'-1'", "1"),
    row("migrate-rollback-with-resume", f"{MIGRATE} --to green --rollback --resume", 2,
        "--rollback cannot be combined with --resume"),
    row("migrate-rollback-with-dry-run", f"{MIGRATE} --to green --rollback --dry-run", 2,
        "--rollback cannot be combined with --resume or --dry-run"),
    row("migrate-resume-without-checkpoint", f"{MIGRATE} --to green --resume", 2,
        "no migration of pool general to resume", "run without --resume"),
    row("migrate-resume-with-dry-run", f"{MIGRATE} --to green --resume --dry-run", 2, "cannot resume",
        "drop --resume"),
    row("migrate-ami-type-without-add", f"{MIGRATE} --to green --ami-type AL2023_ARM_64_STANDARD --dry-run", 2,
        "--ami-type AL2023_ARM_64_STANDARD only applies with --add"),
    row("upgrade-resume-with-dry-run", f"{UPGRADE} --to 1.36 --resume --dry-run", 2, "--resume",
        "drop one"),
    row("upgrade-resume-with-plan-only", f"{UPGRADE} --to 1.36 --resume --plan-only", 2, "--plan-only"),
    row("migrate-rollback-without-checkpoint", f"{MIGRATE} --rollback", 2,
        "no migration of pool general in progress to roll back"),
    row("migrate-bad-stack-config", f"{MIGRATE} --to green --dry-run", 2, "eks-platform:node_pools.general",
        "min_size <= desired_size <= max_size", setup=stack_edit("min_size: 1", "min_size: 4")),
    row("migrate-kubeconfig-missing", f"{MIGRATE} --to green --dry-run --kubeconfig {{missing_file}}", 1,
        "does-not-exist.yaml", "--kubeconfig"),
    row("migrate-kubeconfig-garbage", f"{MIGRATE} --to green --dry-run --kubeconfig {{garbage_kubeconfig}}", 1,
        "kubeconfig", "--kubeconfig"),
    row("migrate-api-unreachable", f"{MIGRATE} --to green --dry-run --kubeconfig {{unreachable_kubeconfig}}", 1,
        "cannot reach the Kubernetes API", "127.0.0.1:9", "--kubeconfig"),
    row("migrate-api-401", f"{MIGRATE} --to green --dry-run", 1, "401", setup=api_answers(401)),
    row("migrate-prod-on-dev-cluster", "nodes.migrate --env prod --pool general --to green --dry-run", 2,
        "refusing to act on prod", ON_DEV_CLUSTER),
    row("migrate-checkpoint-not-json-resume", f"{MIGRATE} --to green --resume", 2, MIGRATE_CM, "is not valid JSON",
        MIGRATE_DELETE, setup=checkpoint("eks-platform-migrate-general", "{bad")),
    row("migrate-checkpoint-not-json-dry-run", f"{MIGRATE} --to green --dry-run", 2, MIGRATE_CM, "is not valid JSON",
        MIGRATE_DELETE, setup=checkpoint("eks-platform-migrate-general", "{bad")),
    row("migrate-checkpoint-not-json-rollback", f"{MIGRATE} --rollback", 2, MIGRATE_CM, "is not valid JSON",
        MIGRATE_DELETE, setup=checkpoint("eks-platform-migrate-general", "{bad")),
    row("migrate-checkpoint-not-json-plain", f"{MIGRATE} --to green", 2, MIGRATE_CM, "is not valid JSON",
        MIGRATE_DELETE, setup=checkpoint("eks-platform-migrate-general", "{bad")),
    row("migrate-checkpoint-other-object-resume", f"{MIGRATE} --to green --resume", 2, MIGRATE_CM,
        "lacks phases, pool, source, target, azs", MIGRATE_DELETE,
        setup=checkpoint("eks-platform-migrate-general", '{"x": 1}')),
    row("migrate-checkpoint-list-rollback", f"{MIGRATE} --rollback", 2, MIGRATE_CM, "is a JSON list, not an object",
        setup=checkpoint("eks-platform-migrate-general", "[1]")),
    row("migrate-checkpoint-missing-keys-plain", f"{MIGRATE} --to green", 2, MIGRATE_CM, "lacks target, azs",
        setup=checkpoint("eks-platform-migrate-general", json.dumps({"pool": "general", "source": "blue",
                                                                     "phases": ["declare"]}))),
    row("migrate-checkpoint-without-state-dry-run", f"{MIGRATE} --to green --dry-run", 2, MIGRATE_CM,
        "its state is missing", setup=checkpoint("eks-platform-migrate-general", None)),
    row("migrate-without-pulumi", f"{MIGRATE} --to green", 1, "`pulumi` CLI not found on PATH",
        "nothing was checkpointed", setup=no_pulumi),
]

CLUSTER_UPGRADE = [
    row("upgrade-nothing-given", "cluster.upgrade", 2, "--to is required", "--to 1.36"),
    row("upgrade-env-only", UPGRADE, 2, "--to is required"),
    row("upgrade-to-empty", f"{UPGRADE} --to ''", 2, "--to is required"),
    row("upgrade-env-missing", "cluster.upgrade --to 1.32 --dry-run", 2, "--env is required"),
    row("upgrade-env-unknown", "cluster.upgrade --env staging --to 1.32", 2, "--env 'staging' is not a stack"),
    row("upgrade-to-1.3", f"{UPGRADE} --to 1.3", 2, "--to 1.3", RANGE),
    row("upgrade-to-2.0", f"{UPGRADE} --to 2.0", 2, "--to", "'2.0'", NOT_A_MINOR),
    row("upgrade-to-1.99", f"{UPGRADE} --to 1.99", 2, "--to 1.99", RANGE),
    row("upgrade-to-1.28-below-range", f"{UPGRADE} --to 1.28", 2, "--to 1.28", RANGE),
    row("upgrade-to-latest", f"{UPGRADE} --to latest", 2, "--to", "'latest'", NOT_A_MINOR),
    row("upgrade-to-patch-version", f"{UPGRADE} --to 1.32.1", 2, "--to", "'1.32.1'", NOT_A_MINOR),
    row("upgrade-to-v-prefix", f"{UPGRADE} --to v1.32", 2, "--to", "'v1.32'", NOT_A_MINOR),
    row("upgrade-to-major-only", f"{UPGRADE} --to 1", 2, "--to", NOT_A_MINOR),
    row("upgrade-downgrade", f"{UPGRADE} --to 1.34 --dry-run", 2, "--to 1.34 is older than the control plane (1.35)",
        "cannot downgrade"),
    row("upgrade-stack-file-skipped-ahead", f"{UPGRADE} --to 1.36 --dry-run", 2,
        "Pulumi.dev.yaml has cluster.version 1.36 but EKS runs 1.35", "invoke up --env dev",
        setup=(stack_edit('version: "1.35"', 'version: "1.36"'),
               stack_edit("kube-proxy: v1.35.3-eksbuild.13", "kube-proxy: v1.36.0-eksbuild.14"))),
    row("upgrade-resume-without-checkpoint", f"{UPGRADE} --to 1.36 --resume", 2, "to resume",
        "run without --resume"),
    row("upgrade-bad-stack-config", f"{UPGRADE} --to 1.36 --dry-run", 2, "eks-platform:cluster.version",
        setup=stack_edit('version: "1.35"', 'version: "1.35.2"')),
    row("upgrade-kubeconfig-garbage", f"{UPGRADE} --to 1.36 --dry-run --kubeconfig {{garbage_kubeconfig}}", 1,
        "kubeconfig", "--kubeconfig"),
    row("upgrade-prod-on-dev-cluster", "cluster.upgrade --env prod --to 1.36 --dry-run", 2,
        "refusing to act on prod", ON_DEV_CLUSTER),
    row("upgrade-no-aws-credentials", f"{UPGRADE} --to 1.36 --dry-run", 1, "no AWS credentials",
        setup=no_aws_credentials),
    row("upgrade-checkpoint-not-json-plain", f"{UPGRADE} --to 1.36", 2, UPGRADE_CM, "is not valid JSON",
        UPGRADE_DELETE, setup=checkpoint("eks-platform-upgrade-eks-dev", "{bad")),
    row("upgrade-checkpoint-other-object-resume", f"{UPGRADE} --to 1.36 --resume", 2, UPGRADE_CM,
        "lacks phases, from, to", UPGRADE_DELETE, setup=checkpoint("eks-platform-upgrade-eks-dev", '{"x": 1}')),
    row("upgrade-checkpoint-list-dry-run", f"{UPGRADE} --to 1.36 --dry-run", 2, UPGRADE_CM,
        "is a JSON list, not an object", setup=checkpoint("eks-platform-upgrade-eks-dev", "[1]")),
    row("upgrade-checkpoint-bad-version-plan-only", f"{UPGRADE} --to 1.36 --plan-only", 2, UPGRADE_CM,
        "to: 'latest' is not a Kubernetes minor version",
        setup=checkpoint("eks-platform-upgrade-eks-dev", json.dumps({"from": "1.35", "to": "latest", "phases": []}))),
    row("upgrade-without-pulumi", f"{UPGRADE} --to 1.36", 1, "`pulumi` CLI not found on PATH",
        "nothing was checkpointed", setup=(kubelets_at_the_stack_version, no_pulumi)),
    row("upgrade-aws-answers-html-404", f"{UPGRADE} --to 1.36 --dry-run", 1, "describe_cluster failed",
        "cannot reach AWS at http://127.0.0.1:", "answered HTTP 404 with an HTML page", "AWS_ENDPOINT_URL",
        absent=("<", "nginx"), setup=aws_answers_not_aws("html")),
]

ACCESS_MIGRATE = [
    row("access-env-missing", "access.migrate", 2, "--env is required", "dev, prod"),
    row("access-env-unknown", "access.migrate --env staging", 2, "--env 'staging' is not a stack"),
    row("access-to-lowercase", "access.migrate --env dev --to api", 2, "--to 'api' is not an authentication mode",
        "API_AND_CONFIG_MAP or API"),
    row("access-to-empty", "access.migrate --env dev --to ''", 2, "--to '' is not an authentication mode"),
    row("access-to-made-up", "access.migrate --env dev --to BOTH", 2, "--to 'BOTH'", "API_AND_CONFIG_MAP or API"),
    row("access-backwards-to-config-map", "access.migrate --env dev --to CONFIG_MAP", 2,
        "--to CONFIG_MAP would go back from API_AND_CONFIG_MAP", "only move forward to API"),
    row("access-backwards-prod-to-both", "access.migrate --env prod --to API_AND_CONFIG_MAP", 2,
        "--to API_AND_CONFIG_MAP would go back from API"),
    row("access-backwards-prod-to-config-map", "access.migrate --env prod --to CONFIG_MAP --dry-run", 2,
        "--to CONFIG_MAP would go back from API"),
    row("access-stack-file-behind-deployed", "access.migrate --env dev", 2,
        "Pulumi.dev.yaml says API_AND_CONFIG_MAP but the cluster already runs API",
        "eks-platform:access.authentication_mode", setup=outputs({"authenticationMode": "API"})),
    row("access-bad-stack-config", "access.migrate --env dev --dry-run", 2, "eks-platform:access.authentication_mode",
        setup=stack_edit("authentication_mode: API_AND_CONFIG_MAP", "authentication_mode: APII")),
]

TABLE = NODES_MIGRATE + CLUSTER_UPGRADE + ACCESS_MIGRATE


@pytest.fixture
def world(bad_input_project, bad_input_cluster, aws, tmp_path, monkeypatch):
    built = bad.make_world(bad_input_project, tmp_path, monkeypatch, cluster=bad_input_cluster, aws=aws)
    seed_eks(load_stack_config("dev"))  # EKS runs dev as the committed stack file declares it
    yield built
    for cleanup in built.cleanups:  # what a test outside the table set up (a row's ran already)
        cleanup()
    bad_input_cluster.clear_faults()
    core = client.CoreV1Api(bad_input_cluster.api_client())
    for name in CHECKPOINTS:  # a row's checkpoint, kept by the task as it must be, goes before the next row
        try:
            core.delete_namespaced_config_map(name, "kube-system")
        except ApiException as error:
            if error.status != 404:
                raise


@pytest.mark.parametrize("case", TABLE)
def test_bad_input(world, case):
    bad.check(world, case)


def test_the_table_is_whole():
    assert bad.ids_are_unique(TABLE) and len(TABLE) >= 60


@pytest.mark.parametrize("lines", [0, 1], ids=["closed-before-output", "closes-after-one-line"])
@pytest.mark.parametrize("command", [f"{MIGRATE} --to green --dry-run", f"{UPGRADE} --to 1.36 --dry-run"])
def test_a_dry_run_into_a_reader_that_stops_early_ends_quietly(world, command, lines):
    """`... --dry-run | head -1`: the reader's early close ends the task with exit 0 and nothing on stderr (both dry
    runs pass their preflight here, so a reader that takes everything sees exit 0 too)."""
    kubelets_at_the_stack_version(world)
    code, taken, errors = invoke_into_reader(*command.split(), lines=lines, env=world.env, cwd=world.root,
                                             timeout=bad.CASE_TIMEOUT_S)
    assert (code, errors) == (0, ""), errors
    assert all(taken)  # what was read arrived whole
