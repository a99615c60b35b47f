"""The effect of one message, idempotent by message ID: the entry and its processed mark commit together.

Either both are in the database or neither is, so a message redelivered after a crash (committed, not yet
acked) finds its mark and changes nothing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg
from service_kit import db

from . import SERVICE

SCHEMA = db.ACCOUNTS + """
CREATE TABLE IF NOT EXISTS processed_messages (
    id text PRIMARY KEY,
    account text NOT NULL,
    amount bigint NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
"""
UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError)


class Poison(ValueError):
    """A message no retry can fix (not JSON, no ID, wrong fields): dead-lettered at once."""


@dataclass(frozen=True)
class Entry:
    message_id: str
    account: str
    amount: int

    @classmethod
    def parse(cls, message_id: str | None, body: bytes) -> Entry:
        if not message_id:
            raise Poison("no message_id property: the effect could not be made idempotent")
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise Poison(f"body is not JSON: {error}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("account"), str) or not doc["account"] \
                or type(doc.get("amount")) is not int:
            raise Poison('body must be {"account": "<id>", "amount": <integer>}')
        return cls(message_id, doc["account"], doc["amount"])


def connect(url: str) -> psycopg.Connection:
    return db.connect(url, SERVICE, SCHEMA)


def apply(conn: psycopg.Connection, entry: Entry) -> bool:
    """Apply the entry once; False when its ID was processed before (a duplicate or a redelivery)."""
    with conn.transaction():
        marked = conn.execute("INSERT INTO processed_messages (id, account, amount) VALUES (%s, %s, %s) "
                              "ON CONFLICT (id) DO NOTHING", (entry.message_id, entry.account, entry.amount))
        if marked.rowcount == 0:
            return False
        conn.execute("INSERT INTO accounts (id, balance) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE "
                      "SET balance = accounts.balance + EXCLUDED.balance, updated_at = now()",
                      (entry.account, entry.amount))
    return True
