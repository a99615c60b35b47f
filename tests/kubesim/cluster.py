"""`Cluster`: the handle tests get from the `kubesim` fixture (server + control plane + helpers).

Simulated durations (pod start/ready delays, crash back-offs, graceful stops, minReadySeconds,
progressDeadlineSeconds, PDB disrupted-pod expiry) take `seconds * time_factor` of wall time.
Wall-clock values a client sends itself (watch timeoutSeconds, `slow()` delays) are not scaled.
"""
from __future__ import annotations

import itertools
import os
import tempfile
import threading
import time

import yaml

from . import errors
from .api import Api
from .behaviors import Behavior
from .controllers import ControlPlane
from .events import EventRecorder
from .faults import Faults
from .kubelet import UNREACHABLE
from .proxy import ServiceProxy
from .request_log import RequestLog
from .resources import lookup
from .server import Server, shutdown_socket
from .store import Store, now_iso

DEFAULT_TIME_FACTOR = 0.05  # 1 simulated second = 50 ms; a pod is Ready ~50 ms after binding
NODES, NAMESPACES, PODS = lookup("", "v1", "nodes"), lookup("", "v1", "namespaces"), lookup("", "v1", "pods")
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_node_numbers = itertools.count(1)


def node_group_name(pool: str, generation: str, zone: str) -> str:
    """Mirrors infra.components.nodegroups.node_group_name (the `eks.amazonaws.com/nodegroup` label)."""
    return f"{pool}-{generation}-{zone[-1]}"


