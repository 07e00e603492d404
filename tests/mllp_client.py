"""A HIS-side MLLP client for the adapter suites (tests/adapters and tests/adapters_e2e)."""

from __future__ import annotations

import socket

from hospital_adapters.hl7.mllp import MllpFramer

MAX_FRAME_BYTES = 10_000_000


class MllpClient:
    """A HIS-side MLLP connection: send raw bytes, read framed ACKs."""

    def __init__(self, port: int, *, timeout_seconds: float = 5.0) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout_seconds)
        self.framer = MllpFramer(MAX_FRAME_BYTES)
        self.pending: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def receive(self, count: int = 1) -> list[str]:
        while len(self.pending) < count:
            data = self.socket.recv(65_536)
            if not data:
                break
            self.pending.extend(self.framer.feed(data))
        replies, self.pending = self.pending[:count], self.pending[count:]
        return [reply.decode("utf-8") for reply in replies]

    def exchange(self, message: str) -> str:
        """Send one framed message and read its one ACK."""
        self.send(frame(message))
        [ack] = self.receive()
        return ack

    def closed_by_server(self) -> bool:
        try:
            return self.socket.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.socket.close()


def frame(message: str) -> bytes:
    return b"\x0b" + message.encode("utf-8") + b"\x1c\r"
