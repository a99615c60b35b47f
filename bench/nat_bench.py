"""NAT failover benchmark: what each stage of a failover costs, measured where it can be, modelled where it cannot.

1. Handler on moto server (loopback), 3 route tables behind the instance that stops: event -> all routes
   replaced, warm, then with one throttled ReplaceRoute (botocore's retry, real backoff).
2. Cold start: importing the failover package and building its clients, in a fresh interpreter (measured
   here), and the bound if that ran at a 128 MB Lambda's CPU share (1,769 MB = one vCPU: AWS Lambda docs,
   checked 2026-12-05).
3. One probe round's AWS calls (DescribeInstances + DescribeRouteTables) on moto, measured.
4. Silent-failure detection (instance up, egress dead) at random moments, side by side:
   - this project's real probe loop (infra.lambdas.nat.checks) on moto with a simulated clock, then the same
     loop with ONE THROTTLED CALL PER ROUND (each round's DescribeInstances fails once, botocore retries);
   - its timing model (NatConfig defaults + the measured round API time; then + the measured cold start at
     the top of every invocation, the worst case: a warm container is reused from minute to minute);
   - the baseline, alterNAT's connectivity loop as its code runs it (chime/terraform-aws-alternat
     functions/replace-route/app.py @00b6031: every minute, 12 checks 5 s apart, two URLs in turn with a 5 s
     timeout each, one failed check acts), simulated over the same failure moments in the same run.

Run: python bench/nat_bench.py [--runs 5] [--trials 2000] [--loops 12]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUDGET_SECONDS = 5.0
LAMBDA_MB, ONE_VCPU_MB = 128, 1769


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
    api_time: float = 0.0  # AWS calls a round makes after its probes (the route-table read)
    start_delay: float = 0.0  # cold start at the top of each invocation

    def detect(self, failed_at: float) -> float:
        """Seconds from the silent failure to the moment the checker declares the instance down."""
        start = (failed_at // self.period) * self.period
        while True:
            streak, now = 0, start + self.start_delay
            while now < start + self.window:
                failing = now >= failed_at
                end = now + (self.fail_duration if failing else self.ok_duration) + self.api_time
                streak = streak + 1 if failing else 0
                if streak >= self.threshold:
                    return end - failed_at
                now = end + self.interval if self.sleep_after_round else max(now + self.interval, end)
            start += self.period


def ours(api_time: float = 0.0, start_delay: float = 0.0) -> Schedule:
    from infra.config import NatConfig

    nat = NatConfig()
    return Schedule(f"eks-platform model ({nat.probe_interval_seconds:g}s cadence, {nat.probe_timeout_seconds:g}s "
                    f"timeout, {nat.failure_threshold} failed rounds, {nat.probe_window_seconds}s/min)",
                    period=60, window=nat.probe_window_seconds, interval=nat.probe_interval_seconds,
                    fail_duration=nat.probe_timeout_seconds, threshold=nat.failure_threshold, sleep_after_round=False,
                    api_time=api_time, start_delay=start_delay)


def alternat_detect(failed_at: float, timeout: float = 5.0, interval: float = 5.0, urls: int = 2,
                    ok_duration: float = 0.05) -> float:
    """alterNAT's connectivity_test_handler as written: each minute an invocation runs `60 / interval` checks;
    a check tries the URLs in turn (each failing one waits out its timeout); a passing check sleeps `interval`;
    the first failing check acts. Invocations overlap (12 checks take > 60 s); the earliest to notice wins."""
    first = int(failed_at // 60) - 2
    found = []
    for invocation in range(max(first, 0), first + 4):
        now = invocation * 60.0
        for _ in range(int(60 / interval)):
            if now >= failed_at:
                found.append(now + urls * timeout - failed_at)
                break
            now += ok_duration + interval
    return min(found)


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    return (f"mean {statistics.mean(ordered):5.2f}s  p50 {ordered[len(ordered) // 2]:5.2f}s  "
            f"p95 {ordered[int(len(ordered) * 0.95)]:5.2f}s  max {ordered[-1]:5.2f}s")


def requests_reset() -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{os.environ['AWS_ENDPOINT_URL']}/moto-api/reset", method="POST"))


def handler_time(runs: int) -> float:
    """Median seconds from the state-change event to the last ReplaceRoute, warm."""
    from infra.lambdas.nat.contract import HEALTH_TAG
    from infra.lambdas.nat.failover import handle
    from tests.support.nat_world import build, ec2_error, runtime

    requests_reset()
    world = build(3)
    a = world.instances["eu-west-1a"]
    rt = runtime(world)
    rt.clock, rt.sleep = time.time, time.sleep  # real time: moves are stamped with wall-clock seconds
    rt.clients.budget.clock, rt.clients.budget.sleep = time.time, time.sleep
    throttle = {"armed": False}

    def throttled(request, **_):
        if throttle["armed"]:
            throttle["armed"] = False
            return ec2_error("RequestLimitExceeded")
        return None

    rt.clients.ec2.meta.events.register_first("before-send.ec2.ReplaceRoute", throttled, unique_id="bench-throttle")
    results: dict[bool, tuple[list[float], list[float]]] = {False: ([], []), True: ([], [])}
    try:
        for run in range(2 * runs + 1):  # run 0 warms the clients' connections, like a warm Lambda
            throttled_run = run > runs
            world.ec2.start_instances(InstanceIds=[a])
            world.ec2.delete_tags(Resources=[a], Tags=[{"Key": HEALTH_TAG}])
            for table in world.tables:
                world.ec2.replace_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", InstanceId=a)
            world.ec2.stop_instances(InstanceIds=[a])
            throttle["armed"] = throttled_run
            with contextlib.redirect_stdout(io.StringIO()):
                started = time.time()
                result = handle(world.event("eu-west-1a"), rt)
                finished = time.time()
            assert len(result["moves"]) == 3, result
            if run:
                results[throttled_run][0].append(max(move["at"] for move in result["moves"]) - started)
                results[throttled_run][1].append(finished - started)
    finally:
        rt.clients.ec2.meta.events.unregister("before-send.ec2.ReplaceRoute", unique_id="bench-throttle")
    median = statistics.median(results[False][0])
    print(f"  event -> all 3 routes replaced, warm: median {median * 1000:.0f} ms, max "
          f"{max(results[False][0]) * 1000:.0f} ms ({runs} runs); handler returns (SNS + metrics too): median "
          f"{statistics.median(results[False][1]) * 1000:.0f} ms")
    print(f"  same with one ReplaceRoute throttled (botocore backoff, real sleep): median "
          f"{statistics.median(results[True][0]) * 1000:.0f} ms, max {max(results[True][0]) * 1000:.0f} ms")
    return median


def cold_start(samples: int = 5) -> float:
    """Seconds to import the failover package and build its clients in a fresh interpreter (the fastest of
    `samples`: on a shared machine the others measure the neighbours' load)."""
    code = ("import time; t = time.perf_counter(); from infra.lambdas.nat import failover; failover.build_runtime(); "
            "print(time.perf_counter() - t)")
    env = {**os.environ, "NAT_STACK": "bench", "NAT_ROUTE_TABLES": '{"rtb-1": "eu-west-1a"}', "NAT_TOPIC_ARN": "arn:x"}
    root = Path(__file__).resolve().parent.parent
    found = [float(subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                                  check=True, timeout=120).stdout) for _ in range(samples)]
    return min(found)


