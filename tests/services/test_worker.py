"""The worker against a real RabbitMQ and PostgreSQL: SIGTERM storms lose nothing and do nothing twice, work that
cannot finish inside the grace period goes back to the broker, priorities, retries and the dead-letter queue."""
from __future__ import annotations

import json
import uuid

import pika
import psycopg
import pytest

from infra.ops.service.check import http
from infra.ops.service.relay import Relay
from tests.support.services import ready, wait_for

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def queue(rabbitmq):
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    yield name
    with broker(rabbitmq) as channel:
        channel.queue_delete(name)
        channel.queue_delete(f"{name}.dead")


class broker:  # noqa: N801 - used as a context manager: `with broker(mq) as channel`
    def __init__(self, server):
        self.connection = pika.BlockingConnection(pika.URLParameters(server.url))

    def __enter__(self):
        return self.connection.channel()

    def __exit__(self, *_):
        self.connection.close()


def publish(server, queue: str, message_id: str, account: str, amount: int, priority: int = 0) -> None:
    with broker(server) as channel:
        channel.basic_publish("", queue, json.dumps({"account": account, "amount": amount}).encode(),
                              pika.BasicProperties(message_id=message_id, delivery_mode=2, priority=priority))


def declare(server, queue: str) -> None:
    """The queue as the worker declares it, so messages can be published before any worker runs."""
    with broker(server) as channel:
        channel.queue_declare(f"{queue}.dead", durable=True)
        channel.queue_declare(queue, durable=True, arguments={"x-max-priority": 10, "x-dead-letter-exchange": "",
                                                              "x-dead-letter-routing-key": f"{queue}.dead"})


def depth(server, queue: str) -> int:
    with broker(server) as channel:
        return channel.queue_declare(queue, passive=True).method.message_count


def rows(database: str, sql: str) -> list[tuple]:
    with psycopg.connect(database) as conn:
        return conn.execute(sql).fetchall()


def processed(database: str) -> int:
    try:
        return rows(database, "SELECT count(*) FROM processed_messages")[0][0]
    except psycopg.errors.UndefinedTable:
        return 0


def test_sigterm_storm_processes_every_message_exactly_once(services, rabbitmq, postgres, database, queue):
    """50 messages and 5 duplicate IDs, a SIGTERM every few messages while the database answers slowly (so the
    signal often lands mid-message): every restart exits 0, every ID's effect is recorded once, none is lost."""
    declare(rabbitmq, queue)
    ids = [f"m{i:02d}" for i in range(50)]
    for index, message_id in enumerate(ids):
        publish(rabbitmq, queue, message_id, f"acct-{index}", index + 1)
    for index in (3, 10, 20, 30, 40):  # the same IDs again: a producer's retry
        publish(rabbitmq, queue, ids[index], f"acct-{index}", index + 1)
    slow = Relay(postgres.port, delay_s=0.02).up()  # every round trip to the database takes longer
    url = database.replace(f":{postgres.port}/", f":{slow.port}/")
    restarts = 0
    try:
        while processed(database) < len(ids) or depth(rabbitmq, queue):
            run, base = services.start("worker", AMQP_URL=rabbitmq.url, DATABASE_URL=url, QUEUE=queue)
            target = min(processed(database) + 4, len(ids))

            def progressed(run=run, target=target) -> bool:
                return run.exited is not None or processed(database) >= target and \
                    (target < len(ids) or depth(rabbitmq, queue) == 0)

            wait_for(progressed)
            run.signal()
            assert run.wait(30) == 0, run.output()[-5:]
            restarts += 1
            assert restarts < 40, "no progress"
    finally:
        slow.close()
    assert restarts >= 5
    assert sorted(r[0] for r in rows(database, "SELECT id FROM processed_messages")) == ids
    balances = dict(rows(database, "SELECT id, balance FROM accounts"))
    assert balances == {f"acct-{index}": index + 1 for index in range(len(ids))}  # each effect exactly once
    assert depth(rabbitmq, queue) == 0 and depth(rabbitmq, f"{queue}.dead") == 0