class Cluster:
    def __init__(self, time_factor: float = DEFAULT_TIME_FACTOR, workdir: str | None = None):
        self.time_factor = time_factor
        self.store = Store()
        self.api = Api(self.store)
        self.recorder = EventRecorder(self.store)
        self.faults = Faults()
        self.proxy = ServiceProxy(self.store)
        self.image_scripts: dict[str, Behavior] = {}
        self.logs: dict[str, str] = {}  # image -> text served by pods/{name}/log
        self.version: dict[str, str] = {}  # overrides of the /version document
        self.requests = RequestLog()  # (method, path, status) of every HTTP request, logged before the answer
        self.internal_errors: list[str] = []  # emulator bugs; the fixture fails the test if any
        self._watches: dict = {}
        self._dropped: set[int] = set()
        self._watch_lock = threading.Lock()
        self._workdir = workdir or tempfile.mkdtemp(prefix="kubesim-")
        os.makedirs(self._workdir, exist_ok=True)
        self.server = Server(self)
        self.control_plane = ControlPlane(self)
        self.url = self.server.url
        self.kubeconfig = os.path.join(self._workdir, "kubeconfig")
        for ns in SYSTEM_NAMESPACES:
            self.api.create(NAMESPACES, None, {"metadata": {"name": ns}}, "kube-apiserver")

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Cluster:
        self._write_kubeconfig()
        self.server.start()
        self.control_plane.start()
        return self

    def stop(self) -> None:
        self.control_plane.stop()
        self.store.close_watches()
        self.server.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _write_kubeconfig(self) -> None:
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": "kubesim",
               "clusters": [{"name": "kubesim", "cluster": {"server": self.url}}],
               "users": [{"name": "kubesim", "user": {"token": "kubesim-token"}}],
               "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": "kubesim",
                                                            "namespace": "default"}}]}
        with open(self.kubeconfig, "w") as f:
            yaml.safe_dump(doc, f)

    def api_client(self):
        """A kubernetes.client.ApiClient for this cluster (loaded from the kubeconfig, like production)."""
        from kubernetes import config
        return config.new_client_from_config(config_file=self.kubeconfig)

    # -- nodes ------------------------------------------------------------------------------------
    def add_node(self, name: str | None = None, pool: str = "general", generation: str = "blue",
                 zone: str = "eu-west-1a", labels: dict | None = None, ready: bool = True,
                 taints: list | None = None, pods: int = 110, cpu: str = "2", memory: str = "8010196Ki",
                 version: str = "v1.32.0-eks-1234567") -> dict:
        """Register a node like an EKS managed node group would (labels, providerID, Ready condition)."""
        n = next(_node_numbers)
        region = zone[:-1]
        name = name or f"ip-10-1-{n // 250}-{n % 250 + 1}.{region}.compute.internal"
        node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                       "node.kubernetes.io/instance-type": "m6i.large", "topology.kubernetes.io/zone": zone,
                       "topology.kubernetes.io/region": region, "failure-domain.beta.kubernetes.io/zone": zone,
                       "eks.amazonaws.com/nodegroup": node_group_name(pool, generation, zone),
                       "eks.amazonaws.com/capacityType": "ON_DEMAND", "pool": pool, "generation": generation,
                       **(labels or {})}
        capacity = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "20959212Ki"}
        node = {"metadata": {"name": name, "labels": node_labels},
                "spec": {"providerID": f"aws:///{zone}/i-{n:017x}", **({"taints": taints} if taints else {})},
                "status": {"capacity": capacity, "allocatable": dict(capacity),
                           "conditions": _node_conditions(ready),
                           "addresses": [{"type": "InternalIP", "address": f"10.1.{n // 250}.{n % 250 + 1}"},
                                         {"type": "Hostname", "address": name}],
                           "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": "",
                                        "osImage": "Amazon Linux 2023", "operatingSystem": "linux",
                                        "architecture": "amd64", "containerRuntimeVersion": "containerd://1.7.22",
                                        "kernelVersion": "6.1.0", "machineID": "", "systemUUID": "",
                                        "bootID": ""}}}
        return self.store.create(NODES, node)

    def add_nodes(self, pool: str = "general", generation: str = "blue",
                  zones=("eu-west-1a", "eu-west-1b", "eu-west-1c"), per_zone: int = 1, **kw) -> list[dict]:
        return [self.add_node(pool=pool, generation=generation, zone=z, **kw) for z in zones for _ in range(per_zone)]

    def set_server_version(self, git_version: str) -> None:
        """What /version reports, e.g. "v1.33.2-eks-4f3a1b2" after a control-plane upgrade."""
        major, minor = git_version.lstrip("v").split(".")[:2]
        self.version = {"gitVersion": git_version, "major": major, "minor": minor}

    def remove_node(self, name: str) -> None:
        """Terminate the instance: the Node object goes away, pod GC then deletes its pods."""
        self.store.delete(NODES, None, name)

    def set_node_ready(self, name: str, ready: bool = True) -> dict:
        """Kubelet up/down. Down: Ready=Unknown and `node.kubernetes.io/unreachable` taints; pods turn not
        Ready and are evicted after their toleration (300 simulated s by default), staying Terminating."""
        def write(n):
            n["status"]["conditions"] = _node_conditions(ready, n["status"].get("conditions"))
            taints = [t for t in n["spec"].get("taints") or [] if t.get("key") != UNREACHABLE]
            if not ready:
                taints += [{"key": UNREACHABLE, "effect": "NoSchedule"},
                           {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": now_iso()}]
            if taints:
                n["spec"]["taints"] = taints
            else:
                n["spec"].pop("taints", None)
        out = self.store.mutate(NODES, None, name, write)
        if out is None:
            raise errors.not_found(NODES, name)
        return out

    def nodes(self, **labels) -> list[dict]:
        return self.store.list(NODES, None, lambda n: all((n["metadata"].get("labels") or {}).get(k) == v
                                                          for k, v in labels.items()))[0]

    # -- pods -------------------------------------------------------------------------------------
    def script_image(self, image: str, behavior: str | Behavior, **params) -> Behavior:
        """Make every container running `image` behave as `behavior` (see behaviors.NAMES).

        params: delay (simulated seconds), message. E.g. script_image("repo/app:bad", "ErrImagePull").
        """
        b = Behavior.parse(behavior)
        if params:
            b = Behavior(b.name, float(params.pop("delay", b.delay)), params.pop("message", b.message), params)
        self.image_scripts[image] = b
        return b

    def script_logs(self, image: str, text: str) -> None:
        """What `pods/{name}/log` returns for containers running `image` (once they have started)."""
        self.logs[image] = text if text.endswith("\n") or not text else text + "\n"

    def pods(self, namespace: str | None = None, **labels) -> list[dict]:
        return self.store.list(PODS, namespace, lambda p: all((p["metadata"].get("labels") or {}).get(k) == v
                                                              for k, v in labels.items()))[0]

    def events(self, namespace: str | None = None, reason: str | None = None, name: str | None = None) -> list[dict]:
        return self.store.list(lookup("", "v1", "events"), namespace, lambda e: (
            (reason is None or e.get("reason") == reason)
            and (name is None or e["involvedObject"].get("name") == name)))[0]

    def wait_for(self, predicate, timeout: float = 60.0, interval: float = 0.01, message: str = "condition"):
        """Poll `predicate()` until truthy (returns its value) or raise TimeoutError after `timeout` wall seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"kubesim: timed out after {timeout}s waiting for {message}")
            time.sleep(interval)

    # -- faults -----------------------------------------------------------------------------------
    def inject_fault(self, method: str | None = None, path_regex: str | None = None, status: int = 503,
                     times: int | None = 1, message: str | None = None, retry_after: int | None = None):
        """Answer the next `times` matching requests with `status` and a Status body (None = until cleared).

        retry_after=N adds `Retry-After: N` as API priority-and-fairness 429s carry; note the official
        client's urllib3 then retries idempotent requests (GET/PUT/DELETE) on 429/503 by itself.
        """
        return self.faults.add_failure(method, path_regex, status, times, message, retry_after)

    def slow(self, path_regex: str | None, seconds: float, method: str | None = None, times: int | None = None):
        """Delay matching requests by `seconds` of wall time before they are served."""
        return self.faults.add_slow(path_regex, seconds, method, times)

    def clear_faults(self) -> None:
        self.faults.clear()

    def drop_watches(self, abrupt: bool = True) -> int:
        """Close every open watch stream: abruptly (connection reset) or cleanly (stream end). Returns count."""
        with self._watch_lock:
            watches = list(self._watches.items())
            if abrupt:
                self._dropped |= {id(s) for s, _ in watches}
        for sub, sock in watches:
            self.store.unsubscribe(sub)
            if abrupt:
                shutdown_socket(sock)
        return len(watches)

    def open_watches(self) -> int:
        with self._watch_lock:
            return len(self._watches)

    def compact(self) -> None:
        """Drop watch history: watches resuming from an older resourceVersion get 410 Gone."""
        self.store.compact()

    def register_watch(self, sub, sock) -> None:
        with self._watch_lock:
            self._watches[sub] = sock

    def unregister_watch(self, sub) -> None:
        with self._watch_lock:
            self._watches.pop(sub, None)
            self._dropped.discard(id(sub))

    def is_dropped(self, sub) -> bool:
        with self._watch_lock:
            return id(sub) in self._dropped

    # -- service proxy ----------------------------------------------------------------------------
    def script_proxy(self, namespace: str, service: str, port=None, path: str | None = "/", status: int = 200,
                     body="ok", times: int | None = None, content_type: str | None = None):
        """Script the answer of the service proxy for (namespace, service[:port], path).

        port/path None match any; `times` limits uses (later scripts win while they last), so
        `script_proxy(..., status=503, times=2)` then a 200 script simulates a slow-starting app.
        """
        return self.proxy.script(namespace, service, port, path, status, body, times, content_type)


def _node_conditions(ready: bool, old: list | None = None) -> list[dict]:
    now = now_iso()
    prev = {c["type"]: c for c in old or []}
    out = []
    for typ, status, reason, msg in (
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True" if ready else "Unknown", "KubeletReady" if ready else "NodeStatusUnknown",
             "kubelet is posting ready status" if ready else "Kubelet stopped posting node status.")):
        transition = prev[typ]["lastTransitionTime"] if typ in prev and prev[typ]["status"] == status else now
        out.append({"type": typ, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": transition,
                    "reason": reason, "message": msg})
    return out


def start(time_factor: float = DEFAULT_TIME_FACTOR, nodes: bool = True, workdir: str | None = None) -> Cluster:
    """Start a cluster; with nodes=True it gets one `general`/`blue` node in each of eu-west-1a/b/c."""
    c = Cluster(time_factor, workdir).start()
    if nodes:
        c.add_nodes("general", "blue")
    return c
