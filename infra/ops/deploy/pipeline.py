"""Single-service deploy: image, render, server-side apply, fail-fast rollout, smoke check, rollback, record.

One pass, in order: resolve the service -> refuse an unreadable deploy history (it would be written over)
-> image tag (git SHA of a clean tree; with --tag, infra/k8s must be clean) -> build/push or verify the tag in ECR
-> render the env overlay with that image -> validate -> take the service's Lease -> capture what runs now
-> server-side apply (or a server-side dry-run and a diff) -> track the rollout -> smoke check through
the API server's service proxy (and, for a service with a public hostname, through the edge: edge.py)
-> on any failure put back exactly the captured objects and track that
too -> record history and notify -> release the Lease. Interrupts (SIGINT/SIGTERM) take the same
failure path and end with exit code 130. Nothing here imports pulumi.
"""
from __future__ import annotations

import copy
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from infra.identity import BASE_REPOSITORY, repository_name
from infra.ops.deploy import history, notify
from infra.ops.deploy.edge import public_check
from infra.ops.deploy.history import CHANGE_CAUSE, DeployRecord
from infra.ops.deploy.lock import DeployLock
from infra.ops.deploy.report import Reporter
from infra.ops.deploy.requests import DeployRequest, RollbackRequest
from infra.ops.deploy.rollout import REVISION, Progress, Reason, Rollout, Verdict
from infra.ops.deploy.snapshot import Snapshot, apply_all, diff, restorable, restore
from infra.ops.deploy.target import (
    REPO,
    BadInput,
    Target,
    git_tag,
    pod_spec,
    render,
    run_git,
    with_change_cause,
    workload,
)
from infra.ops.errors import Failed, Interrupted  # Interrupted: stopped by SIGINT/SIGTERM after cleaning up
from infra.ops.io.docker_cli import Docker
from infra.ops.io.ecr import Registry
from infra.ops.io.kube import Kube, KubeError, is_transient, ref


class DeployFailed(Failed):
    """The deploy ran and failed (rolled back unless told not to): exit 1."""


# -- steps after apply --------------------------------------------------------------------------------
def smoke_check(kube: Kube, objects: list[dict[str, Any]], target: Target, budget_s: float = 30.0) -> Verdict:
    """GET the readiness path through the API server's service proxy, retried for a bounded time."""
    started = time.monotonic()
    service = next((o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == target.service), None)
    found = workload(objects, target.service)
    probe = next((c.get("readinessProbe") for c in pod_spec(found or {}).get("containers") or []
                  if (c.get("readinessProbe") or {}).get("httpGet")), None)
    if service is None or probe is None:
        return Verdict(True, Reason.Skipped, message="no Service with an HTTP readiness probe to check")
    port = (service["spec"].get("ports") or [{}])[0]
    path = probe["httpGet"].get("path", "/").lstrip("/")
    url = (f"/api/v1/namespaces/{target.namespace}/services/{service['metadata']['name']}:"
           f"{port.get('name') or port.get('port')}/proxy/{path}")

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, ApiException) or is_transient(exc)

    try:
        # One retry loop with the smoke budget: the app's own 503 through the proxy is not an API-server fault,
        # so this does not go through kube.call, whose separate budget would stretch the check past budget_s.
        for attempt in Retrying(retry=retry_if_exception(retryable), stop=stop_after_delay(budget_s),
                                wait=wait_exponential_jitter(multiplier=0.1, max=2, jitter=0.1), reraise=True):
            with attempt:
                kube.api.call_api(url, "GET", header_params={"Accept": "*/*"}, auth_settings=["BearerToken"],
                                  response_type="str", _return_http_data_only=True,
                                  _request_timeout=kube.request_timeout_s)
    except ApiException as exc:
        return Verdict(False, Reason.SmokeCheckFailed, message=f"GET /{path} via service {service['metadata']['name']} "
                       f"answered {exc.status} {exc.reason} for {budget_s:g}s", elapsed_s=time.monotonic() - started)
    return Verdict(True, Reason.SmokeCheckPassed, message=f"GET /{path} answered 2xx",
                   elapsed_s=time.monotonic() - started)


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


def require_committed(target: Target) -> None:
    """BadInput when the kustomize tree a --tag deploy renders has uncommitted changes: what is applied would not
    be what the repository says (the build path refuses a dirty tree for the same reason)."""
    root = target.overlay.parent.parent  # infra/k8s: base, components and every overlay
    done = run_git(["status", "--porcelain", "--", "."], root, "pass --allow-dirty to deploy the tree as it is")
    if done.returncode != 0:
        raise BadInput(f"{root} is not in a git checkout ({done.stderr.strip() or 'git failed'}), so what would be "
                       f"applied is not a commit; pass --allow-dirty to deploy it as it is")
    changed = [line[3:] for line in done.stdout.splitlines() if line.strip()]
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise BadInput(f"--tag deploys the manifests of the working tree, which has {len(changed)} uncommitted "
                       f"change(s) under infra/k8s ({shown}); commit them, or pass --allow-dirty")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the pipeline -----------------------------------------------------------------------------------------
