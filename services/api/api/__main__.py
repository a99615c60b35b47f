"""`python -m api`: serve on PORT at once; the database connects in the background; SIGTERM drains.

On the first SIGTERM /readyz turns 503 and the server keeps answering until the requests in flight are done
(or the deadline, GRACE_SECONDS less a margin, passes), then closes and exits 0. A second signal stops at once.
"""
from __future__ import annotations

import logging
import os
import signal
import sys

import uvicorn
from service_kit import Dependency, Shutdown, configure_logging, grace_seconds, port
from service_kit.settings import SettingError, database, number

from . import SERVICE, store
from .app import Api

log = logging.getLogger(SERVICE)


class DrainingServer(uvicorn.Server):
    """uvicorn with the contract's SIGTERM: stop only when nothing is in flight or the deadline is near."""

    def __init__(self, config: uvicorn.Config, api: Api, shutdown: Shutdown) -> None:
        super().__init__(config)
        self.api = api
        self.shutdown_state = shutdown

    def handle_exit(self, sig, frame) -> None:
        self.shutdown_state.request(signal.Signals(sig).name)
        if self.shutdown_state.forced.is_set():
            self.should_exit = self.force_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.shutdown_state.requested.is_set() and (self.api.in_flight == 0 or self.shutdown_state.expired):
            self.config.timeout_graceful_shutdown = max(int(self.shutdown_state.remaining()), 1)
            self.should_exit = True
        return await super().on_tick(counter)

    def capture_signals(self):  # uvicorn re-raises the signal after shutdown; a drained api exits 0 instead
        import contextlib

        @contextlib.contextmanager
        def handlers():
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGTERM, signal.SIGINT)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        return handlers()


def main() -> int:
    configure_logging(SERVICE)
    try:
        database()  # present at start (bad configuration is exit 2); re-read at each connect
        listen = port(8080)
        shutdown = Shutdown(grace_seconds())
        pool_size = int(number("DB_POOL_SIZE", 10, minimum=1))
    except SettingError as error:
        log.error("bad configuration: %s", error)
        return 2
    db = Dependency("postgres", lambda: store.connect(database(), pool_size), shutdown.requested,
                    close=lambda pool: pool.close(timeout=1)).start()
    api = Api(db, shutdown)
    shutdown.watchdog(lambda: f"{api.in_flight} request(s)" if api.in_flight else None)
    config = uvicorn.Config(api, host=os.environ.get("HOST", "0.0.0.0"), port=listen, log_config=None,
                            access_log=False, lifespan="off", server_header=False,
                            timeout_graceful_shutdown=int(shutdown.grace_s) or 1)
    DrainingServer(config, api, shutdown).run()
    if db.resource is not None:
        db.resource.close(timeout=1)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
