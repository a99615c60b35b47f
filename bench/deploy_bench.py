"""Deploy speed on kubesim (ECR on moto server), each figure beside a baseline measured in the same run.

1. Failure verdict latency (target < 2 s): from the moment the emulator first shows a new pod in
   ImagePullBackOff/ErrImagePull (or CrashLoopBackOff) to `invoke deploy`'s verdict, beside what
   `kubectl rollout status` needs on the same scenario (it waits for progressDeadlineSeconds).
2. Success overhead (target < 0.5 s): from the Deployment becoming complete to the deploy returning
   (smoke check, history, lock release included), beside `kubectl rollout status` returning.
3. Rollback (target: within one rollout's time): from the failure verdict until the previous version is
   fully available again, beside a normal successful rollout of the same Deployment.

The emulator runs at a time factor (simulated seconds x factor = wall seconds); the manifests' own
progressDeadlineSeconds (300) is what kubectl waits for, scaled the same way.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VERDICT_TARGET_S, OVERHEAD_TARGET_S = 2.0, 0.5
NAMESPACE = "apps-dev"
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff")


class Clock:
    """Wall time of the first store write (pod or deployment) after which `predicate(obj)` holds.

    Subscribes to the emulator's store, so the moment is the write itself, not a poll that may lag it.
    """

    def __init__(self, cluster, plural: str, predicate):
        from tests.kubesim.resources import lookup

        group = "apps" if plural == "deployments" else ""
        self.at: float | None = None
        self._store = cluster.store
        self._sub, backlog = cluster.store.subscribe(lookup(group, "v1", plural), NAMESPACE, None)
        if any(predicate(event.obj) for event in backlog):
            self.at = time.monotonic()
        self._thread = threading.Thread(target=self._follow, args=(predicate,), daemon=True)
        self._thread.start()

    def _follow(self, predicate) -> None:
        while self.at is None:
            event = self._sub.events.get()
            if event is None:
                return
            if predicate(event.obj):
                self.at = time.monotonic()

    def stop(self) -> float | None:
        self._store.unsubscribe(self._sub)
        self._thread.join()
        return self.at


def first_waiting(cluster, image: str, reasons: tuple[str, ...]) -> Clock:
    def failing(pod: dict) -> bool:
        return any(c["image"] == image for c in pod["spec"]["containers"]) and any(
            ((status.get("state") or {}).get("waiting") or {}).get("reason") in reasons
            for status in (pod.get("status") or {}).get("containerStatuses") or [])
    return Clock(cluster, "pods", failing)


def complete(cluster, image: str) -> Clock:
    def done(d: dict) -> bool:
        if d["metadata"]["name"] != "api" or d["spec"]["template"]["spec"]["containers"][0]["image"] != image:
            return False
        s, want = d.get("status") or {}, d["spec"].get("replicas", 1)
        return (s.get("observedGeneration", 0) >= d["metadata"]["generation"] and s.get("updatedReplicas") == want
                and s.get("replicas") == want and s.get("availableReplicas") == want and s.get("readyReplicas") == want)
    return Clock(cluster, "deployments", done)


class TimedReporter:
    """A plain Reporter that also notes when each event happened."""

    def __init__(self):
        from infra.ops.deploy.report import Reporter

        self.inner = Reporter(mode="plain", stream=io.StringIO())
        self.at: dict[str, float] = {}

    def event(self, name, message="", **facts):
        self.at.setdefault(name, time.monotonic())
        self.inner.event(name, message, **facts)

    def progress(self, label, progress):
        self.inner.progress(label, progress)

    def done(self):
        self.inner.done()


def kubectl(cluster, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", cluster.kubeconfig, "-n", NAMESPACE, *args],
                          capture_output=True, text=True, timeout=timeout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-factor", type=float, default=0.05, help="kubesim wall seconds per simulated second")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    from infra.ops.deploy import pipeline as deploy
    from infra.ops.deploy import target as catalog
    from infra.ops.io.kube import from_kubeconfig
    from tests.kubesim import start
    from tests.support.deploy_world import push

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "eu-west-1"})
    ecr = boto3.client("ecr", region_name="eu-west-1")
    ecr.create_repository(repositoryName="api")
    uri = ecr.describe_repositories(repositoryNames=["api"])["repositories"][0]["repositoryUri"]
    cluster = start(args.time_factor, nodes=True)
    kube = from_kubeconfig(cluster.kubeconfig)
    kube.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": NAMESPACE}})
    target = catalog.resolve("api", "dev")
    counter = iter(range(1000))

    def new_image(behavior: str) -> tuple[str, str]:
        tag = f"r{next(counter)}"
        push(ecr, "api", tag)
        cluster.script_image(f"{uri}:{tag}", behavior)
        return tag, f"{uri}:{tag}"

    def ship(tag: str) -> tuple[TimedReporter, float, Exception | None]:
        reporter = TimedReporter()
        engine = deploy.Deploy(kube, target, region="eu-west-1", tag=tag, reporter=reporter, who="bench",
                               timeout_s=600, force_conflicts=True)  # kubectl baselines own the image field
        try:
            engine.run()
        except deploy.DeployFailed as exc:
            return reporter, time.monotonic(), exc
        return reporter, time.monotonic(), None

    def kubectl_rollout(image: str, clock: Clock) -> tuple[float, int]:
        kubectl(cluster, "set", "image", "deployment/api", f"api={image}")
        status = kubectl(cluster, "rollout", "status", "deployment/api", "--timeout=600s")
        ended = time.monotonic()
        at = clock.stop()
        return (ended - at if at else float("nan")), status.returncode

    rows = []
    try:
        ship(new_image("Ready")[0])  # the running version every scenario starts from
        for behavior, reasons in (("ImagePullBackOff", PULL_FAILURES), ("CrashLoopBackOff", ("CrashLoopBackOff",))):
            tag, image = new_image(behavior)
            clock = first_waiting(cluster, image, reasons)
            reporter, _, error = ship(tag)  # fails and rolls back to the running version
            failed_at = clock.stop()
            ours = reporter.at["verdict"] - failed_at if failed_at else float("nan")
            _, image = new_image(behavior)
            theirs, code = kubectl_rollout(image, first_waiting(cluster, image, reasons))
            rows.append((f"failure verdict ({behavior})", ours, theirs, f"< {VERDICT_TARGET_S:g} s",
                         ours < VERDICT_TARGET_S and error is not None, f"kubectl rollout status exit {code}"))
            kubectl(cluster, "rollout", "undo", "deployment/api")
            kubectl(cluster, "rollout", "status", "deployment/api", "--timeout=120s")

        # success overhead: Deployment complete -> command returns
        tag, image = new_image("Ready")
        clock = complete(cluster, image)
        reporter, returned, _ = ship(tag)
        completed = clock.stop()
        rollout_time = completed - reporter.at["apply"]
        ours = returned - completed
        _, image = new_image("Ready")
        clock = complete(cluster, image)
        kubectl(cluster, "set", "image", "deployment/api", f"api={image}")
        kubectl(cluster, "rollout", "status", "deployment/api", "--timeout=600s")
        theirs = time.monotonic() - clock.stop()
        rows.append(("success overhead", ours, theirs, f"< {OVERHEAD_TARGET_S:g} s", ours < OVERHEAD_TARGET_S,
                     f"apply->complete {rollout_time:.2f} s"))

        # rollback: failure verdict -> previous version fully available, beside one successful rollout
        tag, _ = new_image("CrashLoopBackOff")
        reporter, _, error = ship(tag)
        restored = reporter.at["rollback-verdict"] - reporter.at["verdict"]
        rows.append(("rollback to previous", restored, rollout_time, "<= 1 rollout",
                     error is not None and restored <= rollout_time, "baseline: one successful rollout"))
    finally:
        cluster.stop()
        moto.stop()

    print(f"deploy bench (kubesim time factor {args.time_factor:g}; kubectl {kubectl_version()})")
    print(f"{'measure':32} {'deploy':>9} {'baseline':>9} {'ratio':>7}  target       ok   note")
    for name, ours, theirs, goal, ok, note in rows:
        ratio = theirs / ours if ours else float("inf")
        print(f"{name:32} {ours:8.3f}s {theirs:8.3f}s {ratio:6.1f}x  {goal:12} {'yes' if ok else 'NO':4} {note}")
    print("baselines: failure/success = `kubectl rollout status` on the same scenario; rollback = one successful "
          "rollout of the same Deployment (ratio > 1 means faster than the baseline)")
    return 0 if all(row[4] for row in rows) else 1


def kubectl_version() -> str:
    done = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True)
    import json

    try:
        return json.loads(done.stdout)["clientVersion"]["gitVersion"]
    except (ValueError, KeyError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
