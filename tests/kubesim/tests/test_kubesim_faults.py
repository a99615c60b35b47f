"""kubesim fault injection (failures, slowness, dropped watches, bookmarks) and the scripted service proxy."""
from __future__ import annotations

import json
import threading
import time

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.support.kube_objects import deployment, rolled_out


@pytest.fixture
def core(kubesim):
    return client.CoreV1Api(kubesim.api_client())


def test_injected_failure_answers_status_and_changes_nothing(kubesim, core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    kubesim.inject_fault("PATCH", r"/configmaps/cfg", status=503, times=1)
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_config_map("cfg", "default", {"data": {"a": "2"}})
    assert e.value.status == 503 and json.loads(e.value.body)["reason"] == "ServiceUnavailable"
    assert "Retry-After" not in e.value.headers
    assert core.read_namespaced_config_map("cfg", "default").data == {"a": "1"}
    assert core.patch_namespaced_config_map("cfg", "default", {"data": {"a": "2"}}).data == {"a": "2"}


def test_fault_counts_methods_and_clearing(kubesim, core):
    kubesim.inject_fault("GET", r"/api/v1/namespaces/default/configmaps", status=429, times=2)
    codes = []
    for _ in range(3):
        try:
            core.list_namespaced_config_map("default")
            codes.append(200)
        except ApiException as e:
            codes.append(e.status)
    assert codes == [429, 429, 200]
    core.create_namespaced_config_map("default", {"metadata": {"name": "unaffected"}})  # POST not matched
    kubesim.inject_fault(status=500, times=None)
    for _ in range(2):
        with pytest.raises(ApiException) as e:
            core.list_namespace()
        assert e.value.status == 500 and json.loads(e.value.body)["reason"] == "InternalError"
    kubesim.clear_faults()
    assert core.list_namespace().items


def test_retry_after_makes_the_official_client_retry_idempotent_requests(kubesim, core):
    kubesim.inject_fault("GET", r"/api/v1/nodes", status=429, times=1, retry_after=0)
    assert len(core.list_node().items) == 3  # urllib3 honoured Retry-After and retried
    assert [r[2] for r in kubesim.requests if r[1].startswith("/api/v1/nodes")][-2:] == [429, 200]


def test_a_request_is_logged_before_its_answer_is_sent(kubesim, core):
    """Whoever holds an answer finds its request in `kubesim.requests` (no waiting for the server thread)."""
    answered, client_had_answer = threading.Event(), []
    log = kubesim.requests

    class Watching:  # the real log, noting whether the client already had its answer when the entry came in
        def append(self, entry):
            if entry[1] == "/api/v1/nodes":
                client_had_answer.append(answered.wait(1))  # an answer already sent reaches the client by then
            log.append(entry)

        def __iter__(self):
            return iter(log)

    kubesim.requests = Watching()
    core.list_node()
    answered.set()
    assert [r[2] for r in kubesim.requests if r[1] == "/api/v1/nodes"] == [200]
    assert kubesim.wait_for(lambda: client_had_answer) == [False]


def test_the_request_log_can_be_read_while_requests_are_served(kubesim, core):
    core.list_node()
    entries = iter(kubesim.requests)
    first = next(entries)
    core.list_namespace()  # served, and logged, while the reader is half way through
    assert [first, *entries] == [("GET", "/api/v1/nodes", 200)]  # the reader's snapshot; the next one has both
    assert [path for _, path, _ in kubesim.requests] == ["/api/v1/nodes", "/api/v1/namespaces"]


def test_slow_responses(kubesim, core):
    rule = kubesim.slow(r"/api/v1/nodes", 1.0, times=1)
    start = time.monotonic()
    core.list_node()
    assert time.monotonic() - start >= 1.0  # a lower bound: load only adds to it
    core.list_node()
    assert rule.hits == 1  # times=1: the second matching request found the delay spent


def _open_watch(core):
    return core.list_namespaced_config_map("default", watch=True, _preload_content=False)


def test_drop_watches_abruptly_breaks_the_stream(kubesim, core):
    resp = _open_watch(core)
    kubesim.wait_for(lambda: kubesim.open_watches() == 1)
    outcome = {}

    def read():
        try:
            for _ in resp.stream(1024):
                pass
            outcome["ended"] = "cleanly"
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.HTTPError) as e:
            outcome["ended"] = type(e).__name__
    t = threading.Thread(target=read)
    t.start()
    assert kubesim.drop_watches() == 1
    t.join(60)
    assert outcome.get("ended", "still reading") not in ("cleanly", "still reading")


