"""`invoke ci.check`: the .github/ workflows and composite actions, checked by actionlint, zizmor (offline),
GitHub's JSON schemas (check-jsonschema) and the project's own rules, reported as one list of Findings.

The tools know what GitHub accepts and what is exploitable; the project's rules add what no generic tool can
know: pins that say their version, a timeout and explicit permissions on every job, deploys that queue
instead of overlapping, and a CD matrix that names exactly the services in infra/k8s/base.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from infra.lint.findings import Finding
from infra.ops.errors import Failed
from infra.ops.io import manifests
from infra.ops.io.text import NotUtf8, read_utf8

NAME = "workflows"  # the name of this check inside `invoke lint --only/--skip`
TOOL_TIMEOUT_S = 120
INSTALL_FIX = "install the dev tools: .venv/bin/pip install -r requirements-dev.txt"
FULL_SHA = re.compile(r"@[0-9a-f]{40}$")
LOCAL = ("$/", "./")
LOCATOR = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[\w./-]+$")  # owner/repo[/path]@ref, as GitHub reads it
VERSION_COMMENT = re.compile(r"#\s*v?\d+(\.\d+)*\b")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
PATHS_FILTER = "dorny/paths-filter@"
SETUP_ACTION = "/.github/actions/setup"
# The role variable a job assumes -> the eks-platform:access.github key naming the one environment its role trusts.
ROLE_ENVIRONMENTS = {"AWS_DEPLOY_ROLE_ARN": "deploy_environment", "AWS_INFRA_ROLE_ARN": "infra_environment"}
SERVICE_PATHS = ("infra/k8s/base/{svc}/**", "services/{svc}/**")


class ToolFailure(Failed):
    """A checker could not run (missing, crashed, timed out): a finding, so nothing passes unchecked."""


@dataclass(frozen=True)
class Sources:
    """The files under check: workflows and composite actions of one repository root."""

    root: Path
    workflows: tuple[Path, ...]
    actions: tuple[Path, ...]
    unreadable: tuple[Finding, ...] = ()  # named like a workflow or action but no UTF-8 file: no tool gets them

    @classmethod
    def of(cls, root: Path) -> Sources:
        github = root / ".github"
        unreadable: list[Finding] = []

        def readable(paths: list[Path]) -> tuple[Path, ...]:
            kept = []
            for path in sorted(paths):
                where = path.relative_to(root).as_posix()
                if path.is_dir():
                    unreadable.append(Finding(where, "", "sources", "is a directory named like a workflow file, so "
                                              "GitHub runs nothing from it", "rename or remove it (workflows are "
                                              "files directly in .github/workflows)"))
                    continue
                try:
                    read_utf8(path)
                except (NotUtf8, OSError) as error:
                    unreadable.append(Finding(where, "", "sources", str(error),
                                              "save it as UTF-8 (GitHub reads workflow files as UTF-8)"))
                    continue
                kept.append(path)
            return tuple(kept)

        return cls(root=root, workflows=readable([*github.glob("workflows/*.yml"), *github.glob("workflows/*.yaml")]),
                   actions=readable([*github.glob("actions/*/action.yml"), *github.glob("actions/*/action.yaml")]),
                   unreadable=tuple(unreadable))

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def all(self) -> tuple[Path, ...]:
        return self.workflows + self.actions


def check(root: Path = manifests.REPO) -> list[Finding]:
    """Every finding over root/.github; the four checkers run side by side."""
    src = Sources.of(root)
    if not src.all():
        return [*src.unreadable, Finding(".github", "", "sources", "no workflows or composite actions found",
                                         "add .github/workflows/*.yml (see docs/ci-cd.md)")]
    checkers: dict[str, Callable[[Sources], list[Finding]]] = {
        "actionlint": actionlint, "zizmor": zizmor, "rules": rules,
        "check-jsonschema workflows": lambda s: schemas(s, "vendor.github-workflows", s.workflows),
        "check-jsonschema actions": lambda s: schemas(s, "vendor.github-actions", s.actions)}
    with ThreadPoolExecutor(max_workers=len(checkers)) as pool:
        futures = {name: pool.submit(fn, src) for name, fn in checkers.items()}
    found: list[Finding] = list(src.unreadable)
    for name, future in futures.items():
        try:
            found.extend(future.result())
        except ToolFailure as failure:
            problem, fix = failure.args
            found.append(Finding(".github", "", name, problem, fix))
    return sorted(set(found))


def start(root: Path = manifests.REPO) -> Future[list[Finding]]:
    """check() in the background, so `invoke lint` runs it beside its own (slower) checks."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ci-check")
    future = pool.submit(check, root)
    pool.shutdown(wait=False)
    return future


