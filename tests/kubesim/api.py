"""The API verbs (create, update, patch, apply, delete, evict, bind, scale) over the store.

This is the registry layer of kube-apiserver: it owns request semantics (status subresource
isolation, optimistic concurrency, graceful deletion, finalizers, dry-run, managedFields,
PodDisruptionBudget-checked eviction) independent of HTTP framing, which lives in server.py.
"""
from __future__ import annotations

import functools
import random
import string
from datetime import UTC, datetime, timedelta

import yaml

from . import errors
from .apply import apply as ssa_apply
from .apply import record_update
from .defaults import apply_defaults, prune_nulls, validate
from .merge import json_patch, merge_patch, strategic_merge
from .resources import RESOURCE_TYPES, ResourceType, lookup
from .selectors import match_label_selector
from .store import FOREGROUND, Store, clone, now_iso

_RESET_STATUS_ON_CREATE = {"apps", "batch", "policy", "autoscaling"}
# kinds whose registry strategy has AllowCreateOnUpdate() true: PUT on a missing object creates it
_CREATE_ON_UPDATE = {"Lease", "Endpoints", "Event", "Service", "Role", "RoleBinding", "ClusterRole",
                     "ClusterRoleBinding"}
PODS = lookup("", "v1", "pods")
PDBS = lookup("policy", "v1", "poddisruptionbudgets")
NAMESPACES = lookup("", "v1", "namespaces")


def _locked(verb):
    """Run a verb under the store lock: read-modify-write is atomic against controllers and other
    requests, as the apiserver's GuaranteedUpdate retry loop guarantees."""
    @functools.wraps(verb)
    def run(self, *a, **kw):
        with self.store.lock:
            return verb(self, *a, **kw)
    return run


def is_pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


