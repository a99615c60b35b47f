"""Single-service deploy: image, render, server-side apply, fail-fast rollout, smoke check, rollback, record.

One pass, in order: resolve the service -> image tag (git SHA) -> build/push or verify the tag in ECR ->
render the env overlay with that image -> validate -> take the service's Lease -> capture what runs now
-> server-side apply (or a server-side dry-run and a diff) -> track the rollout -> smoke check through
the API server's service proxy -> on any failure put back exactly the captured objects and track that
too -> record history and notify -> release the Lease. Interrupts (SIGINT/SIGTERM) take the same
failure path and end with exit code 130. Nothing here imports pulumi.
"""
from __future__ import annotations

import copy
import difflib
import hmac
import json
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from infra.ops import history, manifests, notify
from infra.ops.docker_cli import Docker
from infra.ops.ecr import Registry
from infra.ops.history import CHANGE_CAUSE, DeployRecord
from infra.ops.kube import KINDS, Kube, KubeError, ref
from infra.ops.lock import DeployLock, identity
from infra.ops.report import Reporter
from infra.ops.rollout import REVISION, Progress, Rollout, Verdict

REPO = manifests.REPO
MANAGER_PREFIX = "eks-platform-deploy"
SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                 "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences")
SERVER_ANNOTATIONS = (REVISION, "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas")
WORKLOADS = ("Deployment", "CronJob")


class BadInput(Exception):
    """Wrong service, env, tag or manifests: exit 2, nothing changed."""


class DeployFailed(Exception):
    """The deploy ran and failed (rolled back unless told not to): exit 1."""


class Interrupted(Exception):
    """Stopped by SIGINT/SIGTERM after cleaning up: exit 130."""


@dataclass(frozen=True)
class Target:
    """A service in an environment: where its overlay is and which namespace it runs in."""

    service: str
    env: str
    overlay: Path
    namespace: str

    @property
    def manager(self) -> str:
        return f"{MANAGER_PREFIX}-{self.service}"


def resolve(service: str, env: str, k8s_root: Path = manifests.K8S_ROOT) -> Target:
    """The service and env as the kustomize tree knows them; BadInput listing valid names otherwise."""
    services, envs = manifests.services(k8s_root), manifests.overlays(k8s_root)
    if service not in services:
        raise BadInput(f"service {service!r} is not in infra/k8s/base; use one of: {', '.join(services)}")
    if env not in envs:
        raise BadInput(f"--env {env!r} has no overlay in infra/k8s/overlays; use one of: {', '.join(envs)}")
    overlay = k8s_root / "overlays" / env
    namespace = (yaml.safe_load((overlay / "kustomization.yaml").read_text()) or {}).get("namespace")
    if not namespace:
        raise BadInput(f"infra/k8s/overlays/{env}/kustomization.yaml sets no namespace; add `namespace: apps-{env}`")
    return Target(service, env, overlay, namespace)


def git_tag(repo: Path = REPO, allow_dirty: bool = False) -> str:
    """The image tag for the working tree: the short commit SHA; BadInput on a dirty tree unless allowed."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BadInput(f"{repo} is not a git checkout ({done.stderr.strip() or 'git failed'}); deploy an "
                           f"existing image with --tag")
        return done.stdout.strip()

    sha = git("rev-parse", "--short=12", "HEAD")
    dirty = git("status", "--porcelain")
    if dirty and not allow_dirty:
        count = len(dirty.splitlines())
        raise BadInput(f"the working tree has {count} uncommitted change(s), so the git SHA would not describe "
                       f"the image; commit them, or pass --allow-dirty")
    return sha


# -- objects ---------------------------------------------------------------------------------------------
def clean(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as one would apply it: without status and server-owned metadata."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in SERVER_FIELDS:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    for key in SERVER_ANNOTATIONS:
        annotations.pop(key, None)
    if "annotations" in meta and not annotations:
        del meta["annotations"]
    return out


_REDACTION_KEY = secrets.token_bytes(16)  # per process: equal values match in a diff, none can be guessed back


def redact(obj: dict[str, Any]) -> dict[str, Any]:
    """Secret values replaced by a keyed fingerprint: diffs show that a value changed, never the value."""
    if obj.get("kind") != "Secret":
        return obj
    out = copy.deepcopy(obj)
    for key in ("data", "stringData"):
        if out.get(key):
            out[key] = {k: f"[redacted {hmac.new(_REDACTION_KEY, str(v).encode(), 'sha256').hexdigest()[:8]}]"
                        for k, v in out[key].items()}
    return out


def diff(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """Unified diff of one object (clean, redacted YAML); [] when nothing changes."""
    old = yaml.safe_dump(redact(clean(before)), sort_keys=True).splitlines() if before else []
    new = yaml.safe_dump(redact(clean(after)), sort_keys=True).splitlines()
    return list(difflib.unified_diff(old, new, f"live/{ref(after)}", f"deploy/{ref(after)}", lineterm="", n=3))


def workload(objects: list[dict[str, Any]], service: str) -> dict[str, Any] | None:
    return next((o for o in objects if o.get("kind") in WORKLOADS and o["metadata"].get("name") == service), None)


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def service_image(objects: list[dict[str, Any]], service: str) -> str:
    """The image the service's workload runs (its container named like the service, else the first)."""
    found = workload(objects, service)
    if found is None:
        raise BadInput(f"the overlay renders no Deployment or CronJob named {service}; check "
                       f"infra/k8s/base/{service}")
    containers = pod_spec(found).get("containers") or []
    container = next((c for c in containers if c.get("name") == service), containers[0] if containers else None)
    if not container or not container.get("image"):
        raise BadInput(f"{ref(found)} has no container image; set `image: {service}` in infra/k8s/base/{service}")
    return container["image"]