def summary(findings: list[Finding], root: Path = manifests.REPO) -> str:
    src = Sources.of(root)
    errors = sum(f.failed for f in findings)
    verdict = "FAILED" if errors else "passed"
    return (f"ci.check {verdict}: {errors} error(s) in {len(src.workflows)} workflow(s) and {len(src.actions)} "
            f"composite action(s); actionlint, zizmor --offline, check-jsonschema, project rules")


# --- the tools -------------------------------------------------------------------------------------------------

def _tool(name: str) -> str | None:
    """The tool from this interpreter's environment first (the .venv CI builds), then PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(name, path=search)


def _run(tool: str, args: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> str:
    exe = _tool(tool)
    if exe is None:
        raise ToolFailure(f"{tool} is not installed", INSTALL_FIX)
    try:
        done = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        raise ToolFailure(f"{tool} took longer than {TOOL_TIMEOUT_S}s", "run it by hand to see why") from None
    if done.returncode not in ok:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()] or [f"exit code {done.returncode}"]
        reason = next((line for line in lines if line.lower().startswith(("error", "fatal"))), lines[-1])
        raise ToolFailure(f"{tool} failed: {reason}", f"run `{tool}` by hand; {INSTALL_FIX}")
    return done.stdout


def _json(tool: str, text: str) -> Any:
    try:
        return json.loads(text or "null")
    except json.JSONDecodeError:
        raise ToolFailure(f"{tool} printed no JSON: {text[:120]!r}", f"run `{tool}` by hand") from None


def actionlint(src: Sources) -> list[Finding]:
    """Syntax, expressions, types, local action inputs, and shellcheck on every `run:` script."""
    if not src.workflows:
        return []
    shellcheck = _tool("shellcheck") or ""
    # The self-hosted runner labels; named explicitly, since actionlint looks for it only beside a .git directory.
    config = src.root / ".github" / "actionlint.yaml"
    given = ["-config-file", src.rel(config)] if config.is_file() else []
    out = _run("actionlint", ["-format", "{{json .}}", "-no-color", f"-shellcheck={shellcheck}", "-pyflakes=", *given,
                              *map(src.rel, src.workflows)], src.root, ok=(0, 1))
    return [Finding(e["filepath"], f"line {e['line']}:{e['column']}", f"actionlint:{e['kind']}", e["message"],
                    f"see actionlint's docs/checks.md, '{e['kind']}'")
            for e in _json("actionlint", out) or []]


def zizmor(src: Sources) -> list[Finding]:
    """Security audits (injection, credentials, permissions, pinning), offline: no GitHub API calls."""
    out = _run("zizmor", ["--offline", "--format", "json", "--no-progress", "--no-exit-codes",
                          *map(src.rel, src.all())], src.root)
    found = []
    for item in _json("zizmor", out) or []:
        if item.get("ignored"):
            continue
        where = next((loc for loc in item["locations"] if loc["symbolic"].get("kind") == "Primary"),
                     item["locations"][0])
        key = where["symbolic"]["key"].get("Local") or {}
        path = key.get("verbatim_path") or key.get("given_path") or "?"
        row = where["concrete"]["location"]["start_point"]["row"] + 1
        note = where["symbolic"].get("annotation", "")
        found.append(Finding(Path(path).as_posix().removeprefix("./"), f"line {row}", f"zizmor:{item['ident']}",
                             f"{item['desc']}: {note}".rstrip(": "), f"see {item['url']}"))
    return found


def schemas(src: Sources, schema: str, files: tuple[Path, ...]) -> list[Finding]:
    """GitHub's own schema for workflow or action files (shipped inside check-jsonschema: no network)."""
    if not files:
        return []
    out = _json("check-jsonschema", _run("check-jsonschema", ["-o", "json", "--builtin-schema", schema,
                                                              *map(src.rel, files)], src.root, ok=(0, 1)))
    found = []
    for error in out.get("errors", []):
        best = error.get("best_deep_match") or error.get("best_match") or error
        found.append(Finding(error["filename"], best["path"], f"schema:{schema}", best["message"],
                             "make the file match GitHub's schema for it"))
    for error in out.get("parse_errors", []):
        found.append(Finding(error["filename"], "", f"schema:{schema}", error["message"], "fix the YAML syntax"))
    return found


