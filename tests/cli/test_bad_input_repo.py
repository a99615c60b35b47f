"""Bad input to lint / new-service / ci.check: a bad selection or name is one clear line, exit 2, nothing written;
a bad manifest or workflow (the repository as input) is a finding naming the rule, exit 1, one summary line, and
still nothing written. Manifests and workflows are edited in the table's git copy of the project."""
from __future__ import annotations

import pytest

from infra.lint import runner, workflows
from tests.support import bad_input as bad
from tests.support.bad_input import file_edit, make_directory, remove_file, row, write_bytes, write_file

CHECKS = "choose from " + ", ".join((*runner.CHECKS, workflows.NAME))
NAME_RULE = "use 1-40 lowercase letters, digits and '-' (DNS-1123)"
KINDS = "use one of http, worker, cron"
API = "infra/k8s/base/api/deployment.yaml"
DEV_API_PATCH = "infra/k8s/overlays/dev/patches/api.yaml"
DEV_OVERLAY = "infra/k8s/overlays/dev/kustomization.yaml"
CI = ".github/workflows/ci.yml"
CHECKOUT = "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0"
LINT_FAILED = "lint FAILED: 1 error(s)"
CI_FAILED = "ci.check FAILED"


def first_only(path: str, old: str, new: str) -> bad.Setup:
    """Replace the first occurrence of `old` in a project file (workflows repeat their steps per job)."""
    def edit(world: bad.World) -> None:
        target = world.root / path
        text = target.read_text()
        assert old in text, f"{old!r} not in {path}"
        target.write_text(text.replace(old, new, 1))
    return edit


LINT_SELECTION = [
    row("lint-only-unknown", "lint --only nope", 2, "unknown check nope", CHECKS),
    row("lint-skip-unknown", "lint --skip nope", 2, "unknown check nope", CHECKS),
    row("lint-only-uppercase", "lint --only YAMLLINT", 2, "unknown check YAMLLINT", CHECKS),
    row("lint-only-space-separated", "lint --only 'render schema'", 2, "unknown check render schema", CHECKS),
    row("lint-only-one-good-one-bad", "lint --only rules,rulez", 2, "unknown check rulez", CHECKS),
    row("lint-only-and-skip-same-check", "lint --only checkov --skip checkov", 2, "--only", "--skip"),
    row("lint-only-and-skip-leave-nothing", "lint --only render,rules --skip render,rules", 2, "--only", "--skip"),
    row("lint-only-empty", "lint --only ''", 2, "--only is empty"),
    row("lint-only-only-commas", "lint --only ,", 2, "--only ',' names no check", "--only rules,schema"),
    row("lint-skip-only-space-and-comma", "lint --skip ' , '", 2, "--skip ' , ' names no check"),
    row("lint-unknown-flag", "lint --fix", 2, "lint has no option --fix", "invoke lint --help"),
]

