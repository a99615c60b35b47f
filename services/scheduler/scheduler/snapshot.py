"""One snapshot run, idempotent by its window: the run's row and its snapshot commit in one transaction.

A second run of the same window (a retry, a manual `kubectl create job --from`) finds the row and changes
nothing; two at once serialize on the row's primary key, and the second then finds it done.
"""
from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from service_kit import db

from . import SERVICE

SCHEMA = db.ACCOUNTS + """
CREATE TABLE IF NOT EXISTS snapshot_runs (
    period timestamptz PRIMARY KEY,
    accounts integer,
    finished_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS balance_snapshots (
    period timestamptz NOT NULL REFERENCES snapshot_runs (period),
    account text NOT NULL,
    balance bigint NOT NULL,
    PRIMARY KEY (period, account)
);
"""


def window(now: datetime, minutes: int) -> datetime:
    """The start of the schedule window `now` falls in (a late start still snapshots its own window)."""
    seconds = int(now.timestamp())
    return datetime.fromtimestamp(seconds - seconds % (minutes * 60), UTC)


def connect(url: str) -> psycopg.Connection:
    return db.connect(url, SERVICE, SCHEMA)


def run(conn: psycopg.Connection, period: datetime) -> tuple[bool, int]:
    """(created, accounts): created is False when this window was snapshotted before."""
    with conn.transaction():
        claimed = conn.execute("INSERT INTO snapshot_runs (period) VALUES (%s) ON CONFLICT (period) DO NOTHING",
                               (period,))
        if claimed.rowcount == 0:
            row = conn.execute("SELECT accounts FROM snapshot_runs WHERE period = %s", (period,)).fetchone()
            return False, int(row[0] or 0) if row else 0
        copied = conn.execute("INSERT INTO balance_snapshots (period, account, balance) "
                              "SELECT %s, id, balance FROM accounts", (period,))
        conn.execute("UPDATE snapshot_runs SET accounts = %s, finished_at = now() WHERE period = %s",
                     (copied.rowcount, period))
    return True, copied.rowcount