# --- the project's rules ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Document:
    """One parsed workflow or action, with its raw lines for comments ruamel does not hand out easily."""

    file: str
    data: Any
    lines: tuple[str, ...]

    def line(self, node: Any, key: Any = None) -> str:
        """'line N' of a mapping node (or of one of its keys), 1-based."""
        try:
            row = node.lc.key(key)[0] if key is not None else node.lc.line
        except (AttributeError, KeyError, TypeError):
            return ""
        return f"line {row + 1}"

    def text_at(self, node: Any, key: Any) -> str:
        try:
            return self.lines[node.lc.value(key)[0]]
        except (AttributeError, KeyError, IndexError, TypeError):
            return ""


def _load(src: Sources, path: Path) -> Document | None:
    text = path.read_text(encoding="utf-8")
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError:
        return None  # actionlint and the schema check report the syntax error with its position
    return Document(src.rel(path), data if isinstance(data, dict) else {}, tuple(text.splitlines()))


def rules(src: Sources) -> list[Finding]:
    """The project's own rules over every workflow and composite action."""
    found: list[Finding] = []
    for path in src.workflows:
        doc = _load(src, path)
        if doc is not None:
            found += [*_workflow_rules(doc), *_pin_rules(doc, src.root), *_run_rules(doc), *_oidc_rules(doc, src.root),
                      *_reach_rules(doc, src.root)]
            if path.stem == "cd":
                found += _cd_rules(doc, manifests.services(src.root / "infra" / "k8s"))
    pulumi = _pulumi_pin(src.root / "requirements.txt")
    for path in src.actions:
        doc = _load(src, path)
        if doc is not None:
            found += [*_action_rules(doc), *_pin_rules(doc, src.root), *_run_rules(doc), *_pulumi_rules(doc, pulumi)]
    return found


def _pulumi_pin(requirements: Path) -> str | None:
    """The `pulumi==X` pin: the CLI that runs the program should be the SDK's own release."""
    if not requirements.is_file():
        return None
    match = re.search(r"^pulumi==([\w.]+)", requirements.read_text(encoding="utf-8"), re.M)
    return match.group(1) if match else None


def _pulumi_rules(doc: Document, pin: str | None) -> Iterator[Finding]:
    spec = (doc.data.get("inputs") or {}).get("pulumi-version")
    default = str(spec.get("default", "")) if isinstance(spec, dict) else ""
    if pin and default and default != pin:
        yield Finding(doc.file, "inputs.pulumi-version", "pulumi-version",
                      f"installs the Pulumi CLI {default}, but requirements.txt pins pulumi=={pin}",
                      f"set the default to \"{pin}\" (bump both together)")


def _jobs(doc: Document) -> Iterator[tuple[str, Any]]:
    jobs = doc.data.get("jobs")
    if isinstance(jobs, dict):
        yield from ((name, job) for name, job in jobs.items() if isinstance(job, dict))


def _steps(doc: Document) -> Iterator[Any]:
    """Every step mapping: of each job, or of a composite action's `runs`."""
    groups = [job.get("steps") for _, job in _jobs(doc)] + [(doc.data.get("runs") or {}).get("steps")]
    for steps in groups:
        if isinstance(steps, list):
            yield from (step for step in steps if isinstance(step, dict))


