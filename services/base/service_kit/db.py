"""A PostgreSQL connection with the service's schema in place: what a worker or a job connects with."""
from __future__ import annotations

import psycopg

# The accounts every reference service reads or writes, in one place (each service adds the tables only it uses;
# migrations are out of scope for the reference services).
ACCOUNTS = """
CREATE TABLE IF NOT EXISTS accounts (
    id text PRIMARY KEY,
    balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""


def connect(url: str, application_name: str, schema: str) -> psycopg.Connection:
    """Connect (bounded by connect_timeout: the caller retries with backoff) and create the schema if missing."""
    conn = psycopg.connect(url, connect_timeout=3, application_name=application_name)
    try:
        with conn.transaction():
            conn.execute(schema)
    except BaseException:
        conn.close()
        raise
    return conn