def image_name(image: str) -> str:
    """registry/repo without :tag or @digest."""
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def rendered_image_name(target: Target) -> str:
    """The image name kustomize renders for the service before our override: the overlay's `images:` entry for
    it (newName), else the base's bare `image: <service>`."""
    entries = (yaml.safe_load((target.overlay / "kustomization.yaml").read_text()) or {}).get("images") or []
    entry = next((e for e in entries if e.get("name") == target.service), {})
    return entry.get("newName") or target.service


def render(target: Target, image: str) -> list[dict[str, Any]]:
    """The service's objects from the env overlay with its image set through kustomize `images:`."""
    try:
        rendered = manifests.service_objects(manifests.render(target.overlay, images={rendered_image_name(target):
                                                                                      image}), target.service)
    except manifests.RenderError as exc:
        raise BadInput(f"kustomize cannot render infra/k8s/overlays/{target.env}: {exc}") from None
    objects = [m.obj for m in rendered]
    validate(objects, target, image)
    return objects


def validate(objects: list[dict[str, Any]], target: Target, image: str) -> None:
    """The rendered objects are deployable: known kinds, named, in the env's namespace, with the new image."""
    problems = []
    for obj in objects:
        kind, meta = obj.get("kind"), obj.get("metadata") or {}
        if not obj.get("apiVersion") or not meta.get("name"):
            problems.append(f"an object of kind {kind} has no apiVersion or metadata.name")
        elif kind not in KINDS:
            problems.append(f"{ref(obj)}: kind {kind} is not deployable by `invoke deploy`")
        elif KINDS[kind][1] and meta.get("namespace") != target.namespace:
            problems.append(f"{ref(obj)} is in namespace {meta.get('namespace')!r}, not {target.namespace!r}")
    if not problems and service_image(objects, target.service) != image:
        problems.append(f"the image was not set: {target.service} runs {service_image(objects, target.service)}")
    if problems:
        raise BadInput(f"infra/k8s/overlays/{target.env} renders objects deploy refuses: " + "; ".join(problems))


def with_change_cause(objects: list[dict[str, Any]], service: str, cause: str) -> list[dict[str, Any]]:
    out = copy.deepcopy(objects)
    found = workload(out, service)
    if found is not None:
        found["metadata"].setdefault("annotations", {})[CHANGE_CAUSE] = cause
    return out