def _workflow_rules(doc: Document) -> Iterator[Finding]:
    on = doc.data.get("on", doc.data.get(True))  # YAML 1.1 readers turn a bare `on` into True
    triggers = on if isinstance(on, dict) else ([on] if isinstance(on, str) else list(on or []))
    if "pull_request_target" in triggers:
        yield Finding(doc.file, "on", "no-pull-request-target",
                      "pull_request_target runs with a write token and secrets next to the pull request's code",
                      "trigger on pull_request; do privileged follow-ups in a separate trusted workflow")
    top = doc.data.get("permissions")
    if top not in (None, {}):
        yield Finding(doc.file, doc.line(doc.data, "permissions"), "job-permissions",
                      f"workflow-wide permissions {dict(top) if isinstance(top, dict) else top!r} reach every job",
                      "set `permissions: {}` at the top and grant each job only what it needs")
    for name, job in _jobs(doc):
        where = f"jobs.{name}"
        if "permissions" not in job:
            yield Finding(doc.file, where, "job-permissions", "job does not declare its token permissions",
                          "add `permissions:` to the job with the least it needs, e.g. `contents: read`")
        if "timeout-minutes" not in job and "uses" not in job:
            yield Finding(doc.file, where, "job-timeout", "job has no timeout-minutes (the default is 6 hours)",
                          "add `timeout-minutes:` a little above the job's normal duration")
        if "environment" in job:
            group = job.get("concurrency")
            queued = isinstance(group, dict) and group.get("cancel-in-progress") is False
            if not queued:
                yield Finding(doc.file, where, "deploy-concurrency",
                              "job deploys to an environment without a queueing concurrency group",
                              "add `concurrency: {group: <what>-<env>, cancel-in-progress: false}` so deploys to "
                              "the same target wait for each other instead of overlapping or being cancelled")


def _oidc_rules(doc: Document, root: Path) -> Iterator[Finding]:
    """A job assuming a stack's CI role runs in the one GitHub environment that role's trust policy names."""
    from infra.config import ConfigError, read_stack_file

    for name, job in _jobs(doc):
        steps = job.get("steps")
        for step in steps if isinstance(steps, list) else []:
            given = step.get("with") if isinstance(step, dict) else None
            if not isinstance(given, dict) or not str(step.get("uses", "")).endswith(SETUP_ACTION):
                continue
            stack, role = str(given.get("stack", "")), str(given.get("aws-role-arn", ""))
            key = next((k for var, k in ROLE_ENVIRONMENTS.items() if var in role), None)
            if key is None or "${{" in stack:
                continue
            try:
                github = (read_stack_file(stack, root).get("eks-platform:access") or {}).get("github") or {}
            except ConfigError:
                continue
            environment = job.get("environment")
            actual = environment.get("name") if isinstance(environment, dict) else environment
            if github.get(key) and actual != github[key]:
                yield Finding(doc.file, f"jobs.{name}", "oidc-environment",
                              f"assumes the {stack} role from environment {actual!r}, but the role trusts only "
                              f"{github[key]!r} (Pulumi.{stack}.yaml eks-platform:access.github.{key})",
                              f"set `environment: {github[key]}` on the job (or change {key} in the stack file)")


_MATRIX_VALUE = re.compile(r"^\$\{\{\s*matrix\.([\w-]+)\s*\}\}$")


def _labels(runs_on: Any) -> tuple[str, ...] | None:
    """runs-on as a set of labels (a string, a list, or {labels: ...}); None for an expression."""
    if isinstance(runs_on, dict):
        runs_on = runs_on.get("labels")
    if isinstance(runs_on, str):
        return None if "${{" in runs_on else (runs_on,)
    if isinstance(runs_on, list) and all(isinstance(label, str) and "${{" not in label for label in runs_on):
        return tuple(runs_on)
    return None


def _job_stacks(job: Any) -> dict[str, tuple[str, ...] | None]:
    """stack -> the runner labels a job uses for it, for every stack the job's setup step names (literally or
    through `${{ matrix.stack }}`); labels None when runs-on is an expression the rule cannot resolve."""
    strategy = job.get("strategy")
    matrix = strategy.get("matrix") if isinstance(strategy, dict) else None
    matrix = matrix if isinstance(matrix, dict) else {}
    include = matrix.get("include")
    includes = [row for row in include if isinstance(row, dict)] if isinstance(include, list) else []
    runs_on = job.get("runs-on")
    key = _MATRIX_VALUE.match(runs_on.strip()) if isinstance(runs_on, str) else None
    found: dict[str, tuple[str, ...] | None] = {}
    steps = job.get("steps")
    for step in steps if isinstance(steps, list) else []:
        given = step.get("with") if isinstance(step, dict) else None
        if not isinstance(given, dict) or not str(step.get("uses", "")).endswith(SETUP_ACTION) or not given.get("stack"):
            continue
        stack = str(given["stack"])
        by_matrix = _MATRIX_VALUE.match(stack.strip())
        values = matrix.get(by_matrix.group(1)) if by_matrix else None
        stacks = ([str(v) for v in (values if isinstance(values, list) else [])] + [
            str(row[by_matrix.group(1)]) for row in includes if by_matrix.group(1) in row]) if by_matrix else [stack]
        for name in dict.fromkeys(stacks):
            if key:
                row = next((r for r in includes if str(r.get("stack")) == name and key.group(1) in r), None)
                found[name] = _labels(row[key.group(1)]) if row else None
            else:
                found[name] = _labels(runs_on)
    return found


