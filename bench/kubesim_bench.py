"""kubesim speed: fixture start (target < 0.5 s) and a 3-replica rolling update (target < 2 s wall).

Baselines in the same run: starting a bare ThreadingHTTPServer (what any HTTP fixture costs) for
the start time, and the simulated lower bound of the rollout (3 sequential surges x the pod ready
delay x the time factor) for the rolling update, so the ratios show what kubesim adds on top.
Medians of several runs; imports are warmed first, as in a pytest session.
"""
from __future__ import annotations

import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
START_TARGET_S, ROLLOUT_TARGET_S, RUNS = 0.5, 2.0, 5


def bare_server_start() -> float:
    t = time.perf_counter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    took = time.perf_counter() - t
    httpd.shutdown()
    httpd.server_close()
    return took


def kubesim_start() -> float:
    from tests.kubesim import start
    t = time.perf_counter()
    cluster = start()
    took = time.perf_counter() - t
    cluster.stop()
    return took


def rolling_update() -> tuple[float, float]:
    from kubernetes import client

    from tests.kubesim import start
    cluster = start()
    try:
        apps = client.AppsV1Api(cluster.api_client())
        apps.create_namespaced_deployment("default", {
            "metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                                                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                                                      "containers": [{"name": "app", "image": "repo/app:1"}]}}}})

        def done():
            d = apps.read_namespaced_deployment("web", "default")
            s = d.status
            return s and s.observed_generation == d.metadata.generation and s.updated_replicas == 3 \
                and s.replicas == 3 and s.available_replicas == 3
        cluster.wait_for(done, timeout=10)
        t = time.perf_counter()
        apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "repo/app:2"}]}}}})
        cluster.wait_for(done, timeout=10, interval=0.005)
        return time.perf_counter() - t, 3 * 1.0 * cluster.time_factor
    finally:
        cluster.stop()


def main() -> None:
    kubesim_start()  # warm imports
    bare = statistics.median(bare_server_start() for _ in range(RUNS))
    start = statistics.median(kubesim_start() for _ in range(RUNS))
    rollouts = [rolling_update() for _ in range(RUNS)]
    rollout = statistics.median(r[0] for r in rollouts)
    floor = rollouts[0][1]
    print(f"{'measure':<32} {'wall s':>7} {'baseline s':>11} {'ratio':>7} {'target s':>9}")
    print(f"{'fixture start (3 nodes)':<32} {start:7.3f} {bare:11.4f} {start / bare:6.0f}x {START_TARGET_S:9.1f}")
    print(f"{'3-replica rolling update':<32} {rollout:7.3f} {floor:11.3f} {rollout / floor:6.1f}x "
          f"{ROLLOUT_TARGET_S:9.1f}")
    print(f"start {start:.3f} s vs target {START_TARGET_S} s ({'OK' if start < START_TARGET_S else 'MISSED'}); "
          f"rollout {rollout:.3f} s vs target {ROLLOUT_TARGET_S} s "
          f"({'OK' if rollout < ROLLOUT_TARGET_S else 'MISSED'})")


if __name__ == "__main__":
    main()
