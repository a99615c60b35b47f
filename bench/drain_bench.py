"""Drain speed on the kubesim emulator: 3 AZs x 4 nodes x 10 pods, AZ by AZ with parallel evictions
(what `nodes.migrate` does) versus a node-by-node, one-pod-at-a-time drain measured in the same run.

Both drains run on identically built clusters (120 pods in 4 Deployments under PDBs with
maxUnavailable 3, plus a DaemonSet that stays), with a watchdog sampling every few ms for moments
when a budget's guarantee is not met. Target: ratio > 1 and zero PDB violations.
Usage: .venv/bin/python bench/drain_bench.py [--time-factor 0.05]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AZS = ("eu-west-1a", "eu-west-1b", "eu-west-1c")
NODES_PER_AZ, PODS_PER_NODE, APPS, MAX_UNAVAILABLE = 4, 10, 4, 3


def build(time_factor: float):
    """A cluster with 12 old (blue) nodes holding 120 pods, and 12 empty new (green) nodes."""
    from tests.kubesim.cluster import start
    from tests.support import node_world as world

    cluster = start(time_factor, nodes=False, workdir=tempfile.mkdtemp(prefix="drain-bench-"))
    cluster.add_nodes("general", "blue", zones=AZS, per_zone=NODES_PER_AZ)
    api = cluster.api_client()
    world.namespace(api)
    replicas = len(AZS) * NODES_PER_AZ * PODS_PER_NODE // APPS
    for index in range(APPS):
        world.deployment(api, f"svc{index}", replicas, max_unavailable=MAX_UNAVAILABLE, grace=10)
    world.daemonset(api, "logs")
    world.wait_running(cluster, APPS * replicas, timeout=120)
    cluster.add_nodes("general", "green", zones=AZS, per_zone=NODES_PER_AZ)
    return cluster, api, {f"svc{i}": replicas - MAX_UNAVAILABLE for i in range(APPS)}


def run(mode: str, time_factor: float) -> dict:
    from infra.ops.io.kube import Kube
    from infra.ops.lifecycle.drain import ZONE, Drain, DrainPolicy
    from tests.support import node_world as world

    cluster, api, guarantees = build(time_factor)
    try:
        parallel = mode == "parallel"
        drain = Drain(Kube(api), DrainPolicy(parallelism=8 if parallel else 1, backoff=0.05, backoff_max=0.5))
        old = drain.nodes("generation=blue")
        drain.cordon(node.metadata.name for node in old)
        batches = ([[n.metadata.name for n in old if n.metadata.labels[ZONE] == az] for az in AZS] if parallel
                   else [[n.metadata.name] for n in old])
        evicted = refusals = 0
        with world.BudgetWatch(cluster, guarantees) as watch:
            started = time.perf_counter()
            for batch in batches:
                report = drain.drain(batch)
                evicted, refusals = evicted + len(report.evicted), refusals + report.refusals
            seconds = time.perf_counter() - started
        return {"mode": mode, "seconds": seconds, "evicted": evicted, "refusals": refusals,
                "violations": len(watch.violations), "samples": watch.samples}
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-factor", type=float, default=0.05, help="kubesim seconds -> wall seconds")
    args = parser.parse_args()
    print("building and draining: sequential baseline, then parallel ...", flush=True)
    baseline = run("sequential", args.time_factor)
    ours = run("parallel", args.time_factor)
    print(f"drain {len(AZS)} AZs x {NODES_PER_AZ} nodes x {PODS_PER_NODE} pods (time factor {args.time_factor})")
    print(f"{'mode':<28}{'seconds':>9}{'evicted':>9}{'refusals':>10}{'PDB violations':>16}")
    for row, label in ((baseline, "node by node, 1 at a time"), (ours, "AZ by AZ, 8 in parallel")):
        print(f"{label:<28}{row['seconds']:>9.2f}{row['evicted']:>9}{row['refusals']:>10}{row['violations']:>16}")
    ratio = baseline["seconds"] / ours["seconds"]
    print(f"ratio: parallel drain is {ratio:.1f}x faster than the sequential baseline; "
          f"PDB violations: {baseline['violations'] + ours['violations']} "
          f"({baseline['samples'] + ours['samples']} samples)")
    return 0 if ours["violations"] == 0 and baseline["violations"] == 0 and ratio > 1 else 1


if __name__ == "__main__":
    sys.exit(main())
