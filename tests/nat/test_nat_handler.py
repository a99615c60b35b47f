"""The failover handler against moto in server mode over HTTP, with 2 and 3 AZs."""
from __future__ import annotations

import http.server
import json
import socket
import threading
from pathlib import Path

import pytest

from infra.lambdas.nat import failover as nat_failover
from infra.lambdas.nat import probe as nat_probe
from infra.lambdas.nat.checks import LambdaProbe
from infra.lambdas.nat.contract import HEALTH_TAG
from infra.lambdas.nat.failover import handle
from infra.lambdas.nat.health import Health, NatInstance, Policy
from infra.lambdas.nat.runtime import Settings, SettingsError
from tests.support import nat_world
from tests.support.nat_world import SCHEDULE, FakeClock, ScriptedProbe, build, ec2_error, runtime


@pytest.fixture(autouse=True)
def _lean_moto(monkeypatch):
    """moto's EC2 backend loads thousands of AMIs on first use after each reset (~20 s); the NAT tests need none."""
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def health_of(world, az: str, instance: str | None = None) -> Health:
    instance = instance or world.instances[az]
    found = world.describe(instance)
    record, problem = Health.parse({tag["Key"]: tag["Value"] for tag in found.get("Tags", [])}.get(HEALTH_TAG),
                                   instance, float("inf"))
    assert problem is None, problem
    return record


@pytest.mark.parametrize("az_count", [2, 3])
def test_stopped_instance_moves_every_route_pointing_at_it(aws, az_count):
    world = build(az_count)
    a, b = world.instances.values()
    world.ec2.stop_instances(InstanceIds=[a])
    result = handle(world.event("eu-west-1a"), runtime(world))
    assert result["status"] == "handled"
    assert set(world.targets().values()) == {b}
    moved = sorted(move["table"] for move in result["moves"])
    assert moved == sorted(table for table, az in world.tables.items() if az != "eu-west-1b")
    assert {note["message"]["to"] for note in world.notifications()} == {b}
    assert health_of(world, "eu-west-1a").is_down(Policy(failure_threshold=2))


@pytest.mark.parametrize("az_count", [2, 3])
def test_failback_only_after_hysteresis_one_table_at_a_time(aws, az_count):
    world = build(az_count)
    a, b = world.instances.values()
    clock = FakeClock()
    world.ec2.stop_instances(InstanceIds=[a])
    handle(world.event("eu-west-1a", "stopping"), runtime(world, clock=clock))
    world.ec2.start_instances(InstanceIds=[a])
    homes_of_a = sorted(table for table, az in world.tables.items() if az != "eu-west-1b")
    # 4 passing rounds: streak below failback_checks=5 -> nothing moves back
    first = handle(SCHEDULE, runtime(world, clock=clock, window=4))
    assert first["moves"] == [] and set(world.targets().values()) == {b}
    assert health_of(world, "eu-west-1a").ok == 4  # the streak survives the invocation, in the tag
    second = handle(SCHEDULE, runtime(world, clock=clock, window=20))
    failbacks = [move for move in second["moves"] if move["reason"] == "failback"]
    assert sorted(move["table"] for move in failbacks) == homes_of_a
    assert len({move["at"] for move in failbacks}) == len(failbacks)  # each in its own round
    assert world.targets() == {table: world.instances[az if az != "eu-west-1c" else "eu-west-1a"]
                               for table, az in world.tables.items()}


def test_failback_waits_for_minimum_time_even_with_enough_checks(aws):
    world = build(2)
    a, b = world.instances.values()
    clock = FakeClock()
    policy = Policy(failure_threshold=2, failback_checks=3, failback_min_seconds=15)
    world.ec2.stop_instances(InstanceIds=[a])
    handle(world.event("eu-west-1a"), runtime(world, clock=clock, policy=policy))
    world.ec2.start_instances(InstanceIds=[a])
    result = handle(SCHEDULE, runtime(world, clock=clock, policy=policy, window=30))
    failback = [move for move in result["moves"] if move["reason"] == "failback"]
    assert len(failback) == 1
    started = failback[0]["at"] - clock.now  # negative: seconds before the end of the window
    assert 30 + started >= 15  # not before 15 s of passing checks, although 3 checks passed after 2 s


