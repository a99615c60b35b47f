"""The api's database: a psycopg pool opened in the background, and the queries the routes run."""
from __future__ import annotations

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from service_kit import db

from . import SERVICE

SCHEMA = db.ACCOUNTS
# Transient failures: the connection or the server went away. Anything else is a bug or bad input.
UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError)


def connect(url: str, size: int) -> ConnectionPool:
    """A pool whose first connection is made now (the caller retries this with backoff) and the schema in place."""
    pool = ConnectionPool(url, min_size=1, max_size=size, open=False, timeout=5,
                          kwargs={"connect_timeout": 3, "application_name": SERVICE})
    try:
        pool.open(wait=True, timeout=5)
        with pool.connection() as conn:
            conn.execute(SCHEMA)
    except BaseException:
        pool.close()
        raise
    return pool


def ping(pool: ConnectionPool, timeout_s: float) -> None:
    with pool.connection(timeout=timeout_s) as conn:
        conn.execute("SELECT 1")


def account(pool: ConnectionPool, account_id: str) -> dict | None:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT id, balance, updated_at FROM accounts WHERE id = %s", (account_id,))
        return cur.fetchone()


def open_account(pool: ConnectionPool, account_id: str) -> bool:
    """Create the account if it does not exist; True when created (idempotent: a retry changes nothing)."""
    with pool.connection() as conn:
        done = conn.execute("INSERT INTO accounts (id) VALUES (%s) ON CONFLICT (id) DO NOTHING", (account_id,))
        return done.rowcount == 1
