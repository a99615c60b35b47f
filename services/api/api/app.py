"""Routes: probes that keep the contract, a detailed /health for people, /metrics, and the accounts API."""
from __future__ import annotations

import logging
import re
import time
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from service_kit import Dependency, Shutdown, trace
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import SERVICE, store

log = logging.getLogger(SERVICE)
# Label names as the SLO rules query them (infra/observability/rules/api-slo.yaml: `code`).
REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "code"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["method", "route"])
ERRORS = Counter("http_request_errors_total", "HTTP requests that failed (5xx or an exception)", ["method", "route"])
IN_FLIGHT = Gauge("http_requests_in_flight", "HTTP requests being served")
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
READY_TIMEOUT_S = 1.0


class Api:
    """The application and the state its probes read: the database dependency and the shutdown flag."""

    def __init__(self, db: Dependency, shutdown: Shutdown) -> None:
        self.db = db
        self.shutdown = shutdown
        self.in_flight = 0
        routes = [Route("/healthz", self.healthz), Route("/readyz", self.readyz), Route("/health", self.health),
                  Route("/metrics", self.metrics), Route("/accounts/{account_id}", self.get_account, methods=["GET"]),
                  Route("/accounts/{account_id}", self.put_account, methods=["PUT"])]
        self.routes = {route.endpoint: route.path for route in routes}
        self.app = Starlette(routes=routes)

    async def __call__(self, scope, receive, send) -> None:
        """Count, time and trace every request; the route label is the template, never the raw path."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        trace_id = (headers.get(b"traceparent") or headers.get(b"x-request-id") or b"").decode() or uuid.uuid4().hex
        status = {"code": 500}

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        self.in_flight += 1
        IN_FLIGHT.inc()
        started = time.perf_counter()
        try:
            with trace(trace_id):
                await self.app(scope, receive, sending)
        except Exception:
            log.exception("request failed: %s %s", scope["method"], scope["path"])
            raise
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()
            route = self.routes.get(scope.get("endpoint"), "unmatched")
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], route, str(status["code"])).inc()
            if status["code"] >= 500:
                ERRORS.labels(scope["method"], route).inc()

    # -- probes ----------------------------------------------------------------------------------------------
    def healthz(self, _: Request) -> Response:
        """Liveness: the process answers. Never a dependency, or an outage would restart every pod."""
        return PlainTextResponse("ok\n")

    def readyz(self, _: Request) -> Response:
        """Readiness: 503 from the first SIGTERM on, and while the database does not answer."""
        if self.shutdown.requested.is_set():
            return PlainTextResponse("shutting down\n", status_code=503)
        if not self.db.up:
            return PlainTextResponse(f"database down: {self.db.error}\n", status_code=503)
        try:
            store.ping(self.db.resource, READY_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - any failure is "not ready", said in one line
            return PlainTextResponse(f"database not answering: {type(error).__name__}\n", status_code=503)
        return PlainTextResponse("ready\n")

    def health(self, _: Request) -> Response:
        """For people, never probes: each dependency and its state."""
        state = "draining" if self.shutdown.requested.is_set() else "ok" if self.db.up else "degraded"
        return JSONResponse({"service": SERVICE, "status": state, "in_flight": self.in_flight,
                             "dependencies": {"postgres": self.db.state()}})

    def metrics(self, _: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # -- accounts --------------------------------------------------------------------------------------------
    def get_account(self, request: Request) -> Response:
        account_id = request.path_params["account_id"]
        if not ACCOUNT_ID.match(account_id):
            return JSONResponse({"error": "account id: 1-64 letters, digits, '_', '.', '-'"}, status_code=400)
        return self._with_db(lambda pool: _found(store.account(pool, account_id), account_id))

    def put_account(self, request: Request) -> Response:
        account_id = request.path_params["account_id"]
        if not ACCOUNT_ID.match(account_id):
            return JSONResponse({"error": "account id: 1-64 letters, digits, '_', '.', '-'"}, status_code=400)
        return self._with_db(lambda pool: JSONResponse({"id": account_id},
                                                       status_code=201 if store.open_account(pool, account_id)
                                                       else 200))

    def _with_db(self, call) -> Response:
        pool = self.db.resource
        if pool is None:
            return _unavailable(self.db.error)
        try:
            return call(pool)
        except store.UNAVAILABLE as error:
            log.warning("database call failed: %s", error)
            return _unavailable(str(error).splitlines()[0] if str(error) else type(error).__name__)


def _found(row: dict | None, account_id: str) -> Response:
    if row is None:
        return JSONResponse({"error": f"no account {account_id}"}, status_code=404)
    return JSONResponse({"id": row["id"], "balance": row["balance"], "updated_at": row["updated_at"].isoformat()})


def _unavailable(why: str) -> Response:
    return JSONResponse({"error": f"database unavailable: {why}"}, status_code=503, headers={"Retry-After": "2"})
