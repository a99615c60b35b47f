"""`python -m worker`: health and metrics on PORT at once, broker and database connected in the background."""
from __future__ import annotations

import logging
import os
import sys

from service_kit import Dependency, HealthServer, Shutdown, configure_logging, grace_seconds, port
from service_kit.settings import SettingError, database, number, secret

from . import SERVICE, ledger
from .consumer import Consumer, connect_broker

log = logging.getLogger(SERVICE)


def main() -> int:
    logging.getLogger("pika").setLevel(logging.WARNING)  # pika narrates every frame at INFO; the config may lower it
    configure_logging(SERVICE)
    try:
        secret("AMQP_URL"), database()  # present at start; re-read at each connect
        queue = (os.environ.get("QUEUE") or "ledger").strip()
        max_attempts = int(number("MAX_ATTEMPTS", 5, minimum=1))
        shutdown = Shutdown(grace_seconds()).install()
        listen = port(8081)
    except SettingError as error:
        log.error("bad configuration: %s", error)
        return 2
    broker = Dependency("rabbitmq", lambda: connect_broker(secret("AMQP_URL"), queue), shutdown.requested,
                        close=lambda pair: pair[0].close())
    db = Dependency("postgres", lambda: ledger.connect(database()), shutdown.requested, close=lambda c: c.close())
    consumer = Consumer(queue, broker, db, shutdown, max_attempts)
    HealthServer(listen, lambda: consumer.ready, lambda: {
        "service": SERVICE, "status": "draining" if shutdown.requested.is_set() else "ok" if consumer.ready
        else "degraded", "queue": queue, "in_flight": consumer.current,
        "dependencies": {"rabbitmq": broker.state(), "postgres": db.state()}}).start()
    broker.start()
    db.start()
    shutdown.watchdog(lambda: consumer.current)
    consumer.run()
    if broker.resource is not None:
        try:
            broker.resource[0].close()
        except Exception:  # noqa: BLE001 - closing a connection that already broke
            pass
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