def test_drop_watches_cleanly_ends_the_stream_and_client_resumes(kubesim, core):
    resp = _open_watch(core)
    kubesim.wait_for(lambda: kubesim.open_watches() == 1)
    kubesim.drop_watches(abrupt=False)
    assert b"".join(resp.stream(1024)) == b""  # the chunked stream ends normally
    kubesim.wait_for(lambda: kubesim.open_watches() == 0)
    # the official Watch resumes from the last resourceVersion after a clean end
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    seen, problems = [], []
    w = watch.Watch()

    def produce():
        try:
            kubesim.wait_for(lambda: kubesim.open_watches() == 1)
            core.create_namespaced_config_map("default", {"metadata": {"name": "one"}})
            kubesim.wait_for(lambda: len(seen) == 1)
            assert kubesim.drop_watches(abrupt=False) == 1
        except (TimeoutError, AssertionError) as e:  # never leave the watch loop below waiting forever
            problems.append(e)
        # created while the client reconnects: resuming from its resourceVersion must still deliver it
        core.create_namespaced_config_map("default", {"metadata": {"name": "two"}})
    t = threading.Thread(target=produce)
    t.start()
    for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv):
        seen.append(ev["object"].metadata.name)
        if ev["object"].metadata.name == "two":
            w.stop()
    t.join(60)
    assert not problems and seen == ["one", "two"]


def test_watch_bookmarks(kubesim_factory):
    fast = kubesim_factory(time_factor=0.005)  # bookmarks every 60 simulated s = 0.5 s
    core = client.CoreV1Api(fast.api_client())
    resp = core.list_namespaced_config_map("default", watch=True, allow_watch_bookmarks=True, timeout_seconds=60,
                                           _preload_content=False)
    events, buffered = [], b""
    try:
        for chunk in resp.stream(1024):  # read until the first bookmark (timeoutSeconds only bounds the wait)
            *lines, buffered = (buffered + chunk).split(b"\n")
            events += [json.loads(line) for line in lines if line.strip()]
            if any(e["type"] == "BOOKMARK" for e in events):
                break
    finally:
        resp.close()  # the stream is still open: drop the connection rather than pool it
    bookmark = next(e for e in events if e["type"] == "BOOKMARK")
    assert bookmark["object"]["metadata"]["resourceVersion"]


def _svc(core, name="web"):
    core.create_namespaced_service("default", {"metadata": {"name": name}, "spec": {
        "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})


def test_service_proxy_scripted_sequences(kubesim, core):
    _svc(core)
    kubesim.script_proxy("default", "web", 80, "/healthz", status=200, body={"status": "ok"})
    kubesim.script_proxy("default", "web", 80, "/healthz", status=503, body="warming up", times=2)
    answers = []
    for _ in range(3):
        try:
            answers.append(core.connect_get_namespaced_service_proxy_with_path("web:80", "default", "healthz"))
        except ApiException as e:
            answers.append(e.status)
    assert answers[:2] == [503, 503] and json.loads(answers[2].replace("'", '"')) == {"status": "ok"}
    assert kubesim.proxy.calls[-1][1:] == ("default", "web", "80", "/healthz")


def test_service_proxy_default_answers(kubesim, core):
    with pytest.raises(ApiException) as e:
        core.connect_get_namespaced_service_proxy_with_path("nope:80", "default", "healthz")
    assert e.value.status == 404
    _svc(core)
    with pytest.raises(ApiException) as e:
        core.connect_get_namespaced_service_proxy_with_path("web:80", "default", "healthz")
    assert e.value.status == 503 and "no endpoints available" in e.value.body
    apps = client.AppsV1Api(kubesim.api_client())
    apps.create_namespaced_deployment("default", deployment(replicas=1))
    kubesim.wait_for(lambda: rolled_out(apps))
    assert core.connect_get_namespaced_service_proxy_with_path("web:80", "default", "healthz") == "ok"
