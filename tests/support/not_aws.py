"""An HTTP server that answers every request as something that is not AWS does: a proxy's or a wrong endpoint's
404 page, an empty body. Point AWS_ENDPOINT_URL at it to see what a task says when the endpoint is not AWS."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODIES = {"html": ("text/html", b"<html><body><h1>404 Not Found</h1><p>nginx</p></body></html>"),
          "empty": ("text/plain", b""), "text": ("text/plain", b"Not Found")}


class NotAws:
    """Answers `status` with one of BODIES to every method, until stopped."""

    def __init__(self, status: int = 404, body: str = "html"):
        content_type, payload = BODIES[body]

        class Answer(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _answer  # http.server looks these names up

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=60)
