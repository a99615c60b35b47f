"""The api against a real PostgreSQL: it starts and serves /healthz while the database is down, turns ready when it
comes up (no restart), drains on SIGTERM, and its metrics count requests per route."""
from __future__ import annotations

import json
import threading

import pytest

from infra.ops.service.check import http
from infra.ops.service.local import LocalPostgres, free_port
from infra.ops.service.relay import Relay
from tests.support.services import ready, wait_for

pytestmark = pytest.mark.timeout(300)


def test_starts_with_postgres_down_and_turns_ready_when_it_comes_up_without_restart(services):
    port = free_port()
    run, base = services.start("api", DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/postgres")
    assert http(base + "/healthz")[0] == 200  # answered while PostgreSQL is not even installed on that port
    status, body = http(base + "/readyz")
    assert status == 503 and "database down" in body
    health = json.loads(http(base + "/health")[1])
    assert health["status"] == "degraded" and health["dependencies"]["postgres"]["up"] is False
    assert http(base + "/accounts/a1")[0] == 503
    with LocalPostgres(port=port):
        assert ready(base, run)  # the background connect found it; same process throughout
        assert run.exited is None and json.loads(http(base + "/health")[1])["status"] == "ok"
        assert http(base + "/accounts/a1", method="PUT")[0] == 201
        assert http(base + "/accounts/a1", method="PUT")[0] == 200  # idempotent
        status, body = http(base + "/accounts/a1")
        assert status == 200 and json.loads(body)["balance"] == 0
        assert http(base + "/accounts/bad%20id!")[0] == 400
        metrics = http(base + "/metrics")[1]
        assert 'http_requests_total{code="201",method="PUT",route="/accounts/{account_id}"} 1.0' in metrics
        assert 'http_request_duration_seconds_count{method="GET",route="/accounts/{account_id}"}' in metrics
        assert 'http_request_errors_total{method="GET",route="/accounts/{account_id}"} 1.0' in metrics  # the 503
        run.signal()
        assert run.wait(30) == 0
    lines = [json.loads(line) for line in run.output()]
    assert all(entry["service"] == "api" and entry["level"] and "message" in entry for entry in lines)
    assert any("postgres connected" in entry["message"] for entry in lines)


def test_sigterm_drains_in_flight_requests_and_is_not_ready_meanwhile(services, postgres, database):
    stalled = Relay(postgres.port).up()
    url = database.replace(f":{postgres.port}/", f":{stalled.port}/")
    try:
        run, base = services.start("api", DATABASE_URL=url)
        assert ready(base, run)
        stalled.hold()
        answer = {}
        request = threading.Thread(target=lambda: answer.update(result=http(base + "/accounts/x", 60)))
        request.start()
        assert stalled.wait_held(30)
        run.signal()
        assert wait_for(lambda: http(base + "/readyz")[0] == 503, 10)  # still listening, not ready
        assert http(base + "/healthz")[0] == 200
        stalled.release()
        request.join(30)
        assert answer["result"][0] == 404  # the in-flight request got its real answer
        assert run.wait(30) == 0
    finally:
        stalled.close()
