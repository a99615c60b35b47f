"""Deployment controller: ReplicaSets per pod-template hash, rolling/recreate updates, status.

Follows pkg/controller/deployment: the new ReplicaSet is scaled up within maxSurge
(NewRSNewReplicas), old ones are scaled down keeping maxUnavailable (reconcileOldReplicaSets,
unhealthy replicas first), revisions are stamped in `deployment.kubernetes.io/revision`, old
ReplicaSets beyond revisionHistoryLimit are deleted once the rollout completes, and the
Progressing/Available conditions are set with the real reasons, including
ProgressDeadlineExceeded after progressDeadlineSeconds of simulated time without progress.
"""
from __future__ import annotations

import hashlib
import json
import math
import time

from ..resources import lookup
from ..store import clone, now_iso
from .replicaset import owned_by, owner_ref, owners_with_children

DEPLOYMENTS = lookup("apps", "v1", "deployments")
RS = lookup("apps", "v1", "replicasets")
PODS = lookup("", "v1", "pods")
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: dict, collisions: int = 0) -> str:
    digest = hashlib.sha256((json.dumps(template, sort_keys=True) + str(collisions)).encode()).digest()
    n = int.from_bytes(digest[:8], "big")
    out = ""
    for _ in range(10):
        n, r = divmod(n, len(_ALPHABET))
        out += _ALPHABET[r]
    return out


