"""A raw-socket fake upstream on 127.0.0.1 for faults an HTTP framework cannot produce: it
reads a request, then resets the TCP connection (RST, via SO_LINGER 0) without answering."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RawSocketServer:
    """A listening socket on a free 127.0.0.1 port and its accept loop; subclasses answer each
    connection in `handle` (on the accept thread unless they hand it off)."""

    def __init__(self, backlog: int = 64) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(backlog)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listening socket was closed: stop
            self.handle(conn)

    def _start(self) -> None:
        self._thread.start()

    def _shutdown(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)


class ResettingUpstream(RawSocketServer):
    def __init__(self) -> None:
        super().__init__()
        self.connections = 0

    def handle(self, conn: socket.socket) -> None:
        self.connections += 1
        with conn:
            conn.settimeout(2.0)
            # A client that went away first is fine: the connection is reset regardless.
            with contextlib.suppress(OSError):
                conn.recv(65536)  # the request (headers and, usually, the body)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    @contextmanager
    def running(self) -> Iterator[ResettingUpstream]:
        self._start()
        try:
            yield self
        finally:
            self._shutdown()