def test_message_that_cannot_finish_in_the_grace_period_is_redelivered_and_done_once(services, rabbitmq, postgres,
                                                                                      database, queue):
    stalled = Relay(postgres.port).up()
    url = database.replace(f":{postgres.port}/", f":{stalled.port}/")
    try:
        run, base = services.start("worker", AMQP_URL=rabbitmq.url, DATABASE_URL=url, QUEUE=queue, GRACE_SECONDS="2")
        assert ready(base, run)
        stalled.hold()  # the database stops answering mid-transaction
        publish(rabbitmq, queue, "slow-1", "acct-slow", 7)
        assert stalled.wait_held(30)
        run.signal()
        assert run.wait(15) == 3  # EXIT_ABANDONED: the deadline passed with the message in hand
        assert any("giving it back" in line for line in run.output())
        assert wait_for(lambda: depth(rabbitmq, queue) == 1, 15)  # unacked, so the broker has it again
        stalled.release()
        again, base = services.start("worker", AMQP_URL=rabbitmq.url, DATABASE_URL=url, QUEUE=queue)
        assert wait_for(lambda: processed(database) == 1 and depth(rabbitmq, queue) == 0)
        again.signal()
        assert again.wait(30) == 0
    finally:
        stalled.close()
    assert rows(database, "SELECT id FROM processed_messages") == [("slow-1",)]
    assert rows(database, "SELECT id, balance FROM accounts") == [("acct-slow", 7)]


def test_message_in_flight_at_sigterm_finishes_inside_the_grace_period(services, rabbitmq, postgres, database, queue):
    stalled = Relay(postgres.port).up()
    url = database.replace(f":{postgres.port}/", f":{stalled.port}/")
    try:
        run, base = services.start("worker", AMQP_URL=rabbitmq.url, DATABASE_URL=url, QUEUE=queue)
        assert ready(base, run)
        stalled.hold()
        publish(rabbitmq, queue, "inflight-1", "acct-in", 3)
        assert stalled.wait_held(30)
        run.signal()
        assert wait_for(lambda: http(base + "/readyz")[0] != 200, 10)  # not ready from SIGTERM on
        stalled.release()
        assert run.wait(30) == 0
    finally:
        stalled.close()
    assert rows(database, "SELECT id, balance FROM accounts") == [("acct-in", 3)]
    assert depth(rabbitmq, queue) == 0


def test_priorities_retries_dead_letters_and_metrics(services, rabbitmq, database, queue):
    declare(rabbitmq, queue)
    publish(rabbitmq, queue, "low", "acct-order", 1, priority=0)
    publish(rabbitmq, queue, "high", "acct-order", 2, priority=9)
    publish(rabbitmq, queue, "overdraw", "acct-empty", -5)  # violates balance >= 0 every time
    with broker(rabbitmq) as channel:
        channel.basic_publish("", queue, b"not json", pika.BasicProperties(message_id="junk", delivery_mode=2))
    run, base = services.start("worker", AMQP_URL=rabbitmq.url, DATABASE_URL=database, QUEUE=queue, MAX_ATTEMPTS="3")
    assert wait_for(lambda: depth(rabbitmq, f"{queue}.dead") == 2 and processed(database) == 2)
    order = [r[0] for r in rows(database, "SELECT id FROM processed_messages ORDER BY processed_at")]
    assert order == ["high", "low"]
    with broker(rabbitmq) as channel:
        dead = {}
        for _ in range(2):
            method, properties, body = channel.basic_get(f"{queue}.dead", auto_ack=True)
            dead[properties.message_id] = properties.headers or {}
    assert dead["overdraw"]["x-attempts"] == 2 and dead["overdraw"]["x-death"]  # 3rd failure dead-lettered
    assert "x-attempts" not in dead["junk"]  # poison: no retries
    status, metrics = http(base + "/metrics")
    assert status == 200
    assert f'worker_messages_total{{outcome="done",queue="{queue}"}} 2.0' in metrics
    assert f'worker_messages_total{{outcome="dead_lettered",queue="{queue}"}} 1.0' in metrics
    assert f'worker_message_seconds_count{{queue="{queue}"}}' in metrics
    assert wait_for(lambda: f'worker_queue_depth{{queue="{queue}"}} 0.0' in http(base + "/metrics")[1], 30)
    health = json.loads(http(base + "/health")[1])
    assert health["dependencies"]["rabbitmq"]["up"] and health["dependencies"]["postgres"]["up"]
    run.signal()
    assert run.wait(30) == 0
    for line in run.output():
        entry = json.loads(line)
        assert entry["service"] == "worker" and entry["level"] and "message" in entry