def _strip_hash(template: dict) -> dict:
    t = clone(template)
    labels = (t.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return t


def resolve(value, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        x = int(value[:-1]) * total / 100
        return math.ceil(x) if round_up else math.floor(x)
    return int(value or 0)


def surge_and_unavailable(d: dict) -> tuple[int, int]:
    replicas = d["spec"].get("replicas", 1)
    strategy = d["spec"].get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, replicas
    ru = strategy.get("rollingUpdate") or {}
    surge = resolve(ru.get("maxSurge", "25%"), replicas, True)
    unavailable = resolve(ru.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _revision(rs: dict) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


class DeploymentController:
    watches = ("apps/deployments", "apps/replicasets")
    periodic = 0.1  # progressDeadlineSeconds

    def __init__(self, cluster):
        self.c = cluster
        self._last_progress: dict[str, float] = {}

    def sync(self) -> None:
        for d, sets in owners_with_children(self.c.store, DEPLOYMENTS, RS):
            self._sync(d, sets)

    # -- one deployment -------------------------------------------------------------------------
    def _sync(self, d: dict, sets: list[dict]) -> None:
        template = d["spec"]["template"]
        new = next((r for r in sets if _strip_hash(r["spec"]["template"]) == template), None)
        olds = [r for r in sets if r is not new]
        created_new = False
        if d["spec"].get("paused"):
            return self._status(d, new, olds, paused=True)
        if new is None:
            new = self._create_rs(d, olds)
            created_new = new is not None
        elif _revision(new) <= max((_revision(r) for r in olds), default=0):
            new = self._bump_revision(new, olds)  # rollback to an old template makes it the newest revision
        if new is None:
            return
        self._annotate_revision(d, new)
        if (d["spec"].get("strategy") or {}).get("type") == "Recreate":
            self._recreate(d, new, olds)
        else:
            self._rolling(d, new, olds)
        sets = self.c.store.list(RS, d["metadata"]["namespace"], lambda r: owned_by(r, d))[0]
        new = next((r for r in sets if r["metadata"]["uid"] == new["metadata"]["uid"]), new)
        olds = [r for r in sets if r["metadata"]["uid"] != new["metadata"]["uid"]]
        if self._complete(d, new, olds):
            self._cleanup(d, olds)
        self._status(d, new, olds, created_new=created_new)

    def _create_rs(self, d: dict, olds: list[dict]) -> dict | None:
        meta = d["metadata"]
        collisions = (d.get("status") or {}).get("collisionCount", 0)
        h = template_hash(d["spec"]["template"], collisions)
        template = clone(d["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = clone(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        surge, _ = surge_and_unavailable(d)
        revision = max((_revision(r) for r in olds), default=0) + 1
        replicas = d["spec"].get("replicas", 1)
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if not k.startswith("kubectl.kubernetes.io/last-applied") and k != REVISION}
        annotations.update({REVISION: str(revision), "deployment.kubernetes.io/desired-replicas": str(replicas),
                            "deployment.kubernetes.io/max-replicas": str(replicas + surge)})
        rs = {"metadata": {"name": f"{meta['name']}-{h}", "namespace": meta["namespace"],
                           "labels": dict(template["metadata"]["labels"]), "annotations": annotations,
                           "ownerReferences": [owner_ref(d)]},
              "spec": {"replicas": 0, "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                       "selector": selector, "template": template}}
        try:
            created = self.c.api.create(RS, meta["namespace"], rs, "kube-controller-manager")
        except Exception:
            return None
        self._last_progress[meta["uid"]] = time.monotonic()
        return created

    def _bump_revision(self, new: dict, olds: list[dict]) -> dict:
        rev = str(max((_revision(r) for r in olds), default=0) + 1)
        return self.c.store.put(RS, new["metadata"]["namespace"], new["metadata"]["name"],
                                ("metadata", "annotations", REVISION), rev) or new

    def _annotate_revision(self, d: dict, new: dict) -> None:
        rev = (new["metadata"].get("annotations") or {}).get(REVISION)
        if (d["metadata"].get("annotations") or {}).get(REVISION) != rev:
            self.c.store.put(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"],
                             ("metadata", "annotations", REVISION), rev)

    def _scale(self, d: dict, rs: dict, replicas: int) -> None:
        old = rs["spec"].get("replicas", 0)
        if old == replicas:
            return
        surge, _ = surge_and_unavailable(d)
        desired = d["spec"].get("replicas", 1)

        def write(r):
            r["spec"]["replicas"] = replicas
            ann = r["metadata"].setdefault("annotations", {})
            ann["deployment.kubernetes.io/desired-replicas"] = str(desired)
            ann["deployment.kubernetes.io/max-replicas"] = str(desired + surge)
        self.c.store.mutate(RS, rs["metadata"]["namespace"], rs["metadata"]["name"], write)
        rs["spec"]["replicas"] = replicas
        direction = "up" if replicas > old else "down"
        self.c.recorder.emit(d, "Normal", "ScalingReplicaSet", f"Scaled {direction} replica set "
                             f"{rs['metadata']['name']} to {replicas} from {old}", "deployment-controller")

    # -- strategies -----------------------------------------------------------------------------
    def _rolling(self, d: dict, new: dict, olds: list[dict]) -> None:
        replicas = d["spec"].get("replicas", 1)
        surge, max_unavailable = surge_and_unavailable(d)
        all_sets = [new] + olds
        # scale up the new ReplicaSet within maxSurge
        current = new["spec"].get("replicas", 0)
        if current > replicas:
            self._scale(d, new, replicas)
        elif current < replicas:
            total = sum(r["spec"].get("replicas", 0) for r in all_sets)
            room = replicas + surge - total
            if room > 0:
                self._scale(d, new, current + min(room, replicas - current))
        # scale down old ReplicaSets keeping minAvailable
        old_count = sum(r["spec"].get("replicas", 0) for r in olds)
        if old_count == 0:
            return
        all_count = sum(r["spec"].get("replicas", 0) for r in all_sets)
        min_available = replicas - max_unavailable
        new_unavailable = new["spec"].get("replicas", 0) - (new.get("status") or {}).get("availableReplicas", 0)
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        # first, old replicas that are not available at all
        olds_sorted = sorted(olds, key=lambda r: r["metadata"].get("creationTimestamp", ""))
        cleaned = 0
        for rs in olds_sorted:
            if cleaned >= max_scaled_down:
                break
            spec_r = rs["spec"].get("replicas", 0)
            unhealthy = spec_r - (rs.get("status") or {}).get("availableReplicas", 0)
            if spec_r == 0 or unhealthy <= 0:
                continue
            down = min(unhealthy, max_scaled_down - cleaned)
            self._scale(d, rs, spec_r - down)
            cleaned += down
        # then available ones, as far as minAvailable allows
        available = sum((r.get("status") or {}).get("availableReplicas", 0) for r in all_sets)
        budget = min(available - min_available, max_scaled_down - cleaned)
        for rs in olds_sorted:
            if budget <= 0:
                break
            spec_r = rs["spec"].get("replicas", 0)
            if spec_r == 0:
                continue
            down = min(spec_r, budget)
            self._scale(d, rs, spec_r - down)
            budget -= down

    def _recreate(self, d: dict, new: dict, olds: list[dict]) -> None:
        for rs in olds:
            if rs["spec"].get("replicas", 0):
                self._scale(d, rs, 0)
        old_uids = {r["metadata"]["uid"] for r in olds}
        pods, _ = self.c.store.list(PODS, d["metadata"]["namespace"], lambda p: any(
            r.get("uid") in old_uids for r in p["metadata"].get("ownerReferences") or []))
        if not pods:
            self._scale(d, new, d["spec"].get("replicas", 1))

    # -- status ---------------------------------------------------------------------------------
    def _complete(self, d, new, olds) -> bool:
        replicas = d["spec"].get("replicas", 1)
        ns = new.get("status") or {}
        return (new["spec"].get("replicas", 0) == replicas and ns.get("replicas", 0) == replicas
                and ns.get("availableReplicas", 0) == replicas
                and all((r.get("status") or {}).get("replicas", 0) == 0 and r["spec"].get("replicas", 0) == 0
                        for r in olds))

    def _cleanup(self, d: dict, olds: list[dict]) -> None:
        limit = d["spec"].get("revisionHistoryLimit", 10)
        idle = sorted((r for r in olds if r["spec"].get("replicas", 0) == 0
                       and (r.get("status") or {}).get("replicas", 0) == 0), key=_revision)
        for rs in idle[:max(len(idle) - limit, 0)]:
            try:
                self.c.api.delete(RS, rs["metadata"]["namespace"], rs["metadata"]["name"])
            except Exception:
                pass

    def _status(self, d: dict, new: dict | None, olds: list[dict], paused: bool = False,
                created_new: bool = False) -> None:
        sets = ([new] if new else []) + olds
        replicas = d["spec"].get("replicas", 1)
        _, max_unavailable = surge_and_unavailable(d)
        status = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": sum(_st(r, "replicas") for r in sets),
            "updatedReplicas": _st(new, "replicas") if new else 0,
            "readyReplicas": sum(_st(r, "readyReplicas") for r in sets),
            "availableReplicas": sum(_st(r, "availableReplicas") for r in sets),
        }
        status["unavailableReplicas"] = max(sum(r["spec"].get("replicas", 0) for r in sets)
                                            - status["availableReplicas"], 0)
        old_status = d.get("status") or {}
        conds = {c["type"]: c for c in old_status.get("conditions") or []}
        uid = d["metadata"]["uid"]
        now = time.monotonic()
        name = new["metadata"]["name"] if new else ""
        if status["availableReplicas"] >= replicas - max_unavailable:
            _cond(conds, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            _cond(conds, "Available", "False", "MinimumReplicasUnavailable",
                  "Deployment does not have minimum availability.")
        prog = conds.get("Progressing")
        if paused:
            _cond(conds, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
        elif prog and prog.get("reason") == "DeploymentPaused":
            _cond(conds, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed")
            self._last_progress[uid] = now
        elif new and self._complete(d, new, olds):
            _cond(conds, "Progressing", "True", "NewReplicaSetAvailable",
                  f'ReplicaSet "{name}" has successfully progressed.')
        elif created_new:
            _cond(conds, "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{name}"',
                  touch=True)
            self._last_progress[uid] = now
        elif new and _progressed(old_status, status, olds):
            _cond(conds, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.',
                  touch=True)
            self._last_progress[uid] = now
        elif new:
            if prog is None:
                _cond(conds, "Progressing", "True", "FoundNewReplicaSet", f'Found new replica set "{name}"')
                self._last_progress[uid] = now
            deadline = d["spec"].get("progressDeadlineSeconds")
            since = self._last_progress.setdefault(uid, now)
            if deadline is not None and (conds.get("Progressing") or {}).get("reason") != "NewReplicaSetAvailable" \
                    and now - since > deadline * self.c.time_factor:
                _cond(conds, "Progressing", "False", "ProgressDeadlineExceeded",
                      f'ReplicaSet "{name}" has timed out progressing.')
        status["conditions"] = [conds[k] for k in ("Available", "Progressing") if k in conds]
        if old_status.get("collisionCount"):
            status["collisionCount"] = old_status["collisionCount"]
        self.c.store.put(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"], ("status",),
                         {k: v for k, v in status.items() if v or k in ("observedGeneration", "conditions")})


def _st(obj: dict, key: str) -> int:
    return (obj.get("status") or {}).get(key, 0)


def _progressed(old: dict, new: dict, olds: list[dict]) -> bool:
    return (new["updatedReplicas"] > old.get("updatedReplicas", 0)
            or new["readyReplicas"] > old.get("readyReplicas", 0)
            or new["availableReplicas"] > old.get("availableReplicas", 0)
            or (new["replicas"] - new["updatedReplicas"]) < (old.get("replicas", 0) - old.get("updatedReplicas", 0)))


def _cond(conds: dict, typ: str, status: str, reason: str, message: str, touch: bool = False) -> None:
    cur = conds.get(typ)
    now = now_iso()
    if cur and cur["status"] == status and cur.get("reason") == reason and cur.get("message") == message \
            and not touch:
        return
    new = {"type": typ, "status": status, "lastUpdateTime": now,
           "lastTransitionTime": cur["lastTransitionTime"] if cur and cur["status"] == status else now,
           "reason": reason, "message": message}
    if cur and touch and cur["status"] == status and cur.get("reason") == reason and cur.get("message") == message \
            and cur.get("lastUpdateTime") == now:
        return
    conds[typ] = new
