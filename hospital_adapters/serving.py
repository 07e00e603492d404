"""A threaded TCP server with a connection limit and a clean stop, shared by the MLLP and HTTP adapters.

Owns: refusing connections beyond the limit (closed at once, before any thread is started), tracking
open connections so ``stop`` can end them instead of waiting for a slow HIS, and running
``serve_forever`` on a background thread. Must never read or write application data.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from typing import Any


class BoundedThreadingServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """One thread per connection, at most ``max_connections`` of them."""

    daemon_threads = False
    block_on_close = True  # server_close() waits for handler threads: stop() returns when all are done
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: Any, *, max_connections: int) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open: set[Any] = set()
        self._open_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(address, handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def verify_request(self, request: Any, client_address: Any) -> bool:
        if not self._slots.acquire(blocking=False):
            return False  # socketserver closes it: the HIS sees a reset and retries later
        with self._open_lock:
            self._open.add(request)
        return True

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            tracked = request in self._open
            self._open.discard(request)
        if tracked:
            self._slots.release()
        super().shutdown_request(request)

    def start_in_background(self, name: str) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, name=name)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, end open connections, wait for their threads, close the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        with self._open_lock:
            open_connections = list(self._open)
        for connection in open_connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()
