"""HTTP framing and routing: turns kube-apiserver URLs into Api calls and streams watches.

URL shapes served (same as kube-apiserver):
  /version /healthz /readyz /livez /api /api/v1 /apis /apis/{g} /apis/{g}/{v}
  /api/v1/{plural}[/{name}[/{sub}]]                       cluster-scoped, or all-namespaces list/watch
  /api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]]       namespaced
  /apis/{g}/{v}/... the same for named groups; legacy /watch/ prefixes; service proxy.
Anything not matched answers a 404 `Status`, as the real server does.
"""
from __future__ import annotations

import base64
import json
import queue
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from . import errors, resources
from .kubelet import container_log
from .selectors import parse_field_selector, parse_label_selector
from .table import to_table

JSON = "application/json"
BINARY_TYPES = ("application/vnd.kubernetes.protobuf", "application/cbor")  # not decoded: answered 415


def _truthy(value: str | None) -> bool:
    """Go's strconv.ParseBool truthy spellings (the python client sends "True")."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


class Route:
    """A parsed resource URL."""

    def __init__(self, rt, namespace, name, sub, rest):
        self.rt, self.namespace, self.name, self.sub, self.rest = rt, namespace, name, sub, rest


def parse_resource_path(parts: list[str]) -> tuple[Route | None, bool]:
    """parts after /api or /apis; returns (route, legacy_watch)."""
    if parts and parts[0] == "v1" and len(parts) >= 1:
        group, version, rest = "", "v1", parts[1:]
    elif len(parts) >= 2:
        group, version, rest = parts[0], parts[1], parts[2:]
    else:
        return None, False
    watch = False
    if rest and rest[0] == "watch":
        watch, rest = True, rest[1:]
    ns = None
    if len(rest) >= 2 and rest[0] == "namespaces" and (len(rest) == 2 or resources.lookup(group, version, rest[2])
                                                         is not None):
        if len(rest) == 2:  # the namespace object itself
            return Route(resources.lookup("", "v1", "namespaces"), None, rest[1], None, []), watch
        ns, rest = rest[1], rest[2:]
    if not rest:
        return None, watch
    rt = resources.lookup(group, version, rest[0])
    if rt is None or (ns is not None and not rt.namespaced):
        return None, watch
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in rt.subresources and not (rt.kind == "Namespace" and sub == "finalize"):
        return None, watch
    return Route(rt, ns, name, sub, rest[3:]), watch


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: Nagle + delayed ACK add ~40 ms each
    server_version = "kubesim"
    cluster = None  # set on the subclass made per server

    def log_message(self, fmt, *args):  # keep test output clean; requests are kept in cluster.requests
        pass

    # -- plumbing -------------------------------------------------------------------------------
    def _send(self, code: int, body, content_type: str = JSON, headers: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str)
                                                     else json.dumps(body).encode())
        self._answered(code)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _answered(self, code: int) -> None:
        """Log the request before its first response byte: a client holding the answer finds the entry."""
        self._status = code
        self.cluster.requests.append((self._method, self.path, code))

    def _error(self, e: errors.ApiError) -> None:
        self._send(e.code, e.status(), headers=e.headers)

    def _body(self) -> bytes:
        return self._raw

    def _json_body(self):
        raw = self._body()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as e:
                raise errors.bad_request(f"couldn't decode body: {e}") from None

    def _manager(self, q) -> str:
        return q.get("fieldManager") or (self.headers.get("User-Agent") or "unknown").split("/")[0]

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._status, self._method = 0, method
        c = self.cluster
        n = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(n) if n else b""  # always consumed, so keep-alive stays in sync
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            delay, failure = c.faults.take(method, self.path)
            if delay:
                time.sleep(delay)
            if failure:
                raise errors.generic(failure.status, failure.message, failure.retry_after)
            if ctype in BINARY_TYPES and self._raw:
                raise errors.unsupported_media_type(ctype)  # client-go then falls back to JSON
            self._route(method)
        except errors.ApiError as e:
            if self._status:  # a stream already started: all we can do is end the connection
                self.close_connection = True
            else:
                self._error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # an emulator bug must surface as a 500, not a hung client
            c.internal_errors.append(traceback.format_exc())
            if self._status:
                self.close_connection = True
            else:
                self._error(errors.ApiError(500, "InternalError", f"kubesim internal error: {e!r}"))
        finally:
            if not self._status:  # no answer was sent (the client went away first)
                c.requests.append((method, self.path, 0))

    # -- routing --------------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [unquote(p) for p in url.path.split("/") if p]
        if method == "GET" and self._discovery(parts):
            return
        if not parts or parts[0] not in ("api", "apis"):
            raise errors.path_not_found(url.path)
        if parts[0] == "api" and len(parts) >= 6 and parts[1:3] == ["v1", "namespaces"] and parts[4] == "services" \
                and len(parts) >= 7 and parts[6] == "proxy":
            return self._proxy(method, parts[3], parts[5], "/" + "/".join(parts[7:]), url.query)
        route, legacy_watch = parse_resource_path(parts[1:])
        if route is None:
            raise errors.path_not_found(url.path)
        if legacy_watch:
            q["watch"] = "true"
        self._resource(method, route, q)

    def _discovery(self, parts: list[str]) -> bool:
        doc = None
        if parts == ["version"]:
            doc = dict(resources.SERVER_VERSION, **self.cluster.version)
        elif parts and parts[0] in ("healthz", "readyz", "livez"):
            self._send(200, b"ok", "text/plain")
            return True
        elif parts == ["api"]:
            doc = resources.api_versions()
        elif parts == ["api", "v1"]:
            doc = resources.api_resource_list("", "v1")
        elif parts == ["apis"]:
            doc = resources.api_group_list()
        elif len(parts) == 2 and parts[0] == "apis":
            doc = resources.api_group(parts[1])
            if doc is None:
                raise errors.path_not_found("/".join(parts))
        elif len(parts) == 3 and parts[0] == "apis":
            doc = resources.api_resource_list(parts[1], parts[2])
            if doc is None:
                raise errors.path_not_found("/".join(parts))
        elif parts == ["openapi", "v3"]:
            doc = resources.openapi_v3_root()
        elif parts[:2] == ["openapi", "v3"] and len(parts) in (4, 5):
            rest = parts[2:]
            doc = (resources.openapi_v3_group_version("", rest[1]) if rest[0] == "api"
                   else resources.openapi_v3_group_version(rest[1], rest[2]) if len(rest) == 3 else None)
            if doc is None:
                raise errors.path_not_found("/".join(parts))
        if doc is None:
            return False
        self._send(200, doc)
        return True

    def _resource(self, method: str, r: Route, q: dict) -> None:
        if r.sub == "scale":
            return self._scale(method, r, q)
        handler = {"GET": self._get, "POST": self._post, "PUT": self._put, "PATCH": self._patch,
                   "DELETE": self._delete}.get(method)
        if handler is None:
            raise errors.method_not_allowed()
        handler(r, q, q.get("dryRun") == "All")

    def _writable(self, r: Route) -> str | None:
        """PUT/PATCH target: the object, its status, or a namespace's finalize; nothing else."""
        if r.name is None or r.sub not in (None, "status", "finalize"):
            raise errors.method_not_allowed()
        return "status" if r.sub == "status" else None

    def _get(self, r: Route, q: dict, dry: bool) -> None:
        api = self.cluster.api
        if r.name is None:
            return self._watch(r, q) if _truthy(q.get("watch")) else self._list(r, q)
        if r.sub == "log":
            text = container_log(self.cluster, api.get(r.rt, r.namespace, r.name), q.get("container"))
            if q.get("tailLines"):
                text = "".join(text.splitlines(keepends=True)[-int(q["tailLines"]):])
            return self._send(200, text, "text/plain")
        obj = api.get(r.rt, r.namespace, r.name)
        self._send(200, to_table(r.rt, [obj], obj["metadata"]["resourceVersion"]) if self._wants_table() else obj)

    def _post(self, r: Route, q: dict, dry: bool) -> None:
        api = self.cluster.api
        if r.sub == "eviction":
            return self._send(201, api.evict(r.namespace, r.name, self._json_body(), dry))
        if r.sub == "binding":
            return self._send(201, api.bind(r.namespace, r.name, self._json_body()))
        if r.name is not None:
            raise errors.method_not_allowed()
        self._send(201, api.create(r.rt, r.namespace, self._json_body(), self._manager(q), dry))

    def _put(self, r: Route, q: dict, dry: bool) -> None:
        sub = self._writable(r)
        self._send(200, self.cluster.api.update(r.rt, r.namespace, r.name, self._json_body(), self._manager(q),
                                                sub, dry))

    def _patch(self, r: Route, q: dict, dry: bool) -> None:
        sub = self._writable(r)
        ctype = self.headers.get("Content-Type") or ""
        # apply requires an explicit fieldManager; other patches default it from the User-Agent
        manager = q.get("fieldManager") if ctype.startswith("application/apply-patch") else self._manager(q)
        self._send(200, self.cluster.api.patch(r.rt, r.namespace, r.name, self._body(), ctype, manager,
                                               _truthy(q.get("force")), sub, dry))

    def _delete(self, r: Route, q: dict, dry: bool) -> None:
        raw = self._body()
        options = json.loads(raw) if raw else {}
        for k in ("gracePeriodSeconds", "propagationPolicy"):
            if k in q:
                options[k] = int(q[k]) if k == "gracePeriodSeconds" else q[k]
        if r.sub is not None:
            raise errors.method_not_allowed()
        if r.name is None:
            return self._delete_collection(r, q, options, dry)
        obj = self.cluster.api.delete(r.rt, r.namespace, r.name, options, dry)
        if r.rt.kind in ("Pod", "Namespace") or obj["metadata"].get("deletionTimestamp"):
            return self._send(200, obj)
        details = {"name": r.name, "kind": r.rt.plural, "uid": obj["metadata"]["uid"]}
        if r.rt.group:
            details["group"] = r.rt.group
        self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": details})

    def _wants_table(self) -> bool:
        accept = self.headers.get("Accept") or ""
        return any("as=Table" in part for part in accept.split(","))

    def _predicate(self, q):
        labels = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(q.get("fieldSelector"))
        return lambda o: labels(o["metadata"].get("labels")) and fields(o)

    def _list(self, r: Route, q: dict) -> None:
        items, rv = self.cluster.store.list(r.rt, r.namespace, self._predicate(q))
        meta = {"resourceVersion": rv}
        offset = 0
        if q.get("continue"):
            try:
                offset = int(json.loads(base64.b64decode(q["continue"]))["offset"])
            except (ValueError, KeyError):
                raise errors.bad_request("continue key is not valid") from None
        limit = int(q.get("limit") or 0)
        items = items[offset:]
        if limit and len(items) > limit:
            meta["continue"] = base64.b64encode(json.dumps({"offset": offset + limit, "rv": rv}).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if self._wants_table():
            table = to_table(r.rt, items, rv, q.get("includeObject", "Metadata"))
            table["metadata"].update(meta)
            return self._send(200, table)
        self._send(200, {"kind": f"{r.rt.kind}List", "apiVersion": r.rt.api_version, "metadata": meta,
                         "items": items})

    def _delete_collection(self, r: Route, q: dict, options: dict, dry: bool) -> None:
        items, _ = self.cluster.store.list(r.rt, r.namespace, self._predicate(q))
        out = []
        for o in items:
            try:
                out.append(self.cluster.api.delete(r.rt, o["metadata"].get("namespace"), o["metadata"]["name"],
                                                   options, dry))
            except errors.ApiError as e:
                if e.code != 404:
                    raise
        self._send(200, {"kind": f"{r.rt.kind}List", "apiVersion": r.rt.api_version,
                         "metadata": {"resourceVersion": self.cluster.store.resource_version}, "items": out})

    def _scale(self, method: str, r: Route, q: dict) -> None:
        api = self.cluster.api
        if method == "GET":
            return self._send(200, api.get_scale(r.rt, r.namespace, r.name))
        if method == "PUT":
            return self._send(200, api.update_scale(r.rt, r.namespace, r.name, self._json_body(), self._manager(q)))
        if method == "PATCH":
            from .merge import json_patch, merge_patch, strategic_merge
            current = api.get_scale(r.rt, r.namespace, r.name)
            doc = self._json_body()
            ctype = (self.headers.get("Content-Type") or "").split(";")[0]
            patched = (json_patch(current, doc) if ctype == "application/json-patch+json"
                       else strategic_merge(current, doc) if ctype == "application/strategic-merge-patch+json"
                       else merge_patch(current, doc))
            patched["metadata"].pop("resourceVersion", None)
            return self._send(200, api.update_scale(r.rt, r.namespace, r.name, patched, self._manager(q)))
        raise errors.method_not_allowed()

    # -- watch ----------------------------------------------------------------------------------
    def _watch(self, r: Route, q: dict) -> None:
        c = self.cluster
        pred = self._predicate(q)
        since = q.get("resourceVersion")
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
        bookmarks = _truthy(q.get("allowWatchBookmarks"))
        table = (r.rt, q.get("includeObject", "Metadata")) if self._wants_table() else None
        try:
            sub, backlog = c.store.subscribe(r.rt, r.namespace, since, pred)
        except errors.ApiError as e:
            if e.code != 410:
                raise
            # the real server opens the stream, then sends an ERROR event with the 410 Status
            self._start_stream()
            self._chunk({"type": "ERROR", "object": e.status()})
            self._end_stream()
            return
        self._start_stream()
        c.register_watch(sub, self.connection)
        deadline = time.monotonic() + timeout if timeout else None
        bookmark_every = max(c.time_factor * 60, 0.5)
        last_bookmark = time.monotonic()
        try:
            for ev in backlog:
                self._send_event(ev, pred, table)
            while not sub.closed:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                wait = 0.5 if deadline is None else min(0.5, deadline - now)
                try:
                    ev = sub.events.get(timeout=max(wait, 0.001))
                except queue.Empty:
                    if bookmarks and time.monotonic() - last_bookmark >= bookmark_every:
                        self._chunk({"type": "BOOKMARK", "object": {
                            "kind": r.rt.kind, "apiVersion": r.rt.api_version,
                            "metadata": {"resourceVersion": c.store.resource_version}}})
                        last_bookmark = time.monotonic()
                    continue
                if ev is None:
                    break
                self._send_event(ev, pred, table)
            if not c.is_dropped(sub):
                self._end_stream()
            else:
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            c.store.unsubscribe(sub)
            c.unregister_watch(sub)

    def _send_event(self, ev, pred, table=None) -> None:
        """One watch event, after selector transitions; a one-row Table when kubectl asked for tables."""
        new_match = ev.type != "DELETED" and pred(ev.obj)
        old_match = ev.old is not None and pred(ev.old)
        if ev.type == "DELETED":
            typ = "DELETED" if old_match else None
        elif ev.type == "ADDED":
            typ = "ADDED" if new_match else None
        else:
            typ = "MODIFIED" if new_match and old_match else "ADDED" if new_match else "DELETED" if old_match else None
        if typ:
            obj = ev.obj if table is None else to_table(table[0], [ev.obj], ev.obj["metadata"]["resourceVersion"],
                                                        table[1])
            self._chunk({"type": typ, "object": obj})

    def _start_stream(self) -> None:
        self._answered(200)
        self.send_response(200)
        self.send_header("Content-Type", JSON)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def _chunk(self, event: dict) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- service proxy --------------------------------------------------------------------------
    def _proxy(self, method: str, ns: str, svc_spec: str, path: str, query: str) -> None:
        status, body, ctype = self.cluster.proxy.answer(method, ns, svc_spec, path)
        self._send(status, body, ctype)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """Clients closing idle keep-alive connections is normal; anything else is an emulator bug."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, TimeoutError)):
            super().handle_error(request, client_address)


class Server:
    """ThreadingHTTPServer on 127.0.0.1:<free port>, one thread per connection."""

    def __init__(self, cluster, host: str = "127.0.0.1", port: int = 0):
        handler = type("KubesimHandler", (Handler,), {"cluster": cluster})
        self.httpd = _HTTPServer((host, port), handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="kubesim-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def shutdown_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass



