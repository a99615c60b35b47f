"""Job controller (minimal): runs pods until `completions` succeed or `backoffLimit` failures.

Job pods follow the usual behaviours; with no script their default is `Succeeded` after one
simulated second (see kubelet.Kubelet.behavior_for). Conditions Complete / Failed
(BackoffLimitExceeded) are set as the real controller does.
"""
from __future__ import annotations

from ..resources import lookup
from ..store import now_iso
from .replicaset import is_active, owners_with_children, pod_from_template

JOBS, PODS = lookup("batch", "v1", "jobs"), lookup("", "v1", "pods")


class JobController:
    watches = ("batch/jobs", "core/pods")

    def __init__(self, cluster):
        self.c = cluster

    def sync(self) -> None:
        for job, pods in owners_with_children(self.c.store, JOBS):
            self._sync(job, pods)

    def _sync(self, job: dict, pods: list[dict]) -> None:
        meta, spec = job["metadata"], job["spec"]
        status = dict(job.get("status") or {})
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in status.get("conditions") or []):
            return
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
        active = [p for p in pods if is_active(p)]
        completions, parallelism = spec.get("completions", 1), spec.get("parallelism", 1)
        condition = None
        if succeeded >= completions:
            condition = ("Complete", None, None)
        elif failed > spec.get("backoffLimit", 6):
            condition = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
            for p in active:
                self.c.api.delete(PODS, meta["namespace"], p["metadata"]["name"])
        elif not spec.get("suspend"):
            for _ in range(min(parallelism, completions - succeeded) - len(active)):
                pod = pod_from_template(job, "", {"batch.kubernetes.io/job-name": meta["name"],
                                                  "job-name": meta["name"]})
                pod["metadata"].pop("name")
                pod["metadata"]["generateName"] = f"{meta['name']}-"
                created = self.c.api.create(PODS, meta["namespace"], pod, "kube-controller-manager")
                active.append(created)
                self.c.recorder.emit(job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                                     "job-controller")
        status.update(active=len(active), succeeded=succeeded, failed=failed, ready=0)
        status.setdefault("startTime", now_iso())
        if condition:
            typ, reason, message = condition
            cond = {"type": typ, "status": "True", "lastProbeTime": now_iso(), "lastTransitionTime": now_iso()}
            if reason:
                cond.update(reason=reason, message=message)
            status["conditions"] = (status.get("conditions") or []) + [cond]
            status["active"] = 0
            if typ == "Complete":
                status["completionTime"] = now_iso()
            self.c.recorder.emit(job, "Normal" if typ == "Complete" else "Warning",
                                 "Completed" if typ == "Complete" else reason,
                                 "Job completed" if typ == "Complete" else message, "job-controller")
        self.c.store.put(JOBS, meta["namespace"], meta["name"], ("status",),
                         {k: v for k, v in status.items() if v or k == "ready"})