# The repository as input: a manifest that breaks the workload convention is a finding (exit 1) naming the rule.
LINT_MANIFESTS = [
    row("lint-memory-limit-above-request", "lint --only rules", 1, LINT_FAILED, out=("memory",),
        setup=first_only(DEV_API_PATCH, "            limits:\n              cpu: \"1\"\n              memory: 192Mi",
                         "            limits:\n              cpu: \"1\"\n              memory: 384Mi")),
    row("lint-automount-token-on", "lint --only rules", 1, "lint FAILED", out=("automountServiceAccountToken",),
        setup=file_edit(API, "automountServiceAccountToken: false", "automountServiceAccountToken: true")),
    row("lint-automount-token-set-nowhere", "lint --only rules", 1, "lint FAILED", out=("automountServiceAccountToken",),
        setup=(file_edit(API, "      automountServiceAccountToken: false\n", ""),
               file_edit("infra/k8s/base/api/serviceaccount.yaml", "automountServiceAccountToken: false\n", ""))),
    row("lint-patch-file-missing", "lint --only render", 1, LINT_FAILED, out=("patches/api.yaml",),
        setup=remove_file(DEV_API_PATCH)),
    row("lint-readiness-probe-missing", "lint --only rules", 1, "lint FAILED", out=("rules/probes",),
        setup=file_edit(API, "          readinessProbe:             # own critical deps: take the pod out of the "
                             "Service, do not restart it\n            httpGet:\n              path: /readyz\n"
                             "              port: http\n            periodSeconds: 5\n            timeoutSeconds: 2\n"
                             "            failureThreshold: 2\n", "")),
    row("lint-probes-share-endpoint", "lint --only rules", 1, "lint FAILED", out=("probes-split",),
        setup=file_edit(API, "path: /readyz", "path: /healthz")),
    row("lint-prestop-missing", "lint --only rules", 1, "lint FAILED", out=("rules/prestop",),
        setup=file_edit(API, "          lifecycle:\n            preStop:                  # keep serving while the "
                             "endpoint is removed from the load balancer\n              sleep:\n"
                             "                seconds: 10\n", "")),
    row("lint-privileged-container", "lint --only rules", 1, "lint FAILED", out=("rules/security",),
        setup=file_edit(API, "privileged: false", "privileged: true")),
    row("lint-image-tag-latest", "lint --only rules", 1, "lint FAILED", out=("rules/image-tag",),
        setup=first_only(DEV_OVERLAY, 'newTag: "0.1.0"', "newTag: latest")),
    row("lint-yaml-broken", "lint --only yamllint", 1, "lint FAILED", out=("yamllint",),
        setup=file_edit(API, "          imagePullPolicy: IfNotPresent\n", "         imagePullPolicy: IfNotPresent\n")),
    row("lint-overlay-lists-missing-base", "lint --only render", 1, LINT_FAILED, out=("render",),
        setup=file_edit(DEV_OVERLAY, "  - ../../base/scheduler\n", "  - ../../base/scheduler\n  - ../../base/billing\n")),
    row("lint-schema-port-not-a-number", "lint --only schema", 1, "lint FAILED", out=("schema",),
        setup=file_edit(API, "containerPort: 8080", "containerPort: eighty")),
    row("lint-memory-limit-below-request", "lint --only rules", 1, LINT_FAILED,
        out=("resources-memory", "memory limit 128Mi differs from its request 192Mi"),
        setup=first_only(DEV_API_PATCH, "              cpu: \"1\"\n              memory: 192Mi",
                         "              cpu: \"1\"\n              memory: 128Mi")),
    # files that are not UTF-8 are findings naming the file, the byte and the line, never a traceback
    row("lint-manifest-not-utf8", "lint --only yamllint", 1, LINT_FAILED,
        out=("infra/k8s/base/api/x.yaml", "yamllint/encoding", "not UTF-8 text (byte 0xff at offset 6, line 1)"),
        setup=write_bytes("infra/k8s/base/api/x.yaml", b"a: caf\xff\n", append=False)),
    row("lint-listed-manifest-not-utf8", "lint --only yamllint,render", 1, "lint FAILED",
        out=(API, "not UTF-8 text (byte 0xe9"), setup=write_bytes(API, b"# caf\xe9\n")),
]

NEW_SERVICE = [
    row("new-service-kind-missing", "new-service billing", 2, "--kind is required", KINDS),
    row("new-service-kind-unknown", "new-service billing --kind db", 2, "--kind 'db' is not a service kind", KINDS),
    row("new-service-kind-uppercase", "new-service billing --kind HTTP", 2, "--kind 'HTTP'", KINDS),
    row("new-service-kind-empty", "new-service billing --kind ''", 2, "--kind is required", KINDS),
    row("new-service-name-uppercase", "new-service Billing --kind http", 2, "NAME 'Billing' is not a valid service name",
        NAME_RULE),
    row("new-service-name-path-traversal", "new-service ../x --kind http", 2, "NAME '../x'", NAME_RULE),
    row("new-service-name-with-slash", "new-service a/b --kind worker", 2, "NAME 'a/b'", NAME_RULE),
    row("new-service-name-empty", "new-service '' --kind http", 2, "NAME ''", NAME_RULE),
    row("new-service-name-leading-digit", "new-service 1billing --kind http", 2, "NAME '1billing'", NAME_RULE),
    row("new-service-name-trailing-dash", "new-service billing- --kind http", 2, "NAME 'billing-'", NAME_RULE),
    row("new-service-name-underscore", "new-service bill_ing --kind cron", 2, "NAME 'bill_ing'", NAME_RULE),
    row("new-service-name-41-chars", f"new-service {'b' * 41} --kind http", 2, "is not a valid service name",
        NAME_RULE),
    row("new-service-name-exists", "new-service api --kind http", 2, "NAME 'api': service exists already",
        "pick another name"),
    row("new-service-name-exists-other-kind", "new-service worker --kind cron --dry-run", 2,
        "NAME 'worker': service exists already"),
    row("new-service-name-reserved", "new-service shared --kind http", 2, "NAME 'shared' is reserved",
        "pick another name"),
    row("new-service-stale-overlay-entry", "new-service billing --kind http", 2,
        "dev overlay already lists base/billing", "remove the stale entry",
        setup=file_edit(DEV_OVERLAY, "  - ../../base/scheduler\n", "  - ../../base/scheduler\n  - ../../base/billing\n")),
    row("new-service-leftover-patch", "new-service billing --kind worker", 2, "patches/billing.yaml exists already",
        "remove the leftover", setup=write_file("infra/k8s/overlays/prod/patches/billing.yaml", "# left over\n")),
    row("new-service-bad-name-dry-run", "new-service Billing --kind http --dry-run", 2, "NAME 'Billing'", NAME_RULE),
    row("new-service-name-kube-system", "new-service kube-system --kind http", 2, "NAME 'kube-system' is reserved",
        "pick another name"),
    row("new-service-name-default", "new-service default --kind worker", 2, "NAME 'default' is reserved"),
    row("new-service-name-kube-public", "new-service kube-public --kind cron --dry-run", 2, "is reserved"),
    row("new-service-name-kube-node-lease", "new-service kube-node-lease --kind http", 2, "is reserved"),
    row("new-service-name-kube-prefix", "new-service kube-billing --kind http", 2, "NAME 'kube-billing' is reserved"),
    row("new-service-name-given-twice", "new-service billing --name other --kind http", 2,
        "new-service takes no further argument 'other'"),
    row("new-service-name-missing", "new-service --kind http", 2, "new-service needs NAME"),
    row("new-service-overlay-not-yaml", "new-service billing --kind http", 2, f"{DEV_OVERLAY} is not valid YAML",
        "line ", setup=file_edit(DEV_OVERLAY, "resources:\n", "resources: [\n")),
    row("new-service-overlay-not-a-map", "new-service billing --kind worker", 2, f"{DEV_OVERLAY} is not a kustomization",
        setup=write_file(DEV_OVERLAY, "- ../../base/api\n")),
    row("new-service-overlay-not-utf8", "new-service billing --kind http", 2,
        f"{DEV_OVERLAY} is not UTF-8 text (byte 0xff", "save it as UTF-8", setup=write_bytes(DEV_OVERLAY, b"# \xff\n")),
    row("new-service-cd-workflow-not-utf8", "new-service billing --kind worker --dry-run", 2,
        ".github/workflows/cd.yml is not UTF-8 text (byte 0xfe", setup=write_bytes(".github/workflows/cd.yml", b"#\xfe\n")),
    row("new-service-overlay-resources-not-a-list", "new-service billing --kind cron", 2,
        f"{DEV_OVERLAY}: resources is not a list", setup=file_edit(DEV_OVERLAY, "resources:\n", "resources: x\nold:\n")),
]

