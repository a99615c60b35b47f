"""A TCP relay between a service and one of its dependencies, to take the dependency away or stall it on demand.

Down, it refuses connections exactly as a stopped server does; `hold()` stops moving bytes on every connection
(a stalled network or server: calls in flight hang), `release()` lets them flow again, and `delay_s` adds latency
to every chunk. The dependency itself keeps running: this is how `service.check` puts work in flight.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time

from infra.ops.service.local import free_port


class Relay:
    """127.0.0.1:port -> 127.0.0.1:upstream; starts down (refusing)."""

    def __init__(self, upstream: int, port: int | None = None, delay_s: float = 0.0) -> None:
        self.upstream = upstream
        self.port = port or free_port()
        self.delay_s = delay_s
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener: socket.socket | None = None
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.held = 0  # chunks stopped by hold() right now: a caller's request is in flight

    @property
    def is_up(self) -> bool:
        return self.listener is not None

    def up(self) -> Relay:
        with self.lock:
            if self.listener is None:
                listener = socket.socket()
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(("127.0.0.1", self.port))
                listener.listen(64)
                self.listener = listener
                threading.Thread(target=self._accept, args=(listener,), name=f"relay-{self.port}", daemon=True).start()
        return self

    def down(self) -> None:
        """Refuse new connections and cut the open ones (the dependency went away)."""
        with self.lock:
            listener, self.listener = self.listener, None
            pairs, self.pairs = self.pairs, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for client, server in pairs:
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def hold(self) -> None:
        self.flowing.clear()

    def wait_held(self, timeout_s: float) -> bool:
        """True once some bytes are held (a request is in flight), False after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while self.held == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.held > 0

    def release(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.release()
        self.down()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    server.close()
                    return
                self.pairs.append((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if not self.flowing.is_set():
                    with self.lock:
                        self.held += 1
                    try:
                        while not self.flowing.wait(0.2):
                            if _closed(source):  # the sender went away while held: its bytes never arrive
                                return
                    finally:
                        with self.lock:
                            self.held -= 1
                if self.delay_s:
                    time.sleep(self.delay_s)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _closed(sock: socket.socket) -> bool:
    """True when the peer closed `sock` (EOF waiting), without consuming what it sent."""
    import select

    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