def _reach_rules(doc: Document, root: Path) -> Iterator[Finding]:
    """A job that acts on a stack (its setup step names one) runs where that stack's Kubernetes API answers:
    anywhere for a public endpoint open to the internet, else on a runner carrying the stack's
    eks-platform:cluster.ci_runner_labels (a self-hosted runner inside the VPC for a private endpoint)."""
    from infra.config import ConfigError, load_stack_config

    for name, job in _jobs(doc):
        for stack, labels in _job_stacks(job).items():
            try:
                cluster = load_stack_config(stack, root).cluster
            except ConfigError:
                continue  # an unknown or invalid stack is reported by the stack checks
            if cluster.reachable_from_anywhere:
                continue
            key = f"Pulumi.{stack}.yaml eks-platform:cluster.ci_runner_labels"
            where = "private" if not cluster.endpoint_public_access else "open to an allow-list only"
            if not cluster.ci_runner_labels:
                yield Finding(doc.file, f"jobs.{name}", "api-reach",
                              f"acts on {stack}, whose API endpoint is {where}, but {key} names no runner that "
                              f"reaches it", f"set {key} to the labels of a runner inside the VPC and run the job there")
            elif labels is None:
                yield Finding(doc.file, f"jobs.{name}", "api-reach",
                              f"acts on {stack} on a runner this check cannot resolve",
                              "write runs-on as labels, or as ${{ matrix.<key> }} with an include row per stack")
            elif not set(cluster.ci_runner_labels) <= set(labels):
                wanted = ", ".join(cluster.ci_runner_labels)
                yield Finding(doc.file, f"jobs.{name}", "api-reach",
                              f"acts on {stack} from a runner labelled {', '.join(labels)}, but {stack}'s API endpoint "
                              f"is {where}: only runners labelled {wanted} ({key}) reach it",
                              f"run the {stack} job on runs-on: [{wanted}]")


def _pin_rules(doc: Document, root: Path) -> Iterator[Finding]:
    holders = [*(job for _, job in _jobs(doc)), *_steps(doc)]
    for node in holders:
        uses = node.get("uses")
        if not isinstance(uses, str):
            continue
        where = doc.line(node, "uses")
        if uses.startswith(LOCAL):  # `$/` is GitHub's self-repository form, `./` the workspace-relative one
            target = root / uses[2:]
            is_workflow = target.suffix in (".yml", ".yaml") and target.is_file()
            if not is_workflow and not any((target / name).is_file() for name in ("action.yml", "action.yaml")):
                yield Finding(doc.file, where, "local-uses", f"{uses} names no action.yml (or reusable workflow) "
                              f"in this repository", "point `uses:` at ./<dir> holding action.yml, e.g. "
                              "$/.github/actions/setup")
            continue
        if not uses.startswith("docker://") and not LOCATOR.match(uses):
            yield Finding(doc.file, where, "local-uses", f"{uses} is neither $/<path in this repository>, "
                          "owner/repo[/path]@ref nor docker://image", "write a local action as $/.github/actions/<name>")
            continue
        if uses.startswith("docker://"):
            if "@sha256:" not in uses:
                yield Finding(doc.file, where, "pinned-uses", f"{uses} is a mutable image tag",
                              "pin the image digest: docker://image@sha256:<digest>")
            continue
        if not FULL_SHA.search(uses):
            action = uses.split("@")[0]
            yield Finding(doc.file, where, "pinned-uses", f"{uses} is not pinned to a commit (tags and branches move)",
                          f"pin the release's full commit SHA, version as comment: {action}@<40-hex sha> # vX.Y.Z")
        elif not VERSION_COMMENT.search(doc.text_at(node, "uses")):
            yield Finding(doc.file, where, "pinned-uses", f"{uses} has no version comment",
                          "say which release the SHA is: append `# vX.Y.Z` on the same line")


