"""Bad input to deploy / rollback / history: one clear line, exit 2 (1 for an outside failure), and nothing changed:
no file, no write to the kubesim cluster (where `api` runs at revision 2), no image or repository in ECR (moto)."""
from __future__ import annotations

import boto3
import pytest

from infra.identity import repository_name
from tests.support import bad_input as bad
from tests.support.bad_input import (
    MISSING_PLUGIN,
    api_answers,
    aws_answers_not_aws,
    aws_unreachable,
    file_edit,
    path_without,
    remove_file,
    row,
)
from tests.support.deploy_world import push

SERVICES = "use one of: api, scheduler, worker"
LONG_TAG = "v" * 200
KUBECONFIG_HINT = "--kubeconfig"
ON_DEV_CLUSTER = "is stack dev's cluster eks-dev"  # the kubeconfig reaches dev's cluster (its identity ConfigMap)

DEPLOY = [
    row("deploy-env-missing", "deploy api", 2, "--env is required", "dev, prod"),
    row("deploy-env-unknown", "deploy api --env staging --tag v1", 2, "--env 'staging' is not a stack", "dev, prod"),
    row("deploy-env-empty", "deploy api --env '' --tag v1", 2, "--env is required"),
    row("deploy-service-uppercase", "deploy API --env dev --tag v1", 2, "service 'API' is not in infra/k8s/base",
        SERVICES),
    row("deploy-service-unknown", "deploy billing --env dev --tag v1", 2, "service 'billing'", SERVICES),
    row("deploy-service-path-traversal", "deploy ../x --env dev --tag v1", 2, "service '../x'", SERVICES),
    row("deploy-service-nested-path", "deploy api/../worker --env dev --tag v1", 2, "service 'api/../worker'",
        SERVICES),
    row("deploy-service-empty", "deploy '' --env dev --tag v1", 2, "service ''", SERVICES),
    row("deploy-service-shared-base", "deploy shared --env dev --tag v1", 2, "service 'shared'", SERVICES),
    row("deploy-service-is-a-flag-value", "deploy dev --env api --tag v1", 2, "--env 'api' is not a stack"),
    # An empty or malformed tag is refused as such, not taken for "build the commit" or looked up in ECR.
    row("deploy-tag-empty", "deploy api --env dev --tag ''", 2, "--tag", absent=("Dockerfile",)),
    row("deploy-tag-with-space-and-bang", "deploy api --env dev --tag 'bad tag!'", 2, "--tag", "bad tag!",
        absent=("is not in ECR",)),
    row("deploy-tag-200-chars", f"deploy api --env dev --tag {LONG_TAG}", 2, "--tag"),
    row("deploy-tag-not-in-ecr", "deploy api --env dev --tag nope", 2, "--tag nope is not in ECR repository eks-platform/dev/api",
        "push it first"),
    row("deploy-tag-of-another-service", "deploy worker --env dev --tag api-only", 2, "--tag api-only",
        "ECR repository eks-platform/dev/worker"),
    row("deploy-timeout-text", "deploy api --env dev --tag v1 --timeout abc", 2, "--timeout"),
    row("deploy-timeout-fraction", "deploy api --env dev --tag v1 --timeout 1.5", 2, "--timeout"),
    row("deploy-timeout-negative", "deploy api --env dev --tag v1 --timeout -1", 2, "--timeout", "'-1'",
        "e.g. --timeout"),
    row("deploy-timeout-zero", "deploy api --env dev --tag v1 --timeout 0", 2, "--timeout", "'0'", "e.g. --timeout"),
    row("deploy-readiness-grace-text", "deploy api --env dev --tag v1 --readiness-grace abc", 2, "--readiness-grace",
        "seconds"),
    row("deploy-readiness-grace-negative", "deploy api --env dev --tag v1 --readiness-grace -1", 2,
        "--readiness-grace", "'-1'", "e.g. --readiness-grace"),
    row("deploy-dirty-tree", "deploy api --env dev", 2, "uncommitted change", "--allow-dirty",
        setup=file_edit("README.md", "# eks-platform", "# eks-platform (edited)")),
    row("deploy-no-dockerfile", "deploy api --env dev --allow-dirty", 2, "no Dockerfile", "--tag",
        setup=remove_file("services/api/Dockerfile")),
    row("deploy-kubeconfig-missing", "deploy api --env dev --tag v1 --kubeconfig {missing_file}", 1,
        "does-not-exist.yaml", KUBECONFIG_HINT),
    row("deploy-kubeconfig-garbage", "deploy api --env dev --tag v1 --kubeconfig {garbage_kubeconfig}", 1,
        "kubeconfig", KUBECONFIG_HINT),
    row("deploy-api-401", "deploy api --env dev --tag v1", 1, "401", setup=api_answers(401)),
    row("deploy-prod-on-dev-cluster", "deploy api --env prod --tag v1", 2, "refusing to act on prod", ON_DEV_CLUSTER,
        "eks-prod"),
    # invoke's own parse errors: exit 2 and one line of ours, not invoke's "No idea what ... is!" and exit 1
    row("deploy-service-given-twice", "deploy api --service worker --env dev --tag v1", 2,
        "deploy takes no further argument 'worker'", "usage: invoke deploy SERVICE"),
    row("deploy-flag-misspelt", "deploy api --env dev --tag v1 --tiemout 30", 2, "deploy has no option --tiemout",
        "did you mean --timeout"),
    row("deploy-flag-without-value", "deploy api --tag v1 --env", 2, "--env needs a value", "invoke deploy --help"),
    row("deploy-service-missing", "deploy --env dev --tag v1", 2, "deploy needs SERVICE"),
    # whole numbers are ASCII digits in a range: int() would take '١', '1_000' and '+5'
    row("deploy-timeout-arabic-indic-digits", "deploy api --env dev --tag v1 --timeout ٣٠", 2, "--timeout", "'٣٠'",
        "from 1 to 86400"),
    row("deploy-timeout-over-a-day", "deploy api --env dev --tag v1 --timeout 86401", 2, "--timeout", "from 1 to 86400"),
    row("deploy-timeout-10e23", f"deploy api --env dev --tag v1 --timeout {10**23}", 2, "--timeout", "86400"),
    row("deploy-readiness-grace-over-a-day", "deploy api --env dev --tag v1 --readiness-grace 100000", 2,
        "--readiness-grace", "from 0 to 86400"),
    row("deploy-kubeconfig-empty-value", "deploy api --env dev --tag v1 --kubeconfig ''", 2,
        "--kubeconfig is empty", "leave --kubeconfig out"),
    row("deploy-kubeconfig-exec-plugin-missing", "deploy api --env dev --tag v1 --kubeconfig {exec_kubeconfig}", 1,
        f"exec credential plugin '{MISSING_PLUGIN}' cannot run", "no such file or directory", absent=("ERROR:root",)),
    row("deploy-no-git-on-path", "deploy api --env dev", 2, "git not found on PATH; install git or deploy an image "
        "with --tag", setup=path_without("git")),
    row("deploy-ecr-unreachable", "deploy api --env dev --tag v1", 1, "cannot reach AWS at http://127.0.0.1:",
        "connection refused", "AWS_ENDPOINT_URL=", setup=aws_unreachable),
    row("deploy-ecr-answers-html-404", "deploy api --env dev --tag v1", 1, "cannot reach AWS at http://127.0.0.1:",
        "HTTP 404 with an HTML page", "AWS_ENDPOINT_URL=", setup=aws_answers_not_aws("html")),
    row("deploy-ecr-answers-empty-404", "deploy api --env dev --tag v1", 1, "cannot reach AWS at http://127.0.0.1:",
        "HTTP 404 with an empty body", setup=aws_answers_not_aws("empty")),
]