def round_api_time(samples: int = 30) -> float:
    """Median seconds for one round's reads (DescribeInstances + DescribeRouteTables) on moto, warm clients."""
    from infra.lambdas.nat import routes as nat_routes
    from tests.support.nat_world import STACK, build, clients

    requests_reset()
    world = build(3)
    ec2 = clients().ec2
    ids = [*world.tables, *world.probe_tables.values()]
    found = []
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(samples + 1):
            started = time.perf_counter()
            instances = nat_routes.read_instances(ec2, STACK)
            nat_routes.find_tables(ec2, ids, instances)
            found.append(time.perf_counter() - started)
    return statistics.median(found[1:])


@dataclass
class ParallelClock:
    """Simulated time where a probe's timeout runs concurrently with the round's AWS calls (as the threads do):
    a probe registers when it would answer, and the round's wait advances the clock to the latest of those."""

    now: float = 1_700_000_000.0
    dues: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def wait(self, pending, timeout: float):
        from concurrent.futures import wait

        done = wait(list(pending), timeout=60).done
        if self.dues:
            self.now = max(self.now, min(max(self.dues), self.now + max(0.0, timeout)))
            self.dues.clear()
        return done


def loop_detection(moments: list[float], throttled: bool) -> list[float]:
    """The real probe loop on moto, a silent failure of eu-west-1a at each moment; seconds to the failover."""
    from infra.config import NatConfig
    from infra.lambdas.nat.checks import Observation
    from infra.lambdas.nat.failover import handle
    from infra.lambdas.nat.health import Policy
    from tests.support.nat_world import SCHEDULE, build, ec2_error, runtime

    nat = NatConfig()
    detected = []
    for moment in moments:
        requests_reset()
        world = build(2)
        clock = ParallelClock()
        failed_at = clock.now + moment

        def probe(instance, clock=clock, failed_at=failed_at):
            if instance.az == "eu-west-1a" and clock.now >= failed_at:
                clock.dues.append(clock.now + nat.probe_timeout_seconds)  # waits out its timeout
                return Observation(False, detail="timeout")
            clock.dues.append(clock.now + 0.05)
            return Observation(True, 10.0, "ok", source_ip=instance.public_ip)

        rt = runtime(world, probe=probe, window=moment + 10, interval=nat.probe_interval_seconds,
                     policy=Policy(failure_threshold=nat.failure_threshold))
        rt.clock, rt.sleep, rt.wait = clock, clock.sleep, clock.wait
        rt.clients.budget.clock, rt.clients.budget.sleep = clock, clock.sleep
        attempts = {"n": 0}

        def once_per_call(request, attempts=attempts, **_):
            attempts["n"] += 1
            return ec2_error("RequestLimitExceeded") if attempts["n"] % 2 == 1 else None  # each call's 1st attempt

        if throttled:
            rt.clients.ec2.meta.events.register_first("before-send.ec2.DescribeInstances", once_per_call,
                                                      unique_id="bench-round-throttle")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                result = handle(SCHEDULE, rt, remaining_seconds=moment + 20)
        finally:
            rt.clients.ec2.meta.events.unregister("before-send.ec2.DescribeInstances", unique_id="bench-round-throttle")
        moves = [move["at"] for move in result["moves"] if move["reason"] == "failover"]
        assert moves, result
        assert not throttled or attempts["n"] >= 2 * result["rounds"] - 2, attempts
        detected.append(min(moves) - failed_at)
    return detected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="handler runs against moto (default 5)")
    parser.add_argument("--trials", type=int, default=2000, help="simulated silent failures for the models")
    parser.add_argument("--loops", type=int, default=12, help="failure moments run through the real loop on moto")
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    os.environ.update(MOTO_EC2_LOAD_DEFAULT_AMIS="false", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="eu-west-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    try:
        print("1. Failover handler, moto server on loopback, 3 route tables:")
        median = handler_time(args.runs)
        print(f"  ratio (handler share of the {BUDGET_SECONDS:g} s failover budget): {median / BUDGET_SECONDS:.1%}")
        cold = cold_start()
        scaled = cold * ONE_VCPU_MB / LAMBDA_MB
        print(f"2. Cold start (import + clients): {cold * 1000:.0f} ms here (fastest of 5); at most ~{scaled:.1f} s if "
              f"it ran on a {LAMBDA_MB} MB Lambda's CPU share ({ONE_VCPU_MB} MB = 1 vCPU)")
        api = round_api_time()
        print(f"3. One round's AWS reads on moto: {api * 1000:.1f} ms median")
        rng = random.Random(6)
        moments = [rng.uniform(0, 3600) for _ in range(args.trials)]
        print(f"4. Silent-failure detection, {args.trials} random failure moments (models), {args.loops} through the "
              f"real loop:")
        rows = [(ours(api).name + " + round API time", [ours(api).detect(m) for m in moments]),
                ("same, every invocation starting cold (cold start measured here)",
                 [ours(api, cold).detect(m) for m in moments]),
                ("baseline: alterNAT loop (5 s interval, 2 URLs x 5 s timeout, 1 failed check)",
                 [alternat_detect(m) for m in moments])]
        loop_moments = [rng.uniform(0, 30) for _ in range(args.loops)]
        plain, throttled = loop_detection(loop_moments, False), loop_detection(loop_moments, True)
        rows.insert(0, ("eks-platform real loop on moto, simulated clock", plain))
        rows.insert(1, ("same loop, one throttled call per round (DescribeInstances, 1st attempt)", throttled))
        for name, times in rows:
            print(f"  {name}\n    {summary(times)}")
        delta = statistics.mean(throttled) - statistics.mean(plain)
        print(f"  throttled vs unthrottled loop: {delta:+.2f} s mean ({'within' if abs(delta) <= 1 else 'OVER'} 1 s)")
        model, baseline = statistics.mean(rows[2][1]), statistics.mean(rows[4][1])
        print(f"  ratio (baseline mean / ours mean, model): {baseline / model:.1f}x faster detection; real loop mean "
              f"{statistics.mean(plain):.2f}s vs model {statistics.mean([ours().detect(m) for m in loop_moments]):.2f}s "
              f"on the same moments")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
