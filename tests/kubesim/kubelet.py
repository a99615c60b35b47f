"""Simulated kubelets (one loop for all nodes) plus the node-lifecycle and pod-GC duties.

For every pod bound to a Ready node the kubelet derives the status from the container
behaviours (behaviors.timeline) at the current simulated time, writes it when it changed, and
emits each kubelet event once. Graceful deletion: a pod with deletionTimestamp is stopped
(event Killing) and removed after min(grace period, 1 simulated second). Pods on NotReady nodes
freeze and are marked not Ready, as the node lifecycle controller does; pods on nodes that no
longer exist are deleted, as pod GC does.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from .behaviors import ANNOTATION, Behavior, timeline
from .resources import lookup
from .store import clone, now_iso

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
# behaviours whose status stops changing once their delay has passed (crash loops never settle)
SETTLING = {"Ready", "NeverReady", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError",
            "InvalidImageName"}
STOP_SECONDS = 1.0
UNREACHABLE = "node.kubernetes.io/unreachable"  # simulated time a container takes to stop after SIGTERM
_ips = itertools.count(10)


@dataclass
class PodRun:
    started: float  # monotonic wall time when the kubelet first saw the pod
    started_at: str
    ip: str
    emitted: set = field(default_factory=set)
    stopping_since: float | None = None
    settled_rv: str | None = None  # status final at this resourceVersion: skip the pod until it changes
    unreachable_since: float | None = None  # when its node stopped being Ready
    present: dict = field(default_factory=dict)  # container -> image was already on the node at start


def _unreachable_toleration(pod: dict) -> float | None:
    """Seconds the pod tolerates an unreachable node (None: forever), as the taint manager reads it."""
    for t in pod["spec"].get("tolerations") or []:
        if t.get("effect") in (None, "", "NoExecute") and (
                t.get("operator") == "Exists" and t.get("key") in (None, "", UNREACHABLE)
                or t.get("key") == UNREACHABLE):
            return t.get("tolerationSeconds")
    return 0


def node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


class Kubelet:
    watches = ("core/pods", "core/nodes")
    periodic = 0.02  # container timelines advance with time
    def __init__(self, cluster):
        self.c = cluster
        self.runs: dict[str, PodRun] = {}
        self.images: dict[str, set] = {}  # node -> images pulled there
        self._nodes_rv: int | None = None

    def behavior_for(self, pod: dict, container: dict) -> Behavior:
        ann = (pod["metadata"].get("annotations") or {}).get(ANNOTATION)
        if ann:
            try:
                return Behavior.parse(ann)
            except ValueError:
                pass
        scripted = self.c.image_scripts.get(container.get("image", ""))
        if scripted is not None:
            return scripted
        if any(r.get("kind") == "Job" for r in pod["metadata"].get("ownerReferences") or []):
            return Behavior("Succeeded")  # a job's work finishes by default
        return Behavior()

    def sync(self) -> None:
        nodes = {n["metadata"]["name"]: n for n in self.c.store.list(NODES)[0]}
        nodes_rv = self.c.store.type_rv.get(NODES.key)
        if nodes_rv != self._nodes_rv:  # node changes (NotReady, removal) concern settled pods too
            self._nodes_rv = nodes_rv
            for run in self.runs.values():
                run.settled_rv = None
        live = set()

        def wanted(p) -> bool:  # runs on the stored object: no copy for pods that are settled
            live.add(p["metadata"]["uid"])
            run = self.runs.get(p["metadata"]["uid"])
            return bool(p["spec"].get("nodeName")) and not (run and run.settled_rv == p["metadata"]["resourceVersion"])
        pods, _ = self.c.store.list(PODS, None, wanted)
        for pod in pods:
            node = nodes.get(pod["spec"]["nodeName"])
            run = self.runs.get(pod["metadata"]["uid"])
            if run is not None and node is not None and node_ready(node):
                run.unreachable_since = None
            if node is None:
                self._gc(pod)
            elif not node_ready(node):
                self._mark_not_ready(pod)
                continue
            elif pod["metadata"].get("deletionTimestamp"):
                self._stop(pod, node)
            elif (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                self._run(pod, node)
        for uid in list(self.runs):
            if uid not in live:
                del self.runs[uid]

    # -- running --------------------------------------------------------------------------------
    def _run(self, pod: dict, node: dict) -> None:
        meta = pod["metadata"]
        run = self.runs.get(meta["uid"])
        if run is None:
            n = next(_ips)
            run = self.runs[meta["uid"]] = PodRun(time.monotonic(), now_iso(), f"10.0.{n // 250}.{n % 250 + 1}")
        t = (time.monotonic() - run.started) / self.c.time_factor
        statuses, phases, all_ready, settled = [], [], True, True
        for c in pod["spec"].get("containers") or []:
            b = self.behavior_for(pod, c)
            settled &= b.name in SETTLING and t >= b.delay
            present = run.present.setdefault(c["name"], c.get("imagePullPolicy") != "Always" and c.get(
                "image") in self.images.get(node["metadata"]["name"], ()))
            m = timeline(b, c, meta["name"], meta["namespace"], meta["uid"], t, run.started_at, run.started_at,
                         present)
            if m.started:
                self.images.setdefault(node["metadata"]["name"], set()).add(c.get("image"))
            for key, (typ, reason, msg) in m.events.items():
                if key not in run.emitted:
                    run.emitted.add(key)
                    self.c.recorder.emit(pod, typ, reason, msg, "kubelet", node["metadata"]["name"],
                                         f"spec.containers{{{c['name']}}}")
            cs = {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": m.ready,
                  "started": m.started, "restartCount": m.restarts, "state": m.state, "lastState": m.last_state}
            if m.started or m.restarts:
                cs["imageID"] = f"{c.get('image', '')}@sha256:{'0' * 64}"
                cs["containerID"] = f"containerd://{meta['uid'].replace('-', '')}{m.restarts}"
            statuses.append(cs)
            phases.append(m.phase)
            all_ready &= m.ready
        restart_never = pod["spec"].get("restartPolicy") == "Never"
        if phases and all(p == "Succeeded" for p in phases):
            phase = "Succeeded"
        elif "Failed" in phases and restart_never:
            phase = "Failed"
        elif "Pending" in phases:
            phase = "Pending"
        else:
            phase = "Running"
        host_ip = next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                        if a.get("type") == "InternalIP"), "10.1.0.1")

        st = clone(pod.get("status") or {})
        _write_status(st, phase, host_ip, run, statuses, all_ready)
        if st == pod.get("status"):  # nothing changed: skip the locked read-modify-write
            run.settled_rv = meta["resourceVersion"] if settled else None
            return

        def write(p):
            _write_status(p.setdefault("status", {}), phase, host_ip, run, statuses, all_ready)
        self.c.store.mutate(PODS, meta["namespace"], meta["name"], write)

    def _mark_not_ready(self, pod: dict) -> None:
        """Node lifecycle controller: pods on an unreachable node turn not Ready, then are evicted
        (deleted; they stay Terminating while the kubelet is away) after their toleration time."""
        run = self.runs.setdefault(pod["metadata"]["uid"], PodRun(time.monotonic(), now_iso(), ""))
        run.settled_rv = None
        if run.unreachable_since is None:
            run.unreachable_since = time.monotonic()
        wait = _unreachable_toleration(pod)
        if not pod["metadata"].get("deletionTimestamp") and wait is not None and \
                time.monotonic() - run.unreachable_since >= wait * self.c.time_factor:
            self.c.recorder.emit(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod "
                                 f"{pod['metadata']['namespace']}/{pod['metadata']['name']}", "taint-eviction-controller")
            self.c.api.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])

        def write(p):
            st = p.setdefault("status", {})
            for cond in st.get("conditions") or []:
                if cond["type"] == "Ready" and cond["status"] == "True":
                    cond.update(status="False", lastTransitionTime=now_iso())
        self.c.store.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], write)

    # -- stopping -------------------------------------------------------------------------------
    def _stop(self, pod: dict, node: dict) -> None:
        meta = pod["metadata"]
        run = self.runs.setdefault(meta["uid"], PodRun(time.monotonic(), now_iso(), ""))
        if run.stopping_since is None:
            run.stopping_since = time.monotonic()
            for c in pod["spec"].get("containers") or []:
                self.c.recorder.emit(pod, "Normal", "Killing", f"Stopping container {c['name']}", "kubelet",
                                     node["metadata"]["name"], f"spec.containers{{{c['name']}}}")
        grace = meta.get("deletionGracePeriodSeconds", 30)
        takes = max((float(self.behavior_for(pod, c).params.get("stop", STOP_SECONDS))
                     for c in pod["spec"].get("containers") or []), default=STOP_SECONDS)
        if time.monotonic() - run.stopping_since >= min(grace, takes) * self.c.time_factor:
            self._remove(pod)

    def _gc(self, pod: dict) -> None:
        self._remove(pod)

    def _remove(self, pod: dict) -> None:
        meta = pod["metadata"]
        cur = self.c.store.get(PODS, meta["namespace"], meta["name"])
        if cur is not None and cur["metadata"]["uid"] == meta["uid"] and not cur["metadata"].get("finalizers"):
            self.c.store.delete(PODS, meta["namespace"], meta["name"])


def _write_status(st: dict, phase, host_ip, run, statuses, all_ready) -> None:
    st.update(phase=phase, hostIP=host_ip, hostIPs=[{"ip": host_ip}], podIP=run.ip, podIPs=[{"ip": run.ip}],
              startTime=run.started_at, containerStatuses=statuses)
    st.setdefault("qosClass", "BestEffort")
    ready = "True" if all_ready and phase == "Running" else "False"
    _set_conditions(st, {"PodReadyToStartContainers": "True", "Initialized": "True", "Ready": ready,
                         "ContainersReady": ready, "PodScheduled": "True"},
                    None if ready == "True" else ("ContainersNotReady", "containers with unready status: ["
                                                  + " ".join(s["name"] for s in statuses if not s["ready"]) + "]"))


def _set_conditions(status: dict, wanted: dict, not_ready: tuple | None) -> None:
    conds = {c["type"]: c for c in status.get("conditions") or []}
    out = []
    for typ, val in wanted.items():
        cur = conds.get(typ)
        if cur is None or cur.get("status") != val:
            cur = {"type": typ, "status": val, "lastProbeTime": None, "lastTransitionTime": now_iso()}
        cur = dict(cur)
        if typ in ("Ready", "ContainersReady") and not_ready and val == "False":
            cur["reason"], cur["message"] = not_ready
        else:
            cur.pop("reason", None)
            cur.pop("message", None)
        out.append(cur)
    status["conditions"] = out




def container_log(cluster, pod: dict, container: str | None) -> str:
    """`pods/{name}/log`: the scripted text for the container's image, or a default line.

    Like the real kubelet, a container that never started answers 400 "is waiting to start".
    """
    from . import errors
    containers = pod["spec"].get("containers") or []
    names = [c["name"] for c in containers]
    if container is None:
        if len(containers) != 1:
            raise errors.bad_request(f"a container name must be specified for pod {pod['metadata']['name']}, "
                                     f"choose one of: [{' '.join(names)}]")
        container = names[0]
    if container not in names:
        raise errors.bad_request(f"container {container} is not valid for pod {pod['metadata']['name']}")
    status = next((s for s in (pod.get("status") or {}).get("containerStatuses") or [] if s["name"] == container),
                  None)
    waiting = ((status or {}).get("state") or {}).get("waiting")
    if status is None or (waiting and not status.get("restartCount")):
        reason = (waiting or {}).get("reason", "ContainerCreating")
        raise errors.bad_request(f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: '
                                 f"{reason}")
    image = next(c.get("image", "") for c in containers if c["name"] == container)
    return cluster.logs.get(image, f"kubesim: container {container} ({image}) started\n")
