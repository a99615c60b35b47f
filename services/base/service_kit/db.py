"""A PostgreSQL connection with the service's schema in place: what a worker or a job connects with."""
from __future__ import annotations

import psycopg


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