# -- capture / apply / restore -----------------------------------------------------------------------------
def _field_sets(live: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """fieldsV1 per field manager, from managedFields (status subresource left out)."""
    sets: dict[str, list[dict[str, Any]]] = {}
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("subresource") != "status":
            sets.setdefault(entry.get("manager", ""), []).append(entry.get("fieldsV1") or {})
    return sets


def _owns(field_sets: list[dict[str, Any]], *path: str) -> bool:
    for fields in field_sets:
        node: Any = fields
        for step in path:
            node = node.get(f"f:{step}") if isinstance(node, dict) else None
        if node is not None:
            return True
    return False


def _union(trees: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tree in trees:
        for key, sub in tree.items():
            out[key] = _union([out.get(key) or {}, sub or {}])
    return out


def extract(value: Any, fields: dict[str, Any]) -> Any:
    """The part of `value` a fieldsV1 tree covers ("f:name", 'k:{"name":"api"}' list items, 'v:' set items)."""
    if not fields or set(fields) == {"."}:
        return copy.deepcopy(value)
    if isinstance(value, dict):
        return {key[2:]: extract(value[key[2:]], sub) for key, sub in fields.items()
                if key.startswith("f:") and key[2:] in value}
    if isinstance(value, list):
        out = []
        for item in value:
            for key, sub in fields.items():
                if key.startswith("k:") and isinstance(item, dict):
                    want = json.loads(key[2:])
                    if all(item.get(k) == v for k, v in want.items()):
                        out.append({**extract(item, sub), **want})
                elif key.startswith("v:") and json.loads(key[2:]) == item:
                    out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(value)


def restorable(live: dict[str, Any], manager: str) -> dict[str, Any]:
    """The live object as a rollback re-applies it: the fields some manager set (not server defaults or
    allocations such as a Service's clusterIP), minus those other managers own and we do not.

    Re-applying either kind would make our manager their owner, and the next deploy (which does not set
    them) would delete them: an HPA's spec.replicas reset, another tool's annotations gone, an allocated
    field re-allocated.
    """
    sets = _field_sets(live)
    out = clean(live)
    if sets:
        kept = extract(out, _union([f for fields in sets.values() for f in fields]))
        out = {**kept, "apiVersion": out["apiVersion"], "kind": out["kind"],
               "metadata": {**kept.get("metadata", {}), **{k: out["metadata"][k] for k in ("name", "namespace")
                                                           if k in out["metadata"]}}}
    mine = sets.pop(manager, [])
    others = [f for fields in sets.values() for f in fields]
    if _owns(others, "spec", "replicas") and not _owns(mine, "spec", "replicas"):
        (out.get("spec") or {}).pop("replicas", None)
    meta = out.get("metadata") or {}
    for kind in ("annotations", "labels"):
        for key in list(meta.get(kind) or {}):
            if _owns(others, "metadata", kind, key) and not _owns(mine, "metadata", kind, key):
                del meta[kind][key]
    return out


@dataclass(frozen=True)
class Snapshot:
    """What ran before a deploy: each object as a rollback re-applies it (None when the deploy creates it)."""

    before: dict[str, dict[str, Any] | None]

    @classmethod
    def capture(cls, kube: Kube, objects: list[dict[str, Any]], manager: str) -> Snapshot:
        return cls({ref(o): (restorable(live, manager) if (live := kube.get(o)) else None) for o in objects})


def apply_all(kube: Kube, objects: list[dict[str, Any]], manager: str, force: bool = False,
              dry_run: bool = False, into: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Server-side apply in order (config before workloads), returning what the server stored (or would).

    `into` collects each result as it lands, so after a failure midway the caller knows what to put back.
    """
    done = into if into is not None else []
    for obj in sorted(objects, key=lambda o: o["kind"] in WORKLOADS):
        done.append(kube.apply(obj, manager, force=force, dry_run=dry_run))
    return done


def restore(kube: Kube, snapshot: Snapshot, objects: list[dict[str, Any]], manager: str, service: str) -> None:
    """Put back exactly the captured objects; delete the ones this deploy created - except shared ones
    (another service's first deploy may be using them by now)."""
    for obj in objects:
        before = snapshot.before.get(ref(obj))
        if before is not None:
            kube.apply(before, manager, force=True)
        elif (obj["metadata"].get("labels") or {}).get(manifests.NAME_LABEL) == service:
            kube.delete(obj)


# -- steps after apply --------------------------------------------------------------------------------
def smoke_check(kube: Kube, objects: list[dict[str, Any]], target: Target, budget_s: float = 30.0) -> Verdict:
    """GET the readiness path through the API server's service proxy, retried for a bounded time."""
    started = time.monotonic()
    service = next((o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == target.service), None)
    found = workload(objects, target.service)
    probe = next((c.get("readinessProbe") for c in pod_spec(found or {}).get("containers") or []
                  if (c.get("readinessProbe") or {}).get("httpGet")), None)
    if service is None or probe is None:
        return Verdict(True, "Skipped", message="no Service with an HTTP readiness probe to check")
    port = (service["spec"].get("ports") or [{}])[0]
    path = probe["httpGet"].get("path", "/").lstrip("/")
    url = (f"/api/v1/namespaces/{target.namespace}/services/{service['metadata']['name']}:"
           f"{port.get('name') or port.get('port')}/proxy/{path}")

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, ApiException)

    try:
        for attempt in Retrying(retry=retry_if_exception(retryable), stop=stop_after_delay(budget_s),
                                wait=wait_exponential_jitter(multiplier=0.1, max=2, jitter=0.1), reraise=True):
            with attempt:
                kube.call(kube.api.call_api, url, "GET", header_params={"Accept": "*/*"},
                          auth_settings=["BearerToken"], response_type="str", _return_http_data_only=True)
    except ApiException as exc:
        return Verdict(False, "SmokeCheckFailed", message=f"GET /{path} via service {service['metadata']['name']} "
                       f"answered {exc.status} {exc.reason} for {budget_s:g}s", elapsed_s=time.monotonic() - started)
    return Verdict(True, "SmokeCheckPassed", message=f"GET /{path} answered 2xx", elapsed_s=time.monotonic() - started)


@contextmanager
def signals_stop(*events: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set the first unset event instead of killing the process mid-apply.

    The first signal stops the rollout (and triggers the rollback); a second one stops waiting on the rollback.
    Outside the main thread (tests calling the engine from a worker) handlers cannot be installed: no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        next((e for e in events if not e.is_set()), events[-1]).set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the pipeline -----------------------------------------------------------------------------------------
@dataclass
class Deploy:
    """One `invoke deploy`: everything it needs, injected, so tests drive it against kubesim and moto."""

    kube: Kube
    target: Target
    region: str
    tag: str | None = None              # deploy this existing tag; None: build the git SHA
    allow_dirty: bool = False
    dry_run: bool = False
    rollback: bool = True
    force_conflicts: bool = False
    timeout_s: float = 600.0
    readiness_grace_s: float | None = None
    smoke_budget_s: float = 30.0
    context: Path | None = None         # docker build context (default apps/<service>)
    reporter: Reporter = field(default_factory=Reporter)
    docker: Docker = field(default_factory=Docker)
    stop: threading.Event = field(default_factory=threading.Event)
    abort: threading.Event = field(default_factory=threading.Event)
    who: str = field(default_factory=identity)

    def image(self) -> tuple[str, str]:
        """(tag, image): an existing tag verified in ECR, or the git SHA built and pushed now."""
        registry = Registry(self.region)
        uri = registry.repository_uri(self.target.service)
        if self.tag:
            if not registry.has_tag(self.target.service, self.tag):
                raise BadInput(f"--tag {self.tag} is not in ECR repository {self.target.service}; push it first or "
                               f"omit --tag to build the current commit")
            return self.tag, f"{uri}:{self.tag}"
        tag = git_tag(REPO, self.allow_dirty or self.dry_run)
        if self.dry_run:
            return tag, f"{uri}:{tag}"
        context = self.context or REPO / "apps" / self.target.service
        if not (context / "Dockerfile").is_file():
            raise BadInput(f"no Dockerfile in {context} to build {self.target.service}; add one, or deploy an "
                           f"image already in ECR with --tag")
        if registry.has_tag(self.target.service, tag):
            self.reporter.event("build", f"{uri}:{tag} already in ECR, not rebuilding", image=f"{uri}:{tag}")
            return tag, f"{uri}:{tag}"
        login = registry.login()
        self.docker.login(login.registry, login.username, login.password)
        self.reporter.event("build", f"docker buildx build {context} -> {uri}:{tag}", image=f"{uri}:{tag}")
        self.docker.build_push(context, f"{uri}:{tag}", labels={"org.opencontainers.image.revision": tag})
        return tag, f"{uri}:{tag}"

    def run(self) -> DeployRecord | list[str]:
        """Deploy; returns the record (or, for --dry-run, the diff lines). Raises DeployFailed/Interrupted."""
        tag, image = self.image()
        started = now_iso()
        record = DeployRecord(service=self.target.service, env=self.target.env, action="deploy", tag=tag,
                              image=image, who=self.who, started=started, finished="", verdict="", ok=False)
        objects = with_change_cause(render(self.target, image), self.target.service, record.change_cause())
        self.reporter.event("render", f"{len(objects)} objects for {self.target.service} in {self.target.namespace}",
                            service=self.target.service, env=self.target.env, image=image, objects=len(objects))
        if self.dry_run:
            return self.preview(objects)
        with signals_stop(self.stop, self.abort), DeployLock(self.kube, self.target.namespace, self.target.service,
                                                              holder=self.who):
            return self._deploy(objects, record)

    def preview(self, objects: list[dict[str, Any]]) -> list[str]:
        """Server-side dry-run of the apply and the diff against what runs; changes nothing."""
        live = {ref(o): self.kube.get(o) for o in objects}
        would = apply_all(self.kube, objects, self.target.manager, force=self.force_conflicts, dry_run=True)
        lines: list[str] = []
        for obj in would:
            lines += diff(live.get(ref(obj)), obj)
        return lines

    def _deploy(self, objects: list[dict[str, Any]], record: DeployRecord) -> DeployRecord:
        snapshot = Snapshot.capture(self.kube, objects, self.target.manager)
        if self.stop.is_set():  # interrupted before anything changed: nothing to roll back
            raise Interrupted(f"deploy of {self.target.service} to {self.target.env} stopped before the apply; "
                              f"nothing changed")
        verdict: Verdict
        applied: list[dict[str, Any]] = []
        try:
            apply_all(self.kube, objects, self.target.manager, force=self.force_conflicts, into=applied)
        except KubeError as exc:
            verdict = Verdict(False, "ApplyFailed", message=str(exc))
        else:
            self.reporter.event("apply", f"applied {len(applied)} objects as {self.target.manager}",
                                objects=len(applied), manager=self.target.manager)
            verdict = self.follow(applied)
        self.reporter.event("verdict", str(verdict), ok=verdict.ok, reason=verdict.reason, pod=verdict.pod or "",
                            elapsed_s=round(verdict.elapsed_s, 2))
        record = _finish(record, verdict)
        if not verdict.ok and self.rollback and applied:  # only what landed is put back; a refused apply changed nothing
            landed = {ref(o) for o in applied}
            back = self.restore(snapshot, [o for o in objects if ref(o) in landed])
            record = _finish(record, verdict, back)
        self.conclude(record)
        if verdict.reason == "Interrupted":
            raise Interrupted(notify.headline(record))
        if not verdict.ok:
            raise DeployFailed(notify.headline(record) + (f"\n  {verdict}" if verdict.message else ""))
        return record

    def follow(self, applied: list[dict[str, Any]]) -> Verdict:
        """Rollout, then smoke check; a signal turns even a success into Interrupted (and so a rollback)."""
        try:
            verdict = self.track(applied, "rollout")
            if verdict.ok and not self.stop.is_set():
                smoke = smoke_check(self.kube, applied, self.target, self.smoke_budget_s)
                self.reporter.event("smoke", str(smoke), ok=smoke.ok)
                verdict = verdict if smoke.ok else smoke
        except KubeError as exc:
            return Verdict(False, "TrackingFailed", message=str(exc))
        if self.stop.is_set() and verdict.ok:
            verdict = Verdict(False, "Interrupted", message="stopped by a signal")
        return verdict

    def track(self, applied: list[dict[str, Any]], label: str, stop: threading.Event | None = None) -> Verdict:
        found = workload(applied, self.target.service)
        if found is None or found["kind"] != "Deployment":
            return Verdict(True, "Applied", message=f"{found['kind'] if found else 'no workload'}: nothing to roll out")
        rollout = Rollout(self.kube, self.target.namespace, self.target.service, timeout_s=self.timeout_s,
                          readiness_grace_s=self.readiness_grace_s, stop=stop or self.stop,
                          on_progress=lambda p: self._progress(label, p))
        try:
            return rollout.track(found["metadata"].get("generation"))
        finally:
            self.reporter.done()

    def _progress(self, label: str, progress: Progress) -> None:
        self.reporter.progress(f"{label} {self.target.service}", progress)

    def restore(self, snapshot: Snapshot, objects: list[dict[str, Any]]) -> Verdict:
        """Roll back to the captured objects and track that rollout with the same tracker."""
        self.reporter.event("rollback", "restoring the objects captured before the apply")
        try:
            restore(self.kube, snapshot, objects, self.target.manager, self.target.service)
            changed = workload(objects, self.target.service)
            previous = snapshot.before.get(ref(changed)) if changed else None
            if changed is None:
                back = Verdict(True, "Restored", message=f"{len(objects)} object(s) put back; the workload was "
                                                         f"not changed")
            elif previous is None:
                back = Verdict(True, "Removed", message="first deploy: created objects deleted")
            else:
                live = self.kube.get(previous) or previous
                back = self.track([live], "rollback", stop=self.abort)
        except KubeError as exc:
            back = Verdict(False, "RollbackFailed", message=str(exc))
        self.reporter.event("rollback-verdict", str(back), ok=back.ok, reason=back.reason)
        return back

    def conclude(self, record: DeployRecord) -> None:
        """History, webhook, step summary: after the outcome is known, never changing it."""
        try:
            history.append(self.kube, self.target.namespace, record)
        except KubeError as exc:
            self.reporter.event("warning", f"deploy history not written: {exc}")
        warning = notify.post_webhook(record)
        if warning:
            self.reporter.event("warning", warning)
        notify.write_step_summary([record])


def _finish(record: DeployRecord, verdict: Verdict, back: Verdict | None = None) -> DeployRecord:
    from dataclasses import replace

    message = str(verdict) if not verdict.ok else verdict.message
    return replace(record, finished=now_iso(), verdict=verdict.reason, ok=verdict.ok, message=message,
                   rolled_back=back is not None and back.ok, rollback_verdict=str(back) if back else "")


# -- rollback by hand ---------------------------------------------------------------------------------------
def revisions(kube: Kube, target: Target) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """The live Deployment and its ReplicaSets by revision number."""
    deployment = kube.get({"apiVersion": "apps/v1", "kind": "Deployment",
                           "metadata": {"name": target.service, "namespace": target.namespace}})
    if deployment is None:
        raise BadInput(f"deployment {target.service} does not exist in {target.namespace}; nothing to roll back")
    uid = deployment["metadata"]["uid"]
    listing = kube.request("GET", f"/apis/apps/v1/namespaces/{target.namespace}/replicasets")
    owned = {}
    for rs in listing.get("items") or []:
        if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or []):
            revision = (rs["metadata"].get("annotations") or {}).get(REVISION)
            if revision and revision.isdigit():
                owned[int(revision)] = rs
    return deployment, owned


def rollback(kube: Kube, target: Target, to_revision: int | None = None, timeout_s: float = 600.0,
             reporter: Reporter | None = None, who: str | None = None) -> DeployRecord:
    """Roll the Deployment back to a ReplicaSet revision's pod template (default: the one before the current)."""
    reporter = reporter or Reporter()
    who = who or identity()
    deployment, owned = revisions(kube, target)
    current = int((deployment["metadata"].get("annotations") or {}).get(REVISION) or max(owned, default=0))
    candidates = sorted(r for r in owned if r != current)
    if to_revision is None:
        if not candidates:
            raise BadInput(f"deployment {target.service} has no earlier revision to roll back to")
        to_revision = candidates[-1]
    if to_revision not in owned or to_revision == current:
        raise BadInput(f"--to-revision {to_revision} is not a revision to roll back to; available: "
                       f"{', '.join(map(str, candidates)) or 'none'} (current {current})")
    template = copy.deepcopy(owned[to_revision]["spec"]["template"])
    template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    image = next((c["image"] for c in template["spec"]["containers"] if c.get("name") == target.service),
                 template["spec"]["containers"][0]["image"])
    record = DeployRecord(service=target.service, env=target.env, action="rollback", tag=image.rsplit(":", 1)[-1],
                          image=image, who=who, started=now_iso(), finished="", verdict="", ok=False,
                          revision=str(to_revision))
    desired = restorable(deployment, target.manager)
    desired["spec"]["template"] = template
    desired["metadata"].setdefault("annotations", {})[CHANGE_CAUSE] = record.change_cause()
    stop = threading.Event()
    step = Deploy(kube, target, region="", reporter=reporter, timeout_s=timeout_s, stop=stop, who=who)
    with signals_stop(stop), DeployLock(kube, target.namespace, target.service, holder=who):
        applied = kube.apply(desired, target.manager, force=True)
        reporter.event("apply", f"deployment {target.service} set to revision {to_revision} ({image})",
                       revision=to_revision, image=image)
        verdict = step.track([applied], "rollback")
        record = _finish(record, verdict)
        step.conclude(record)
    if verdict.reason == "Interrupted":
        raise Interrupted(notify.headline(record))
    if not verdict.ok:
        raise DeployFailed(f"{notify.headline(record)}\n  {verdict}")
    return record