ROLLBACK = [
    row("rollback-env-missing", "rollback api", 2, "--env is required"),
    row("rollback-env-unknown", "rollback api --env staging", 2, "--env 'staging' is not a stack"),
    row("rollback-service-unknown", "rollback billing --env dev", 2, "service 'billing'", SERVICES),
    row("rollback-service-uppercase", "rollback API --env dev", 2, "service 'API'", SERVICES),
    row("rollback-service-path-traversal", "rollback ../x --env dev", 2, "service '../x'", SERVICES),
    row("rollback-service-empty", "rollback '' --env dev", 2, "service ''", SERVICES),
    row("rollback-revision-text", "rollback api --env dev --to-revision abc", 2, "--to-revision",
        "revision number", "'abc'"),
    row("rollback-revision-fraction", "rollback api --env dev --to-revision 1.5", 2, "--to-revision", "'1.5'"),
    row("rollback-revision-negative", "rollback api --env dev --to-revision -1", 2, "--to-revision", "-1",
        "invoke history"),
    row("rollback-revision-zero", "rollback api --env dev --to-revision 0", 2, "--to-revision", "0", "invoke history"),
    row("rollback-revision-unknown", "rollback api --env dev --to-revision 99", 2, "--to-revision 99",
        "available: 1"),
    row("rollback-revision-current", "rollback api --env dev --to-revision 2", 2, "--to-revision 2",
        "available: 1"),
    row("rollback-timeout-text", "rollback api --env dev --timeout abc", 2, "--timeout"),
    row("rollback-timeout-fraction", "rollback api --env dev --timeout 1.5", 2, "--timeout"),
    row("rollback-timeout-negative", "rollback api --env dev --timeout -1", 2, "--timeout", "'-1'", "e.g. --timeout"),
    row("rollback-timeout-zero", "rollback api --env dev --timeout 0", 2, "--timeout", "'0'", "e.g. --timeout"),
    row("rollback-not-deployed", "rollback worker --env dev", 2, "deployment worker does not exist in apps-dev",
        "nothing to roll back"),
    row("rollback-prod-on-dev-cluster", "rollback api --env prod", 2, "refusing to act on prod", ON_DEV_CLUSTER),
    row("rollback-kubeconfig-garbage", "rollback api --env dev --kubeconfig {garbage_kubeconfig}", 1, "kubeconfig",
        KUBECONFIG_HINT),
    row("rollback-api-401", "rollback api --env dev --to-revision 1", 1, "401", setup=api_answers(401)),
    row("rollback-flag-of-deploy", "rollback api --env dev --dry-run", 2, "rollback has no option --dry-run",
        "invoke rollback --help"),
    row("rollback-revision-arabic-indic-digit", "rollback api --env dev --to-revision ١", 2, "--to-revision", "'١'",
        "invoke history"),
    row("rollback-revision-10e23", f"rollback api --env dev --to-revision {10**23}", 2, "--to-revision",
        "from 1 to 2147483647"),
    row("rollback-timeout-underscore", "rollback api --env dev --timeout 1_000", 2, "--timeout", "'1_000'"),
    row("rollback-timeout-plus-sign", "rollback api --env dev --timeout +5", 2, "--timeout", "'+5'"),
]