class Api:
    def __init__(self, store: Store):
        self.store = store

    # -- helpers --------------------------------------------------------------------------------
    def get(self, rt: ResourceType, ns: str | None, name: str) -> dict:
        obj = self.store.get(rt, ns, name)
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def _check_namespace(self, rt: ResourceType, ns: str | None, creating: bool = False) -> None:
        if not rt.namespaced:
            return
        nsobj = self.store.get(NAMESPACES, None, ns)
        if nsobj is None:
            raise errors.namespace_not_found(ns)
        if creating and nsobj["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(403, "Forbidden", f"{rt.kind.lower()}s \"\" is forbidden: unable to create new "
                                  f"content in namespace {ns} because it is being terminated")

    def _check_body(self, rt: ResourceType, ns: str | None, name: str | None, obj) -> dict:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if av and av != rt.api_version:
            raise errors.bad_request(f"the API version in the data ({av}) does not match the expected API version "
                                     f"({rt.api_version})")
        if kind and kind != rt.kind:
            raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        meta = obj.setdefault("metadata", {})
        if name is not None and meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                     f"({name})")
        if name is not None:
            meta["name"] = name
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent "
                                         "on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        return obj

    # -- create ---------------------------------------------------------------------------------
    def create(self, rt: ResourceType, ns: str | None, obj: dict, manager: str, dry_run: bool = False) -> dict:
        self._check_namespace(rt, ns, creating=True)
        obj = self._check_body(rt, ns, None, obj)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        for f in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation"):
            meta.pop(f, None)
        if rt.group in _RESET_STATUS_ON_CREATE or rt.kind == "Pod":
            obj.pop("status", None)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        obj = prune_nulls(obj)
        meta = obj["metadata"]
        apply_defaults(rt, obj)
        validate(rt, obj)
        meta.pop("managedFields", None)
        record_update(None, obj, manager)
        if dry_run:
            if self.store.get(rt, ns, meta["name"]) is not None:
                raise errors.already_exists(rt, meta["name"])
            meta.update(uid="00000000-0000-0000-0000-000000000000", creationTimestamp=now_iso())
            return obj
        return self.store.create(rt, obj)

    # -- update / patch -------------------------------------------------------------------------
    @_locked
    def update(self, rt: ResourceType, ns: str | None, name: str, obj: dict, manager: str,
               subresource: str | None = None, dry_run: bool = False) -> dict:
        obj = self._check_body(rt, ns, name, obj)
        old = self.store.get(rt, ns, name)
        if old is None:
            if subresource is None:  # PUT creates when the object is missing (AllowCreateOnUpdate kinds)
                if rt.kind in _CREATE_ON_UPDATE:
                    return self.create(rt, ns, obj, manager, dry_run)
            raise errors.not_found(rt, name)
        expect = obj["metadata"].get("resourceVersion")
        if expect and expect != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name)
        return self._write(rt, old, obj, manager, subresource, dry_run)

    def _write(self, rt, old, new, manager, subresource, dry_run, fresh_managed=False):
        new = prune_nulls(self._isolate(rt, old, new, subresource))
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        apply_defaults(rt, new)
        validate(rt, new, old)
        if not fresh_managed:
            if new["metadata"].get("managedFields") is None or subresource:
                new["metadata"]["managedFields"] = old["metadata"].get("managedFields")
            record_update(old, new, manager, subresource)
        if dry_run:
            return new
        result = self.store.replace(rt, new, expect_rv=old["metadata"]["resourceVersion"])
        meta = result["metadata"]
        kubelet_owned = rt.kind == "Pod" and (result.get("spec") or {}).get("nodeName")
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt.kind != "Namespace" \
                and not kubelet_owned:  # the last finalizer is gone: the deletion completes
            return self.store.delete(rt, meta.get("namespace"), meta["name"])
        return result

    def _isolate(self, rt, old, new, subresource):
        """Status writes only touch status; main writes never touch status (if it has a subresource)."""
        if subresource == "status":
            out = clone(old)
            out["status"] = clone(new.get("status"))
            if new["metadata"].get("managedFields") is not None:
                out["metadata"]["managedFields"] = new["metadata"]["managedFields"]
            return out
        new = clone(new)
        meta = new["metadata"]
        for f in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if f in old["metadata"]:
                meta[f] = old["metadata"][f]
            else:
                meta.pop(f, None)
        if "status" in rt.subresources and "status" in old:
            new["status"] = clone(old["status"])
        elif "status" in rt.subresources:
            new.pop("status", None)
        return new

    @_locked
    def patch(self, rt: ResourceType, ns: str | None, name: str, body: bytes, content_type: str, manager: str | None,
              force: bool = False, subresource: str | None = None, dry_run: bool = False) -> dict:
        ctype = content_type.split(";")[0].strip()
        if ctype == "application/apply-patch+yaml":
            return self._apply(rt, ns, name, body, manager, force, subresource, dry_run)
        manager = manager or "unknown"
        try:
            doc = yaml.safe_load(body) if body else None
        except yaml.YAMLError as e:
            raise errors.bad_request(f"error decoding patch: {e}") from None
        old = self.get(rt, ns, name)
        if ctype == "application/json-patch+json":
            new = json_patch(old, doc)
        elif ctype == "application/merge-patch+json":
            new = merge_patch(old, doc)
        elif ctype == "application/strategic-merge-patch+json":
            if not isinstance(doc, dict):
                raise errors.bad_request("strategic merge patch must be a JSON object")
            new = strategic_merge(old, doc)
        else:
            raise errors.unsupported_media_type(ctype)
        if not isinstance(new, dict):
            raise errors.bad_request("patch did not produce an object")
        expect = (new.get("metadata") or {}).get("resourceVersion")
        if expect and expect != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name)
        new = self._check_body(rt, ns, name, new)
        return self._write(rt, old, new, manager, subresource, dry_run)

    def _apply(self, rt, ns, name, body, manager, force, subresource, dry_run) -> dict:
        if not manager:
            raise errors.bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set")
        try:
            applied = yaml.safe_load(body)
        except yaml.YAMLError as e:
            raise errors.bad_request(f"error decoding YAML: {e}") from None
        applied = prune_nulls(self._check_body(rt, ns, name, applied))
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise errors.bad_request("apiVersion and kind must be set in an apply configuration")
        if applied["metadata"].get("managedFields"):
            raise errors.bad_request("metadata.managedFields must be nil")
        old = self.store.get(rt, ns, name)
        if old is None:
            if subresource:
                raise errors.not_found(rt, name)
            self._check_namespace(rt, ns, creating=True)
            obj = ssa_apply(None, applied, manager, force)
            if rt.group in _RESET_STATUS_ON_CREATE or rt.kind == "Pod":
                obj.pop("status", None)
            apply_defaults(rt, obj)
            validate(rt, obj)
            if dry_run:
                obj["metadata"].update(uid="00000000-0000-0000-0000-000000000000", creationTimestamp=now_iso())
                return obj
            return self.store.create(rt, obj)
        expect = applied["metadata"].get("resourceVersion")
        if expect and expect != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name)
        new = ssa_apply(old, applied, manager, force, subresource)
        new = self._check_body(rt, ns, name, new)
        return self._write(rt, old, new, manager, subresource, dry_run, fresh_managed=True)

    # -- delete ---------------------------------------------------------------------------------
    @_locked
    def delete(self, rt: ResourceType, ns: str | None, name: str, options: dict | None = None,
               dry_run: bool = False) -> dict:
        options = options or {}
        obj = self.get(rt, ns, name)
        meta = obj["metadata"]
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            raise errors.conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                                  f"object meta: {meta['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise errors.conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                                  f"{pre['resourceVersion']}, ResourceVersion in object meta: {meta['resourceVersion']}")
        if dry_run:
            return obj
        if options.get("propagationPolicy") == "Orphan":
            self._orphan_dependents(meta["uid"])
        if options.get("propagationPolicy") == "Foreground" and rt.kind != "Pod":
            def foreground(o):  # the garbage collector deletes dependents, then drops the finalizer
                if FOREGROUND not in (o["metadata"].get("finalizers") or []):
                    o["metadata"]["finalizers"] = (o["metadata"].get("finalizers") or []) + [FOREGROUND]
                o["metadata"].setdefault("deletionTimestamp", now_iso())
                o["metadata"].setdefault("deletionGracePeriodSeconds", 0)
            return self.store.mutate(rt, ns, name, foreground)
        grace = options.get("gracePeriodSeconds")
        if rt.kind == "Pod":
            return self._delete_pod(obj, grace)
        if rt.kind == "Namespace" or meta.get("finalizers"):
            def mark(o):
                o["metadata"].setdefault("deletionTimestamp", now_iso())
                o["metadata"].setdefault("deletionGracePeriodSeconds", 0)
                if rt.kind == "Namespace":
                    o.setdefault("status", {})["phase"] = "Terminating"
            return self.store.mutate(rt, ns, name, mark)
        return self.store.delete(rt, ns, name)

    def _delete_pod(self, pod: dict, grace) -> dict:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        grace = spec.get("terminationGracePeriodSeconds", 30) if grace is None else int(grace)
        terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if grace <= 0 or not spec.get("nodeName") or terminal:
            if meta.get("finalizers"):
                return self.store.mutate(PODS, meta["namespace"], meta["name"],
                                         lambda o: o["metadata"].setdefault("deletionTimestamp", now_iso()))
            return self.store.delete(PODS, meta["namespace"], meta["name"])
        if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds", grace) <= grace:
            return pod

        def mark(o):
            at = datetime.now(UTC) + timedelta(seconds=grace)
            o["metadata"]["deletionTimestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            o["metadata"]["deletionGracePeriodSeconds"] = grace
        return self.store.mutate(PODS, meta["namespace"], meta["name"], mark)

    def _orphan_dependents(self, uid: str) -> None:
        for t in RESOURCE_TYPES:
            for o in self.store.list(t, None, lambda o: any(r.get("uid") == uid for r in
                                                              o["metadata"].get("ownerReferences") or []))[0]:
                refs = [r for r in o["metadata"]["ownerReferences"] if r.get("uid") != uid]
                self.store.put(t, o["metadata"].get("namespace"), o["metadata"]["name"],
                               ("metadata", "ownerReferences"), refs)

    # -- subresources ---------------------------------------------------------------------------
    @_locked
    def evict(self, ns: str, name: str, eviction: dict, dry_run: bool = False) -> dict:
        """policy/v1 Eviction: delete the pod only if its PodDisruptionBudget allows it (else 429)."""
        if (eviction.get("metadata") or {}).get("name") not in (None, name):
            raise errors.bad_request("name in URL does not match name in Eviction object")
        pod = self.get(PODS, ns, name)
        options = eviction.get("deleteOptions") or {}
        success = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
            if not dry_run and not pod["metadata"].get("deletionTimestamp"):
                self.delete(PODS, ns, name, options)
            return success
        pdbs = [p for p in self.store.list(PDBS, ns)[0]
                if match_label_selector(p["spec"].get("selector"), pod["metadata"].get("labels"))]
        if len(pdbs) > 1:
            raise errors.ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the "
                                  "eviction subresource does not support.")
        if pdbs:
            pdb = pdbs[0]
            status = pdb.get("status") or {}
            pname = pdb["metadata"]["name"]
            unhealthy_ok = not is_pod_ready(pod) and (
                pdb["spec"].get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
                or status.get("currentHealthy", 0) >= status.get("desiredHealthy", 0) > 0)
            if not unhealthy_ok:
                if status.get("observedGeneration", 0) < pdb["metadata"].get("generation", 1):
                    raise errors.too_many_requests(
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        [{"reason": "DisruptionBudget",
                          "message": f"The disruption budget {pname} is still being processed by the server."}],
                        retry_after=10)
                if status.get("disruptionsAllowed", 0) <= 0:
                    raise errors.too_many_requests(
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        [{"reason": "DisruptionBudget",
                          "message": f"The disruption budget {pname} needs {status.get('desiredHealthy', 0)} healthy "
                                     f"pods and has {status.get('currentHealthy', 0)} currently"}])
                if dry_run:
                    return success

                def take(p):
                    st = p.setdefault("status", {})
                    if st.get("disruptionsAllowed", 0) <= 0:
                        return False
                    st["disruptionsAllowed"] -= 1
                    st.setdefault("disruptedPods", {})[name] = now_iso()
                if self.store.mutate(PDBS, ns, pname, take) is None:  # lost a race with another eviction
                    raise errors.too_many_requests("Cannot evict pod as it would violate the pod's disruption "
                                                   "budget.", [{"reason": "DisruptionBudget", "message":
                                                                f"The disruption budget {pname} needs more pods"}])
        if not dry_run:
            self.delete(PODS, ns, name, options)
        return success

    def bind(self, ns: str, name: str, binding: dict) -> dict:
        node = (binding.get("target") or {}).get("name")
        if not node:
            raise errors.bad_request("binding target name is required")

        def bind(p):
            if p["spec"].get("nodeName"):
                raise errors.conflict(PODS, name, f"pod {name} is already assigned to node "
                                      f"\"{p['spec']['nodeName']}\"")
            p["spec"]["nodeName"] = node
        self.store.mutate(PODS, ns, name, bind)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def get_scale(self, rt: ResourceType, ns: str, name: str) -> dict:
        obj = self.get(rt, ns, name)
        sel = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": name, "namespace": ns, "uid": obj["metadata"]["uid"],
                             "resourceVersion": obj["metadata"]["resourceVersion"],
                             "creationTimestamp": obj["metadata"]["creationTimestamp"]},
                "spec": {"replicas": obj["spec"].get("replicas", 1)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in sel.items())}}

    @_locked
    def update_scale(self, rt: ResourceType, ns: str, name: str, scale: dict, manager: str) -> dict:
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(rt, name,
                                 [("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0")])
        old = self.get(rt, ns, name)
        expect = (scale.get("metadata") or {}).get("resourceVersion")
        if expect and expect != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name)
        new = clone(old)
        new["spec"]["replicas"] = replicas
        self._write(rt, old, new, manager, None, False)
        return self.get_scale(rt, ns, name)