def test_both_down_leaves_routes_and_alarms_loudly(aws, capsys):
    world = build(3)
    a, b = world.instances.values()
    world.ec2.stop_instances(InstanceIds=[a])
    handle(world.event("eu-west-1a"), runtime(world))
    before = world.targets()
    world.notifications()
    world.ec2.stop_instances(InstanceIds=[b])
    result = handle(world.event("eu-west-1b"), runtime(world))
    assert result["moves"] == [] and world.targets() == before and None not in before.values()
    notes = world.notifications()
    assert len(notes) == 1 and "DOWN" in notes[0]["subject"]
    assert any(line["event"] == "nat_all_down" and line["level"] == "error" for line in log_lines(capsys))
    stats = world_metric(world, "HealthyInstances")
    assert stats and min(point["Minimum"] for point in stats) == 0


def world_metric(world, name: str) -> list[dict]:
    import boto3

    cloudwatch = boto3.client("cloudwatch", region_name=nat_world.REGION)
    now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
    return cloudwatch.get_metric_statistics(
        Namespace="EksPlatform/NAT", MetricName=name, Dimensions=[{"Name": "Stack", "Value": nat_world.STACK}],
        StartTime=now.replace(year=now.year - 1), EndTime=now.replace(year=now.year + 1), Period=60,
        Statistics=["Minimum", "Maximum", "Sum"])["Datapoints"]