HISTORY = [
    row("history-env-missing", "history api", 2, "--env is required"),
    row("history-env-unknown", "history api --env staging", 2, "--env 'staging' is not a stack"),
    row("history-service-unknown", "history billing --env dev", 2, "service 'billing'", SERVICES),
    row("history-service-path-traversal", "history ../x --env dev", 2, "service '../x'", SERVICES),
    row("history-service-empty", "history '' --env dev", 2, "service ''", SERVICES),
    row("history-kubeconfig-missing", "history api --env dev --kubeconfig {missing_file}", 1, "does-not-exist.yaml",
        KUBECONFIG_HINT),
    row("history-kubeconfig-empty", "history api --env dev --kubeconfig {empty_kubeconfig}", 1, "empty",
        KUBECONFIG_HINT),
    row("history-kubeconfig-garbage", "history api --env dev --kubeconfig {garbage_kubeconfig}", 1, "kubeconfig",
        KUBECONFIG_HINT),
    row("history-api-unreachable", "history api --env dev --kubeconfig {unreachable_kubeconfig}", 1,
        "cannot reach the Kubernetes API", "127.0.0.1:9", KUBECONFIG_HINT),
    row("history-api-401", "history api --env dev", 1, "401", setup=api_answers(401)),
    row("history-prod-on-dev-cluster", "history api --env prod", 2, "refusing to act on prod", ON_DEV_CLUSTER),
    row("history-extra-argument", "history api worker --env dev", 2, "history takes no further argument 'worker'"),
    row("history-kubeconfig-empty-value", "history api --env dev --kubeconfig ''", 2, "--kubeconfig is empty"),
]

TABLE = DEPLOY + ROLLBACK + HISTORY


def _registry() -> None:
    """ECR as the platform stack leaves it: one repository per service, v1 pushed to each, api-only to api."""
    ecr = boto3.client("ecr", region_name="eu-west-1")
    for env in ("dev", "prod"):
        for service in ("api", "worker", "scheduler"):
            ecr.create_repository(repositoryName=repository_name(env, service))
            push(ecr, repository_name(env, service), "v1")
        push(ecr, repository_name(env, "api"), "api-only")


@pytest.fixture
def world(bad_input_project, bad_input_cluster, aws, tmp_path, monkeypatch):
    built = bad.make_world(bad_input_project, tmp_path, monkeypatch, cluster=bad_input_cluster, aws=aws)
    _registry()
    yield built
    bad_input_cluster.clear_faults()


@pytest.mark.parametrize("case", TABLE)
def test_bad_input(world, case):
    bad.check(world, case)


def test_the_table_is_whole():
    assert bad.ids_are_unique(TABLE) and len(TABLE) >= 50
