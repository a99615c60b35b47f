"""/healthz, /readyz, /health and /metrics for services whose main loop is not an HTTP server (workers, jobs).

/healthz answers from the process alone (liveness must never restart a pod for a dependency); /readyz is the
service's own critical dependencies and turns 503 from the first SIGTERM on; /health is the detailed view for
people; /metrics is Prometheus text from the default registry.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("service_kit.health")


class HealthServer:
    """A small threaded HTTP server on PORT; `ready()` says whether the dependencies are up, `details()` why."""

    def __init__(self, port: int, ready: Callable[[], bool], details: Callable[[], dict], host: str = "0.0.0.0"):
        self.ready = ready
        self.details = details
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._send(200, "text/plain", b"ok\n")
                elif path == "/readyz":
                    ok = server.ready()
                    self._send(200 if ok else 503, "text/plain", b"ready\n" if ok else b"not ready\n")
                elif path == "/health":
                    self._send(200, "application/json", json.dumps(server.details(), default=str).encode() + b"\n")
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest())
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args) -> None:
                log.debug("health %s", fmt % args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    def start(self) -> HealthServer:
        threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True).start()
        log.info("health and metrics on :%d", self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
