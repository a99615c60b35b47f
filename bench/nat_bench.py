"""NAT failover benchmark: handler time (event -> all routes replaced) and silent-failure detection time.

1. The failover handler against moto server on loopback, 3 route tables all behind the instance that
   stops: wall time from handing it the EC2 state-change event to the last ReplaceRoute, and to return
   (notifications and metrics included). Printed beside the 5 s end-to-end failover budget.
2. Detection of a silent failure (instance up, egress dead), simulated with a clock over many random
   failure moments: this project's probe schedule (the NatConfig defaults) against a 5 s-interval
   once-a-minute schedule like alterNAT's (sequential targets, 5 s timeout each, one failed check).

Run: python bench/nat_bench.py [--runs 5] [--trials 2000]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUDGET_SECONDS = 5.0


@dataclass(frozen=True)
class Schedule:
    """How a checker probes: invocation period/window, round cadence, what one failing round costs."""

    name: str
    period: float  # seconds between invocations
    window: float  # seconds of probing per invocation
    interval: float  # seconds between round starts (cadence) or sleep after a round
    fail_duration: float  # a failing round ends after this (timeouts)
    threshold: int  # consecutive failing rounds to declare the instance down
    sleep_after_round: bool  # True: sleep `interval` after each round (alterNAT); False: fixed cadence
    ok_duration: float = 0.05

    def detect(self, failed_at: float) -> float:
        """Seconds from the silent failure to the moment the checker declares the instance down."""
        start = (failed_at // self.period) * self.period
        while True:
            streak, now = 0, start
            while now < start + self.window:
                failing = now >= failed_at
                end = now + (self.fail_duration if failing else self.ok_duration)
                streak = streak + 1 if failing else 0
                if streak >= self.threshold:
                    return end - failed_at
                now = end + self.interval if self.sleep_after_round else max(now + self.interval, end)
            start += self.period


def ours() -> Schedule:
    from infra.config import NatConfig

    nat = NatConfig()
    return Schedule(f"eks-platform ({nat.probe_interval_seconds:g}s cadence, {nat.probe_timeout_seconds:g}s timeout, "
                    f"parallel targets, {nat.failure_threshold} failed rounds, {nat.probe_window_seconds}s/min)",
                    period=60, window=nat.probe_window_seconds, interval=nat.probe_interval_seconds,
                    fail_duration=nat.probe_timeout_seconds, threshold=nat.failure_threshold, sleep_after_round=False)


def baseline() -> Schedule:
    return Schedule("5s-interval once-a-minute (2 targets in turn, 5s timeout each, 1 failed check)",
                    period=60, window=60, interval=5, fail_duration=10, threshold=1, sleep_after_round=True)


def detection(trials: int) -> None:
    rng = random.Random(6)
    moments = [rng.uniform(0, 3600) for _ in range(trials)]
    results = {}
    for schedule in (ours(), baseline()):
        times = sorted(schedule.detect(moment) for moment in moments)
        results[schedule.name] = times
        print(f"  {schedule.name}\n    mean {statistics.mean(times):5.2f}s  p50 {times[len(times) // 2]:5.2f}s  "
              f"p95 {times[int(len(times) * 0.95)]:5.2f}s  max {times[-1]:5.2f}s")
    mine, theirs = (statistics.mean(times) for times in results.values())
    print(f"  ratio (baseline mean / ours mean): {theirs / mine:.1f}x faster detection")


def loop_check(moments: list[float]) -> None:
    """The real schedule loop (nat_failover._check_loop) on moto with a simulated clock, as a check of the model."""
    from infra.config import NatConfig
    from infra.lambdas.nat.failover import ProbeResult, handle
    from infra.lambdas.nat.health import Policy
    from tests.support.nat_world import SCHEDULE, FakeClock, build, runtime

    nat = NatConfig()
    detected, simulated = [], []
    for moment in moments:
        requests_reset()
        world = build(2)
        clock = FakeClock()
        failed_at = clock.now + moment

        def probe(instance, clock=clock, failed_at=failed_at):
            if instance.az == "eu-west-1a" and clock.now >= failed_at:
                clock.now += nat.probe_timeout_seconds  # the probe waits out its timeout; the other path answers
                return ProbeResult(False, detail="timeout")
            return ProbeResult(True, 10.0)

        rt = runtime(world, probe=probe, clock=clock, window=moment + 8, interval=nat.probe_interval_seconds,
                     policy=Policy(failure_threshold=nat.failure_threshold))
        with contextlib.redirect_stdout(io.StringIO()):
            result = handle(SCHEDULE, rt)
        moves = [move["at"] for move in result["moves"] if move["reason"] == "failover"]
        assert moves, result
        detected.append(min(moves) - failed_at)
        simulated.append(ours().detect(moment))
    print(f"  real handler loop on moto, simulated clock, {len(moments)} failures: mean "
          f"{statistics.mean(detected):.2f}s (model: {statistics.mean(simulated):.2f}s)")


def requests_reset() -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{os.environ['AWS_ENDPOINT_URL']}/moto-api/reset", method="POST"))


def handler_time(runs: int) -> None:
    from infra.lambdas.nat.failover import handle
    from infra.lambdas.nat.health import HEALTH_TAG
    from tests.support.nat_world import build, runtime

    world = build(3)
    a = world.instances["eu-west-1a"]
    rt = runtime(world)
    rt.clock = time.time  # real time: moves are stamped with wall-clock seconds
    last_route, total = [], []
    for run in range(runs + 1):  # run 0 warms the clients' connections, like a warm Lambda
        world.ec2.start_instances(InstanceIds=[a])
        world.ec2.delete_tags(Resources=[a], Tags=[{"Key": HEALTH_TAG}])
        for table in world.tables:
            world.ec2.replace_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", InstanceId=a)
        world.ec2.stop_instances(InstanceIds=[a])
        with contextlib.redirect_stdout(io.StringIO()):
            started = time.time()
            result = handle(world.event("eu-west-1a"), rt)
            finished = time.time()
        assert len(result["moves"]) == 3, result
        if run:
            last_route.append(max(move["at"] for move in result["moves"]) - started)
            total.append(finished - started)
    median = statistics.median(last_route)
    print(f"  event -> all 3 routes replaced: median {median * 1000:.0f} ms, max {max(last_route) * 1000:.0f} ms "
          f"({runs} runs)")
    print(f"  event -> handler returns (SNS + metrics too): median {statistics.median(total) * 1000:.0f} ms")
    print(f"  ratio (handler share of the {BUDGET_SECONDS:g} s failover budget): {median / BUDGET_SECONDS:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="handler runs against moto (default 5)")
    parser.add_argument("--trials", type=int, default=2000, help="simulated silent failures (default 2000)")
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    os.environ.update(MOTO_EC2_LOAD_DEFAULT_AMIS="false", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="eu-west-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    try:
        print("NAT failover handler, moto server on loopback, 3 route tables:")
        handler_time(args.runs)
        print(f"Silent-failure detection, {args.trials} simulated failures at random moments:")
        detection(args.trials)
        loop_check([0.3, 2.7, 5.5, 9.1])
    finally:
        server.stop()


if __name__ == "__main__":
    main()