@pytest.mark.parametrize("az_count", [2, 3])
def test_concurrent_double_invocation_converges_without_losing_a_route(aws, az_count):
    world = build(az_count)
    a, b = world.instances.values()
    world.ec2.stop_instances(InstanceIds=[a])
    results: list[dict] = []
    gate = threading.Barrier(2)

    def invoke():
        rt = runtime(world, fresh_clients=True)
        gate.wait()
        results.append(handle(world.event("eu-west-1a"), rt))

    threads = [threading.Thread(target=invoke) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [r["status"] for r in results] == ["handled", "handled"]
    assert set(world.targets().values()) == {b}
    moved = [move["table"] for r in results for move in r["moves"]]
    assert set(moved) == {t for t, az in world.tables.items() if az != "eu-west-1b"}


def test_throttled_calls_are_retried_by_botocore(aws, capsys):
    world = build(3)
    a, b = world.instances.values()
    world.ec2.stop_instances(InstanceIds=[a])
    rt = runtime(world, fresh_clients=True)
    throttled = {"left": 2}

    def throttle(request, **_):
        if throttled["left"]:
            throttled["left"] -= 1
            return ec2_error("RequestLimitExceeded")
        return None

    rt.clients.ec2.meta.events.register_first("before-send.ec2.ReplaceRoute", throttle)
    result = handle(world.event("eu-west-1a"), rt)
    assert throttled["left"] == 0 and len(result["moves"]) == 2
    assert set(world.targets().values()) == {b}
    calls = [line for line in log_lines(capsys) if line.get("operation") == "ReplaceRoute"]
    assert calls and max(call["retries"] for call in calls) >= 1


def test_silent_failure_detected_by_probes_then_fails_over(aws):
    world = build(3)
    a, b = world.instances.values()
    probe = ScriptedProbe({"eu-west-1a": [True, False, False]})
    result = handle(SCHEDULE, runtime(world, probe=probe, window=5))
    assert [move["reason"] for move in result["moves"]] == ["failover", "failover"]
    assert result["moves"][0]["at"] == result["moves"][1]["at"]
    assert set(world.targets().values()) == {b}
    assert health_of(world, "eu-west-1a").is_down(Policy(failure_threshold=2))


def test_flapping_instance_does_not_flap_routes(aws):
    world = build(2)
    a, b = world.instances.values()
    flapping = [False, False] + [True, True, True, False] * 6
    result = handle(SCHEDULE, runtime(world, probe=ScriptedProbe({"eu-west-1a": flapping}), window=26))
    assert [move["reason"] for move in result["moves"]] == ["failover"]
    assert set(world.targets().values()) == {b}


def test_single_failed_probes_below_threshold_move_nothing(aws):
    world = build(2)
    before = world.targets()
    result = handle(SCHEDULE, runtime(world, probe=ScriptedProbe({"eu-west-1a": [True, False] * 6}), window=12))
    assert result["moves"] == [] and world.targets() == before


def test_missing_default_route_is_repaired_to_home(aws):
    world = build(3)
    table = list(world.tables)[2]  # the AZ without a NAT instance, served by eu-west-1a
    world.ec2.delete_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0")
    result = handle(SCHEDULE, runtime(world, window=1))
    assert result["moves"] == [{"table": table, "from": "-", "to": world.instances["eu-west-1a"],
                                "reason": "repair", "at": result["moves"][0]["at"]}]
    assert world.targets()[table] == world.instances["eu-west-1a"]


@pytest.mark.parametrize("payload", [
    None, "stop", [], {}, {"source": "aws.ec2"},
    {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": "x"},
    {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
     "detail": {"instance-id": "bogus", "state": "stopped"}},
    {"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
     "detail": {"state": {"value": "ALARM"}, "configuration": {"metrics": []}}},
    {"source": "aws.autoscaling", "detail-type": "EC2 Instance-launch Lifecycle Action",
     "detail": {"EC2InstanceId": "i-0123456789abcdef0"}},
])
def test_bad_payloads_rejected_with_a_log_line(aws, capsys, payload):
    world = build(2)
    before = world.targets()
    result = handle(payload, runtime(world))
    assert result["status"] == "rejected"
    lines = log_lines(capsys)
    assert [line["event"] for line in lines] == ["event_rejected"]
    assert world.targets() == before


def test_event_for_foreign_instance_is_ignored(aws):
    world = build(2)
    event = world.event("eu-west-1a")
    event["detail"]["instance-id"] = "i-0123456789abcdef0"
    assert handle(event, runtime(world))["status"] == "ignored"


def test_every_aws_call_is_logged_as_json(aws, capsys):
    world = build(2)
    world.ec2.stop_instances(InstanceIds=[world.instances["eu-west-1a"]])
    handle(world.event("eu-west-1a"), runtime(world))
    calls = [line for line in log_lines(capsys) if line["event"] == "aws_call"]
    operations = {call["operation"] for call in calls}
    assert {"DescribeInstances", "CreateTags", "DescribeRouteTables", "ReplaceRoute", "Publish",
            "PutMetricData"} <= operations
    replace = next(call for call in calls if call["operation"] == "ReplaceRoute")
    assert replace["status"] == 200 and replace["params"]["RouteTableId"].startswith("rtb-")


def test_settings_from_environment_name_the_bad_variable():
    good = {"NAT_STACK": "s", "NAT_ROUTE_TABLES": '{"rtb-1": "eu-west-1a"}', "NAT_TOPIC_ARN": "arn:t",
            "NAT_FAILBACK_CHECKS": "7"}
    assert Settings.from_environment(good).policy.failback_checks == 7
    with pytest.raises(SettingsError, match="NAT_ROUTE_TABLES"):
        Settings.from_environment({**good, "NAT_ROUTE_TABLES": "not json"})
    with pytest.raises(SettingsError, match="NAT_TOPIC_ARN is not set"):
        Settings.from_environment({k: v for k, v in good.items() if k != "NAT_TOPIC_ARN"})
    with pytest.raises(SettingsError, match="NAT_PROBE_MODE='icmp' is invalid"):
        Settings.from_environment({**good, "NAT_PROBE_MODE": "icmp"})
    assert Settings.from_environment({**good, "NAT_PROBE_MODE": "tcp"}).prove_path is False


class _FailingLambda:
    def invoke(self, **_):
        raise RuntimeError("TooManyRequestsException")


def test_lambda_probe_failure_is_unknown_not_down():
    instance = NatInstance("i-1", "eu-west-1a", "running", (), Health("i-1"))
    assert LambdaProbe(_FailingLambda(), {"eu-west-1a": "probe-a"})(instance).reached is None
    assert LambdaProbe(_FailingLambda(), {})(instance).reached is None


def test_probe_function_reaches_tcp_targets():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: refuses connections, and no one else can take the port
    dead = closed.getsockname()[1]
    try:
        assert nat_probe.probe([f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{dead}"], 10)["reached"] is True
        result = nat_probe.probe([f"tcp://127.0.0.1:{dead}"], 10)  # both answer at once
        assert result["reached"] is False and "ConnectionRefused" in result["detail"]
        assert result["source_ip"] is None  # TCP-only: nothing proves the path
    finally:
        server.close()
        closed.close()


class _Context:
    def get_remaining_time_in_millis(self) -> int:
        return 63_000


def test_lambda_entry_point_reads_its_configuration_from_the_environment(aws, monkeypatch):
    world = build(2)
    a, b = world.instances.values()
    monkeypatch.setenv("NAT_STACK", nat_world.STACK)
    monkeypatch.setenv("NAT_ROUTE_TABLES", json.dumps(world.tables))
    monkeypatch.setenv("NAT_TOPIC_ARN", world.topic_arn)
    monkeypatch.setattr(nat_failover, "_RUNTIME", None)
    world.ec2.terminate_instances(InstanceIds=[a])
    result = nat_failover.handler(world.event("eu-west-1a", "shutting-down"), _Context())
    assert result["status"] == "handled" and set(world.targets().values()) == {b}


def test_packaged_lambda_code_imports_on_its_own(tmp_path):
    """The archive Pulumi uploads (infra/lambdas as package infra.lambdas) needs nothing else of the project."""
    import subprocess
    import sys

    from infra.components.nat import lambda_code

    for name, asset in lambda_code().assets.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(asset.text if getattr(asset, "text", None) is not None else Path(asset.path).read_text())
    check = ("import importlib; "
             "[importlib.import_module(h.rsplit('.', 1)[0].replace('/', '.')) for h in "
             "('infra/lambdas/nat/failover.handler', 'infra/lambdas/nat/probe.handler')]; "
             f"import infra.lambdas.nat.failover as f; assert f.__file__.startswith({str(tmp_path)!r}); print('ok')")
    result = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


class _Echo(http.server.BaseHTTPRequestHandler):
    answer = b"203.0.113.7\n"

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *_):
        pass


@pytest.mark.parametrize(("answer", "source"), [(b"203.0.113.7\n", "203.0.113.7"), (b"<html>hi</html>", None)])
def test_probe_function_reports_the_source_address_an_echo_target_saw(answer, source):
    handler = type("Echo", (_Echo,), {"answer": answer})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = nat_probe.probe([], 10, f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
    assert result["source_ip"] == source and result["reached"] is (source is not None)


def test_a_target_that_does_not_speak_http_is_reported_not_raised():
    """An http(s) target or echo answered by something else (an SSH banner): http.client's BadStatusLine is no
    OSError, and must not end the probe."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        def banner():
            for _ in range(2):  # the target and the echo
                conn, _ = server.accept()
                with conn:
                    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        thread = threading.Thread(target=banner, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/"
        result = nat_probe.probe([url], 10, url)
        thread.join(timeout=10)
    assert result["reached"] is False and result["source_ip"] is None
    assert result["detail"].count("BadStatusLine") == 2, result["detail"]


def test_health_records_round_trip_and_name_their_instance():
    record = Health("i-1", ok=3, since=1_700_000_000.0).passed(1_700_000_001.0)
    assert Health.parse(record.render(), "i-1", 1_700_000_002.0) == (record, None)
    failed = Health("i-1").failed("a; b=c")  # probe details carry separators: they must not corrupt the tag
    assert Health.parse(failed.render(), "i-1", 0.0)[1] is None
    assert Health.parse(record.render(), "i-2", 1_700_000_002.0)[1] == "record belongs to i-1"
    assert Health.parse(None, "i-1", 0.0) == (Health("i-1"), None)


@pytest.mark.parametrize(("value", "until"), [
    ("rotate;until=1700000000", 1_700_000_000.0), ("rotate", None), ("rotate;until=soon", None), (None, None),
    ("rotate;until=inf", None)])
def test_drain_marks_carry_their_expiry(value, until):
    from infra.lambdas.nat.contract import drain_mark, drain_until

    assert drain_until(value) == until
    assert drain_until(drain_mark(1_700_000_000.4)) == 1_700_000_000.0
