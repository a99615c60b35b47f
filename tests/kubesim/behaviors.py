"""Scripted container behaviours: what the simulated kubelet makes each container do.

A behaviour is chosen per container: the pod annotation `kubesim/behavior` wins, then a script
registered for the container's image (`Cluster.script_image`), then `Ready`. Annotation values
may carry parameters: `CrashLoopBackOff`, `Ready:delay=5`, `CreateContainerConfigError:message=...`.

Every behaviour is a pure function of simulated time since the pod started, returning the
container's status and the kubelet events that have happened by then, so the kubelet can be
a simple level-triggered loop.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

NAMES = ("Ready", "ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff", "NeverReady", "OOMKilled",
         "CreateContainerConfigError", "InvalidImageName", "Succeeded", "Failed")
ANNOTATION = "kubesim/behavior"
_IMAGE_RE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
                       r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$")


@dataclass(frozen=True)
class Behavior:
    name: str = "Ready"
    delay: float = 1.0  # simulated seconds from start until Ready (Ready) / until the first crash or failure
    message: str | None = None
    params: dict = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def parse(cls, spec: str | Behavior) -> Behavior:
        if isinstance(spec, Behavior):
            return spec
        name, _, rest = spec.partition(":")
        name = name.strip()
        if name not in NAMES:
            raise ValueError(f"unknown kubesim behavior {name!r}; expected one of {', '.join(NAMES)}")
        kw: dict = {}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            k, _, v = part.partition("=")
            kw[k] = v
        delay = float(kw.pop("delay")) if "delay" in kw else 1.0
        return cls(name, delay, kw.pop("message", None), kw)


def valid_image(image: str) -> bool:
    return bool(image) and _IMAGE_RE.match(image) is not None


@dataclass
class Moment:
    """A container's status at one instant, plus the events emitted up to then (key -> event)."""
    state: dict
    ready: bool
    started: bool
    restarts: int = 0
    last_state: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)  # key -> (type, reason, message)
    phase: str = "Running"  # what this container implies for the pod phase


def _backoff(n: int) -> float:
    return min(10.0 * (2 ** n), 300.0)


def timeline(b: Behavior, container: dict, pod_name: str, ns: str, uid: str, t: float, started_at: str,
             now: str, present: bool = False) -> Moment:
    """Status of one container `t` simulated seconds after the pod started.

    present: the image is already on the node (and the pull policy allows using it), so the
    kubelet reports it present instead of pulling, as it does when rolling back.
    """
    image, cname = container.get("image", ""), container["name"]
    ev: dict = {}
    pulled = ("Normal", "Pulled", f'Successfully pulled image "{image}" in 1.2s (1.2s including waiting). '
              f"Image size: 10485760 bytes.")
    if present and b.name not in ("ErrImagePull", "ImagePullBackOff"):
        pulled = ("Normal", "Pulled", f'Container image "{image}" already present on machine')
    created = ("Normal", "Created", f"Created container: {cname}")
    started = ("Normal", "Started", f"Started container {cname}")
    running = {"running": {"startedAt": started_at}}
    name = b.name
    if name == "InvalidImageName" or not valid_image(image):
        msg = b.message or f'Failed to apply default image tag "{image}": couldn\'t parse image reference ' \
                           f'"{image}": invalid reference format'
        ev["inspect"] = ("Warning", "InspectFailed", msg)
        ev["failed"] = ("Warning", "Failed", "Error: InvalidImageName")
        return Moment({"waiting": {"reason": "InvalidImageName", "message": msg}}, False, False, events=ev,
                      phase="Pending")
    if not present or name in ("ErrImagePull", "ImagePullBackOff"):
        ev["pulling"] = ("Normal", "Pulling", f'Pulling image "{image}"')
    if name in ("ErrImagePull", "ImagePullBackOff"):
        msg = b.message or (f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                            f'failed to resolve reference "{image}": not found')
        ev["pullfail"] = ("Warning", "Failed", f'Failed to pull image "{image}": {msg}')
        ev["errpull"] = ("Warning", "Failed", "Error: ErrImagePull")
        if t < b.delay and name == "ErrImagePull":
            return Moment({"waiting": {"reason": "ErrImagePull", "message": msg}}, False, False, events=ev,
                          phase="Pending")
        ev["backoff"] = ("Normal", "BackOff", f'Back-off pulling image "{image}"')
        ev["errbackoff"] = ("Warning", "Failed", "Error: ImagePullBackOff")
        return Moment({"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}},
                      False, False, events=ev, phase="Pending")
    ev["pulled"] = pulled
    if name == "CreateContainerConfigError":
        msg = b.message or f'configmap "{pod_name.rsplit("-", 2)[0]}-config" not found'
        ev["configerr"] = ("Warning", "Failed", f"Error: {msg}")
        return Moment({"waiting": {"reason": "CreateContainerConfigError", "message": msg}}, False, False,
                      events=ev, phase="Pending")
    if t < min(b.delay, 0.5) * 0.5:
        return Moment({"waiting": {"reason": "ContainerCreating"}}, False, False, events=ev, phase="Pending")
    ev["created"], ev["started"] = created, started
    if name == "Ready":
        return Moment(running, t >= b.delay, True, events=ev)
    if name == "NeverReady":
        if t >= b.delay:
            ev["unhealthy"] = ("Warning", "Unhealthy", b.message or
                               "Readiness probe failed: HTTP probe failed with statuscode: 503")
        return Moment(running, False, True, events=ev)
    if name in ("Succeeded", "Failed"):
        if t < b.delay:
            return Moment(running, False, True, events=ev)
        code = 0 if name == "Succeeded" else 1
        term = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                               "startedAt": started_at, "finishedAt": now}}
        return Moment(term, False, False, events=ev, phase=name)
    # CrashLoopBackOff / OOMKilled: run `delay`, die, back off 10s, 20s, ... (capped at 300s)
    oom = name == "OOMKilled"
    reason, code = ("OOMKilled", 137) if oom else ("Error", 1)
    run_for = b.delay
    clock, restarts = 0.0, 0
    while True:
        if t < clock + run_for:
            last = {} if restarts == 0 else {"terminated": {"exitCode": code, "reason": reason,
                                                             "startedAt": started_at, "finishedAt": now}}
            return Moment({"running": {"startedAt": started_at}}, False, True, restarts, last, ev)
        clock += run_for
        restarts += 1
        wait = _backoff(restarts - 1)
        if t < clock + wait:
            ev["crash"] = ("Warning", "BackOff", f"Back-off restarting failed container {cname} in pod "
                           f"{pod_name}_{ns}({uid})")
            return Moment({"waiting": {"reason": "CrashLoopBackOff",
                                       "message": f"back-off {int(wait)}s restarting failed container={cname} "
                                                  f"pod={pod_name}_{ns}({uid})"}},
                          False, False, restarts,
                          {"terminated": {"exitCode": code, "reason": reason, "startedAt": started_at,
                                          "finishedAt": now}}, ev)
        clock += wait
