"""The consume loop: manual acks, prefetch 1, retries then the dead-letter queue, and SIGTERM without loss.

On SIGTERM the loop stops taking messages, finishes the one in hand and acks it; a message it cannot finish by
the deadline is left unacked (the watchdog exits, the connection drops) and the broker redelivers it.
"""
from __future__ import annotations

import logging
import time

import pika
import pika.exceptions
from prometheus_client import Counter, Gauge, Histogram
from service_kit import Dependency, Shutdown, trace

from . import SERVICE, ledger

log = logging.getLogger(SERVICE)
MESSAGES = Counter("worker_messages_total", "Messages handled, by outcome", ["queue", "outcome"])
SECONDS = Histogram("worker_message_seconds", "Time to handle one message", ["queue"])
DEPTH = Gauge("worker_queue_depth", "Messages ready in the queue (sampled)", ["queue"])
ATTEMPTS = "x-attempts"
MAX_PRIORITY = 10
DEPTH_EVERY_S = 5.0
AMQP_ERRORS = (pika.exceptions.AMQPError, OSError)


def topology(channel, queue: str) -> None:
    """The work queue (priorities, dead-lettering into QUEUE.dead) and its dead-letter queue, both durable."""
    channel.queue_declare(f"{queue}.dead", durable=True)
    channel.queue_declare(queue, durable=True, arguments={"x-max-priority": MAX_PRIORITY,
                                                          "x-dead-letter-exchange": "",
                                                          "x-dead-letter-routing-key": f"{queue}.dead"})


def connect_broker(url: str, queue: str):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        topology(channel, queue)
        channel.basic_qos(prefetch_count=1)
        channel.confirm_delivery()  # a retry's republish is confirmed before the original is acked
    except BaseException:
        connection.close()
        raise
    return connection, channel


class Consumer:
    def __init__(self, queue: str, broker: Dependency, db: Dependency, shutdown: Shutdown, max_attempts: int):
        self.queue = queue
        self.broker = broker
        self.db = db
        self.shutdown = shutdown
        self.max_attempts = max_attempts
        self.current: str | None = None
        self.depth_at = 0.0

    @property
    def ready(self) -> bool:
        return self.broker.up and self.db.up and not self.shutdown.requested.is_set()

    def run(self) -> None:
        """Consume until SIGTERM; reconnect (through the dependencies) whenever the broker or database is lost."""
        while not self.shutdown.requested.is_set():
            if self.broker.wait() is None or self.db.wait() is None:
                return  # shutdown while waiting
            _, channel = self.broker.resource
            try:
                self._consume(channel)
            except AMQP_ERRORS as error:
                if not self.shutdown.requested.is_set():
                    self.broker.lost(error)

    def _consume(self, channel) -> None:
        for method, properties, body in channel.consume(self.queue, inactivity_timeout=0.5):
            if method is not None:
                self.handle(channel, method, properties, body)
            self._sample_depth(channel)
            if self.shutdown.requested.is_set() or not self.db.up:
                requeued = channel.cancel()  # stop taking messages; any prefetched one goes back
                if requeued:
                    log.info("returned %d prefetched message(s) to %s", requeued, self.queue)
                return

    def handle(self, channel, method, properties, body: bytes) -> None:
        message_id = properties.message_id
        started = time.perf_counter()
        self.current = f"message {message_id or '(no id)'}"
        try:
            with trace(message_id or properties.correlation_id):
                outcome = self._handle(channel, method, properties, body)
        finally:
            self.current = None
        SECONDS.labels(self.queue).observe(time.perf_counter() - started)
        MESSAGES.labels(self.queue, outcome).inc()

    def _handle(self, channel, method, properties, body: bytes) -> str:
        try:
            entry = ledger.Entry.parse(properties.message_id, body)
        except ledger.Poison as error:
            log.error("dead-lettering a message that cannot be processed: %s", error)
            channel.basic_nack(method.delivery_tag, requeue=False)
            return "poison"
        try:
            applied = ledger.apply(self.db.resource, entry)
        except ledger.UNAVAILABLE as error:
            log.warning("database lost while applying; the message goes back to the queue")
            channel.basic_nack(method.delivery_tag, requeue=True)
            self.db.lost(error)
            return "requeued"
        except Exception:  # noqa: BLE001 - a failed effect: counted, retried, then dead-lettered
            return self._failed(channel, method, properties, body)
        channel.basic_ack(method.delivery_tag)
        if applied:
            log.info("applied %+d to %s", entry.amount, entry.account)
            return "done"
        log.info("already processed; acked without applying again")
        return "duplicate"

    def _failed(self, channel, method, properties, body: bytes) -> str:
        attempts = int((properties.headers or {}).get(ATTEMPTS, 0)) + 1
        if attempts >= self.max_attempts:
            log.exception("failed %d time(s): dead-lettering to %s.dead", attempts, self.queue)
            channel.basic_nack(method.delivery_tag, requeue=False)
            return "dead_lettered"
        log.exception("failed (attempt %d of %d): retrying", attempts, self.max_attempts)
        retry = pika.BasicProperties(message_id=properties.message_id, correlation_id=properties.correlation_id,
                                     priority=properties.priority, delivery_mode=2, content_type=properties.content_type,
                                     headers={**(properties.headers or {}), ATTEMPTS: attempts})
        channel.basic_publish("", self.queue, body, retry)
        channel.basic_ack(method.delivery_tag)
        return "retried"

    def _sample_depth(self, channel) -> None:
        if time.monotonic() - self.depth_at < DEPTH_EVERY_S:
            return
        self.depth_at = time.monotonic()
        found = channel.queue_declare(self.queue, passive=True)
        DEPTH.labels(self.queue).set(found.method.message_count)