# ci.check takes no arguments: its input is .github/. Each broken workflow is a finding naming the project rule.
CI_CHECK = [
    row("ci-action-not-pinned", "ci.check --json", 1, CI_FAILED, out=('"rule": "pinned-uses"',),
        setup=first_only(CI, CHECKOUT, "actions/checkout@v5")),
    row("ci-job-without-timeout", "ci.check --json", 1, CI_FAILED, out=('"rule": "job-timeout"',),
        setup=first_only(CI, "    timeout-minutes: 15\n", "")),
    row("ci-pull-request-target", "ci.check --json", 1, CI_FAILED, out=('"rule": "no-pull-request-target"',),
        setup=first_only(CI, "  pull_request:\n", "  pull_request_target:\n")),
    row("ci-expression-in-run", "ci.check --json", 1, CI_FAILED, out=('"rule": "run-expression"',),
        setup=first_only(CI, "run: . .venv/bin/activate && ruff check .",
                         "run: echo ${{ github.event.pull_request.title }}")),
    row("ci-workflow-not-yaml", "ci.check", 1, CI_FAILED, out=("ci.yml",),
        setup=first_only(CI, "jobs:\n", "jobs: [\n")),
    row("ci-workflow-not-utf8", "ci.check --json", 1, CI_FAILED,
        out=('"file": ".github/workflows/late.yml"', "not UTF-8 text (byte 0xff at offset 10, line 2)"),
        setup=write_bytes(".github/workflows/late.yml", b"name: x\n# \xff\n", append=False)),
    row("ci-workflow-directory", "ci.check --json", 1, CI_FAILED,
        out=('"file": ".github/workflows/nightly.yml"', "is a directory named like a workflow file"),
        setup=make_directory(".github/workflows/nightly.yml")),
    row("ci-action-not-utf8", "ci.check --json", 1, CI_FAILED,
        out=('"file": ".github/actions/setup/action.yml"', "not UTF-8 text (byte 0xc0"),
        setup=write_bytes(".github/actions/setup/action.yml", b"# \xc0\n")),
    row("lint-workflows-not-utf8", "lint --only workflows", 1, "lint FAILED", out=("late.yml", "not UTF-8 text"),
        setup=write_bytes(".github/workflows/late.yml", b"\xff", append=False)),
]

TABLE = LINT_SELECTION + LINT_MANIFESTS + NEW_SERVICE + CI_CHECK


@pytest.fixture
def world(bad_input_project, tmp_path, monkeypatch):
    return bad.make_world(bad_input_project, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", TABLE)
def test_bad_input(world, case):
    bad.check(world, case)


def test_the_table_is_whole():
    assert bad.ids_are_unique(TABLE) and len(TABLE) >= 40
