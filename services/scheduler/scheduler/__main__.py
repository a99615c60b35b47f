"""`python -m scheduler`: one run per CronJob pod. Exit 0 only when the window's snapshot is done.

Exit codes: 0 done (or found done), 1 not done (the reason is the last log line; the Job retries, the next
window runs anyway), 2 bad configuration, 3 the grace period ran out mid-run (rolled back, nothing half-done).
"""
from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

from service_kit import Dependency, HealthServer, Shutdown, configure_logging, grace_seconds, port
from service_kit.settings import SettingError, database, number

from . import SERVICE, snapshot

log = logging.getLogger(SERVICE)


def main() -> int:
    configure_logging(SERVICE)
    try:
        database()  # present at start; re-read at each connect
        minutes = int(number("PERIOD_MINUTES", 15, minimum=1))
        connect_s = number("CONNECT_TIMEOUT_SECONDS", 120, minimum=1)
        shutdown = Shutdown(grace_seconds()).install()
        listen = port(8081)
    except SettingError as error:
        log.error("bad configuration: %s", error)
        return 2
    period = snapshot.window(datetime.now(UTC), minutes)
    running: dict[str, str] = {}
    db = Dependency("postgres", lambda: snapshot.connect(database()), shutdown.requested, close=lambda c: c.close())
    HealthServer(listen, lambda: db.up and not shutdown.requested.is_set(), lambda: {
        "service": SERVICE, "period": period.isoformat(), "running": running.get("run"),
        "dependencies": {"postgres": db.state()}}).start()
    db.start()
    conn = db.wait(connect_s)
    if conn is None:
        why = "SIGTERM before the run started" if shutdown.requested.is_set() else \
            f"database unreachable for {connect_s:g} s ({db.error})"
        log.error("snapshot %s not done: %s; the next run will do it", period.isoformat(), why)
        return 1
    shutdown.watchdog(lambda: running.get("run"))
    running["run"] = f"snapshot {period.isoformat()}"
    try:
        created, accounts = snapshot.run(conn, period)
    except Exception as error:  # noqa: BLE001 - any failure: rolled back, reported in one line, non-zero
        log.error("snapshot %s not done: %s: %s", period.isoformat(), type(error).__name__,
                  str(error).strip().splitlines()[0] if str(error).strip() else "")
        return 1
    finally:
        running.pop("run", None)
    log.info("snapshot %s %s: %d account(s)", period.isoformat(), "done" if created else "was already done",
             accounts, extra={"fields": {"outcome": "done" if created else "already_done"}})
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
