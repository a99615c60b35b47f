"""The deploy's public check against a local HTTPS server with a self-signed CA made in the test, and its skip path."""
from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infra.ops.deploy.edge import FAILED, PASSED, SKIPPED, PublicCheck, public_check, readiness_path
from infra.ops.io import manifests
from tests.support.tls import self_signed

HOST = "api.edge.test"


class Edge:
    """An HTTPS server standing in for the load balancer: answers /readyz with `statuses` in turn, then the last."""

    def __init__(self, tmp: Path, names: list[str]):
        cert, key = self_signed(names)
        (tmp / "cert.pem").write_bytes(cert)
        (tmp / "key.pem").write_bytes(key)
        self.cafile = str(tmp / "cert.pem")
        self.statuses = [200]
        self.seen: list[tuple[str, str]] = []
        edge = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                edge.seen.append((self.path, self.headers.get("Host", "")))
                status = edge.statuses.pop(0) if len(edge.statuses) > 1 else edge.statuses[0]
                self.send_response(status if self.path == "/readyz" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def check(self, host: str = HOST, budget_s: float = 30.0) -> PublicCheck:
        return PublicCheck(host, "/readyz", port=self.port, budget_s=budget_s, cafile=self.cafile,
                           resolver=lambda name, port: ["127.0.0.1"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def edge(tmp_path) -> Iterator[Edge]:
    server = Edge(tmp_path, [HOST])
    yield server
    server.close()


def test_a_served_host_passes_with_its_certificate_verified(edge):
    verdict = edge.check().run()
    assert (verdict.ok, verdict.reason) == (True, PASSED)
    assert f"GET https://{HOST}:{edge.port}/readyz answered 200" == verdict.message
    assert edge.seen == [("/readyz", HOST)]  # the Host header the ALB routes on


def test_a_target_coming_into_service_is_waited_for_within_the_budget(edge):
    edge.statuses = [503, 503, 200]
    verdict = edge.check().run()
    assert (verdict.ok, verdict.reason) == (True, PASSED)
    assert len(edge.seen) == 3


def test_an_edge_that_keeps_failing_is_a_failed_verdict_naming_the_check(edge):
    edge.statuses = [503]
    verdict = edge.check(budget_s=1.0).run()
    assert (verdict.ok, verdict.reason) == (False, FAILED)
    assert verdict.message.startswith(f"GET https://{HOST}:{edge.port}/readyz through the edge: answered 503")
    assert str(verdict).startswith("EdgeCheckFailed: ")


def test_a_certificate_for_another_name_fails_on_tls(tmp_path):
    server = Edge(tmp_path, ["other.edge.test"])
    try:
        verdict = server.check(budget_s=1.0).run()
    finally:
        server.close()
    assert (verdict.ok, verdict.reason) == (False, FAILED)
    assert "TLS failed at 127.0.0.1" in verdict.message and "doesn't match 'other.edge.test'" in verdict.message
    assert server.seen == []  # nothing is sent to an edge that cannot prove its name


def test_a_name_that_does_not_resolve_from_here_is_skipped_with_a_clear_line():
    verdict = PublicCheck("api.edge.invalid", "/readyz", budget_s=1.0).run()  # RFC 6761: never resolves
    assert (verdict.ok, verdict.reason) == (True, SKIPPED)
    assert verdict.message.startswith("public check skipped: api.edge.invalid does not resolve from here")


def test_the_public_path_is_the_rendered_readiness_path_and_a_service_without_one_is_skipped():
    objects = [m.obj for m in manifests.render(manifests.K8S_ROOT / "overlays" / "dev")]
    assert readiness_path(objects, "api") == "/readyz"
    tool = {"kind": "Deployment", "metadata": {"name": "tool"},
            "spec": {"template": {"spec": {"containers": [{"name": "tool", "image": "tool:1"}]}}}}
    verdict = public_check([tool], "tool", "tool.edge.invalid", budget_s=1.0)
    assert (verdict.ok, verdict.reason, verdict.message) == (
        True, SKIPPED, "public check skipped: tool has no HTTP readiness probe")


# -- through the deploy pipeline (kubesim + moto): the public check runs after the in-cluster smoke check -------
from infra.ops.deploy import pipeline as deploy  # noqa: E402


def test_a_deploy_the_edge_does_not_serve_fails_naming_the_edge_check_and_rolls_back(deployed_v1):
    env = deployed_v1
    with pytest.raises(deploy.DeployFailed, match=r"EdgeCheckFailed: GET https://localhost/readyz through the edge"):
        env.engine("v2", public_host="localhost", public_budget_s=1).run()  # resolves; nothing listens on 443
    assert env.running_images() == {env.image("v1")}
    events = [json.loads(line) for line in env.output.splitlines()]
    steps = [(e["event"], e.get("ok")) for e in events if e["event"] in ("smoke", "edge")]
    assert steps[-2:] == [("smoke", True), ("edge", False)]  # the in-cluster check passed; the edge one failed


def test_a_public_host_that_does_not_resolve_here_is_skipped_and_the_deploy_stands(deployed_v1):
    env = deployed_v1
    record = env.engine("v2", public_host="api.edge.invalid", public_budget_s=1).run()
    assert record.ok and env.running_images() == {env.image("v2")}
    [edge] = [json.loads(line) for line in env.output.splitlines() if '"event": "edge"' in line]
    assert edge["ok"] is True
    assert "EdgeCheckSkipped: public check skipped: api.edge.invalid does not resolve from here" in edge["message"]