def _run_rules(doc: Document) -> Iterator[Finding]:
    for step in _steps(doc):
        script = step.get("run")
        if not isinstance(script, str):
            continue
        for expression in EXPRESSION.findall(script):
            yield Finding(doc.file, doc.line(step, "run"), "run-expression",
                          f"`${{{{{expression}}}}}` is pasted into the script, where its value becomes shell code",
                          "pass it through the step's env: (NAME: ${{ ... }}) and use \"$NAME\" in the script")


def _action_rules(doc: Document) -> Iterator[Finding]:
    runs = doc.data.get("runs") or {}
    if runs.get("using") != "composite":
        return
    for step in runs.get("steps") or []:
        if isinstance(step, dict) and "run" in step and "shell" not in step:
            yield Finding(doc.file, doc.line(step, "run"), "action-shell", "a composite `run` step has no shell",
                          "add `shell: bash` to the step")
    used = json.dumps({"runs": runs, "outputs": doc.data.get("outputs")}, default=str)
    for name, spec in (doc.data.get("inputs") or {}).items():
        if not isinstance(spec, dict) or not spec.get("description"):
            yield Finding(doc.file, f"inputs.{name}", "action-inputs", "input has no description",
                          "describe what the input is for and its format")
        if not re.search(rf"inputs\.{re.escape(name)}(?![\w-])|inputs\[['\"]{re.escape(name)}['\"]\]", used):
            yield Finding(doc.file, f"inputs.{name}", "action-inputs", "input is declared but never used",
                          "use it in a step (through env:) or remove it")


def _cd_rules(doc: Document, services: list[str]) -> Iterator[Finding]:
    """The CD workflow deploys exactly the services of infra/k8s/base, each with its path filter."""
    wanted = set(services)
    filters_step = next((s for s in _steps(doc) if str(s.get("uses", "")).startswith(PATHS_FILTER)), None)
    if filters_step is None:
        yield Finding(doc.file, "jobs", "cd-services", "no dorny/paths-filter step decides which services changed",
                      "add a paths-filter step with one filter per service")
    else:
        raw = (filters_step.get("with") or {}).get("filters") or ""
        try:
            filters = YAML(typ="safe").load(raw) if isinstance(raw, str) else None
        except YAMLError:
            filters = None
        filters = filters if isinstance(filters, dict) else {}
        where = doc.line(filters_step, "with")
        for svc in sorted(wanted - set(filters)):
            paths = ", ".join(p.format(svc=svc) for p in SERVICE_PATHS)
            yield Finding(doc.file, where, "cd-services", f"service {svc!r} has no path filter, so it never deploys",
                          f"add a filter `{svc}:` with {paths}")
        for name in sorted(set(filters) - wanted):
            yield Finding(doc.file, where, "cd-services", f"filter {name!r} names no service in infra/k8s/base",
                          f"remove it or add infra/k8s/base/{name}; services: {', '.join(sorted(wanted))}")
        for svc in sorted(wanted & set(filters)):
            missing = [p.format(svc=svc) for p in SERVICE_PATHS if p.format(svc=svc) not in (filters[svc] or [])]
            if missing:
                yield Finding(doc.file, where, "cd-services", f"filter {svc!r} misses {', '.join(missing)}",
                              "list the service's manifests and its source in its filter")
    on = doc.data.get("on", doc.data.get(True)) or {}
    dispatch = (on.get("workflow_dispatch") or {}) if isinstance(on, dict) else {}
    options = ((dispatch.get("inputs") or {}).get("service") or {}).get("options")
    if options is None:
        yield Finding(doc.file, "on.workflow_dispatch", "cd-services", "no workflow_dispatch `service` choice",
                      "add a workflow_dispatch input `service` (type: choice) listing every service")
    elif set(options) != wanted:
        yield Finding(doc.file, "on.workflow_dispatch.inputs.service", "cd-services",
                      f"choices {sorted(options)} differ from the services {sorted(wanted)}",
                      f"set options: [{', '.join(sorted(wanted))}]")