@dataclass
class Deploy:
    """One `invoke deploy`: the request (what was asked) and the clients it acts through, injected, so tests drive
    it against kubesim and moto."""

    kube: Kube
    request: DeployRequest
    reporter: Reporter = field(default_factory=Reporter)
    docker: Docker = field(default_factory=Docker)
    stop: threading.Event = field(default_factory=threading.Event)
    abort: threading.Event = field(default_factory=threading.Event)

    @property
    def target(self) -> Target:
        return self.request.target

    def image(self) -> tuple[str, str]:
        """(tag, image): an existing tag verified in ECR, or the git SHA built and pushed now."""
        ask, service = self.request, self.target.service
        if ask.tag and not (ask.allow_dirty or ask.dry_run):
            require_committed(self.target)
        registry = Registry(ask.region)
        repository = repository_name(self.target.env, service)  # what the stack declares and exports
        uri = registry.repository_uri(repository)
        if ask.tag:
            if not registry.has_tag(repository, ask.tag):
                raise BadInput(f"--tag {ask.tag} is not in ECR repository {repository}; push it first or "
                               f"omit --tag to build the current commit")
            return ask.tag, f"{uri}:{ask.tag}"
        tag = git_tag(REPO, ask.allow_dirty or ask.dry_run)
        if ask.dry_run:
            return tag, f"{uri}:{tag}"
        context = ask.context or REPO / "services" / service
        if not (context / "Dockerfile").is_file():
            raise BadInput(f"no Dockerfile in {context} to build {service}; add one, or deploy an "
                           f"image already in ECR with --tag")
        if registry.has_tag(repository, tag):
            self.reporter.event("build", f"{uri}:{tag} already in ECR, not rebuilding", image=f"{uri}:{tag}")
            return tag, f"{uri}:{tag}"
        login = registry.login()
        self.docker.login(login.registry, login.username, login.password)
        base = self.base_image(registry, context, tag)
        self.reporter.event("build", f"docker buildx build {context} -> {uri}:{tag}", image=f"{uri}:{tag}")
        self.docker.build_push(context, f"{uri}:{tag}", labels={"org.opencontainers.image.revision": tag},
                               build_args={"BASE_IMAGE": base} if base else None)
        return tag, f"{uri}:{tag}"

    def base_image(self, registry: Registry, context: Path, tag: str) -> str | None:
        """The shared base (services/base) of this commit, built and pushed first unless ECR has it already."""
        source = context.parent / "base"
        if not (source / "Dockerfile").is_file():
            return None  # a service built on its own, not on the shared base
        repository = repository_name(self.target.env, BASE_REPOSITORY)
        image = f"{registry.repository_uri(repository)}:{tag}"
        if registry.has_tag(repository, tag):
            self.reporter.event("build", f"{image} already in ECR, not rebuilding the base", image=image)
            return image
        self.reporter.event("build", f"docker buildx build {source} -> {image} (the shared base, first)", image=image)
        self.docker.build_push(source, image, labels={"org.opencontainers.image.revision": tag})
        return image

    def run(self) -> DeployRecord | list[str]:
        """Deploy; returns the record (or, for --dry-run, the diff lines). Raises DeployFailed/Interrupted."""
        try:
            history.read(self.kube, self.target.namespace, self.target.service)
        except history.HistoryUnreadable as exc:  # the record would be written over it: refuse before any change
            if not self.request.dry_run:
                raise
            self.reporter.event("warning", f"a deploy would be refused: {exc}")
        except KubeError:
            pass  # not readable now: the deploy goes on and `conclude` reports the history it could not write
        tag, image = self.image()
        started = now_iso()
        record = DeployRecord(service=self.target.service, env=self.target.env, action="deploy", tag=tag,
                              image=image, who=self.request.who, started=started, finished="", verdict="", ok=False)
        objects = with_change_cause(render(self.target, image), self.target.service, record.change_cause())
        self.reporter.event("render", f"{len(objects)} objects for {self.target.service} in {self.target.namespace}",
                            service=self.target.service, env=self.target.env, image=image, objects=len(objects))
        if self.request.dry_run:
            return self.preview(objects)
        with signals_stop(self.stop, self.abort), DeployLock(self.kube, self.target.namespace, self.target.service,
                                                              holder=self.request.who):
            return self._deploy(objects, record)

    def preview(self, objects: list[dict[str, Any]]) -> list[str]:
        """Server-side dry-run of the apply and the diff against what runs; changes nothing."""
        live = {ref(o): self.kube.get(o) for o in objects}
        would = apply_all(self.kube, objects, self.target.manager, force=self.request.force_conflicts, dry_run=True)
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
            apply_all(self.kube, objects, self.target.manager, force=self.request.force_conflicts, into=applied)
        except KubeError as exc:
            verdict = Verdict(False, Reason.ApplyFailed, message=str(exc))
        else:
            self.reporter.event("apply", f"applied {len(applied)} objects as {self.target.manager}",
                                objects=len(applied), manager=self.target.manager)
            verdict = self.follow(applied)
        self.reporter.event("verdict", str(verdict), ok=verdict.ok, reason=verdict.reason, pod=verdict.pod or "",
                            elapsed_s=round(verdict.elapsed_s, 2))
        record = _finish(record, verdict)
        # only what landed is put back; a refused apply changed nothing
        if not verdict.ok and self.request.rollback and applied:
            landed = {ref(o) for o in applied}
            back = self.restore(snapshot, [o for o in objects if ref(o) in landed])
            record = _finish(record, verdict, back)
        self.conclude(record)
        if verdict.reason is Reason.Interrupted:
            raise Interrupted(notify.headline(record))
        if not verdict.ok:
            raise DeployFailed(notify.headline(record) + (f"\n  {verdict}" if verdict.message else ""))
        return record

    def follow(self, applied: list[dict[str, Any]]) -> Verdict:
        """Rollout, then smoke check; a signal turns even a success into Interrupted (and so a rollback)."""
        try:
            verdict = self.track(applied, "rollout")
            if verdict.ok and not self.stop.is_set():
                smoke = smoke_check(self.kube, applied, self.target, self.request.smoke_budget_s)
                self.reporter.event("smoke", str(smoke), ok=smoke.ok)
                verdict = verdict if smoke.ok else smoke
            if verdict.ok and self.request.public_host and not self.stop.is_set():
                public = public_check(applied, self.target.service, self.request.public_host,
                                      self.request.public_budget_s)
                self.reporter.event("edge", str(public), ok=public.ok)
                verdict = verdict if public.ok else public
        except KubeError as exc:
            return Verdict(False, Reason.TrackingFailed, message=str(exc))
        if self.stop.is_set() and verdict.ok:
            verdict = Verdict(False, Reason.Interrupted, message="stopped by a signal")
        return verdict

    def track(self, applied: list[dict[str, Any]], label: str, stop: threading.Event | None = None) -> Verdict:
        found = workload(applied, self.target.service)
        if found is None or found["kind"] != "Deployment":
            what = found["kind"] if found else "no workload"
            return Verdict(True, Reason.Applied, message=f"{what}: nothing to roll out")
        rollout = Rollout(self.kube, self.target.namespace, self.target.service, timeout_s=self.request.timeout_s,
                          readiness_grace_s=self.request.readiness_grace_s, stop=stop or self.stop,
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
                back = Verdict(True, Reason.Restored, message=f"{len(objects)} object(s) put back; the workload was "
                                                         f"not changed")
            elif previous is None:
                back = Verdict(True, Reason.Removed, message="first deploy: created objects deleted")
            else:
                live = self.kube.get(previous) or previous
                back = self.track([live], "rollback", stop=self.abort)
        except KubeError as exc:
            back = Verdict(False, Reason.RollbackFailed, message=str(exc))
        self.reporter.event("rollback-verdict", str(back), ok=back.ok, reason=back.reason)
        return back

    def conclude(self, record: DeployRecord) -> None:
        """History, webhook, step summary: after the outcome is known, never changing it."""
        try:
            history.append(self.kube, self.target.namespace, record)
        except (KubeError, history.HistoryUnreadable) as exc:
            self.reporter.event("warning", f"deploy history not written: {exc}")
        for warning in (notify.post_webhook(record), notify.write_step_summary([record])):
            if warning:
                self.reporter.event("warning", warning)


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


def rollback(kube: Kube, request: RollbackRequest, reporter: Reporter | None = None) -> DeployRecord:
    """Roll the Deployment back to a ReplicaSet revision's pod template (default: the one before the current)."""
    reporter = reporter or Reporter()
    target, to_revision, who = request.target, request.to_revision, request.who
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
    step = Deploy(kube, DeployRequest(target, region="", timeout_s=request.timeout_s, who=who), reporter=reporter,
                  stop=stop)
    with signals_stop(stop), DeployLock(kube, target.namespace, target.service, holder=who):
        applied = kube.apply(desired, target.manager, force=True)
        reporter.event("apply", f"deployment {target.service} set to revision {to_revision} ({image})",
                       revision=to_revision, image=image)
        verdict = step.track([applied], "rollback")
        record = _finish(record, verdict)
        step.conclude(record)
    if verdict.reason is Reason.Interrupted:
        raise Interrupted(notify.headline(record))
    if not verdict.ok:
        raise DeployFailed(f"{notify.headline(record)}\n  {verdict}")
    return record
