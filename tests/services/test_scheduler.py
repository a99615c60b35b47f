"""The scheduler as a CronJob runs it: one run per process, exit 0 only when done, idempotent when run twice."""
from __future__ import annotations

import json

import psycopg
import pytest

from infra.ops.service.local import free_port

pytestmark = pytest.mark.timeout(300)


def test_two_runs_of_a_window_snapshot_once_and_both_exit_0(services, database):
    with psycopg.connect(database) as conn:
        conn.execute("CREATE TABLE accounts (id text PRIMARY KEY, balance bigint NOT NULL DEFAULT 0 "
                     "CHECK (balance >= 0), updated_at timestamptz NOT NULL DEFAULT now())")
        conn.execute("INSERT INTO accounts (id, balance) VALUES ('a', 5), ('b', 7)")
    outcomes = []
    for _ in range(2):
        run, _ = services.start("scheduler", DATABASE_URL=database, PERIOD_MINUTES="1440")
        assert run.wait(60) == 0, run.output()[-3:]
        outcomes.append(json.loads(run.output()[-1]).get("outcome"))
    assert outcomes == ["done", "already_done"]
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*), max(accounts) FROM snapshot_runs").fetchone() == (1, 2)
        assert sorted(conn.execute("SELECT account, balance FROM balance_snapshots").fetchall()) == [("a", 5),
                                                                                                    ("b", 7)]


def test_unreachable_database_exits_non_zero_with_the_reason(services):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    run, _ = services.start("scheduler", DATABASE_URL=url, CONNECT_TIMEOUT_SECONDS="2")
    assert run.wait(60) == 1
    last = json.loads(run.output()[-1])
    assert last["level"] == "ERROR" and "database unreachable for 2 s" in last["message"]


def test_bad_configuration_exits_2(services):
    run, _ = services.start("scheduler", DATABASE_URL="postgresql://x/y", PERIOD_MINUTES="soon")
    assert run.wait(60) == 2
    assert "PERIOD_MINUTES='soon' is not a number" in json.loads(run.output()[-1])["message"]
