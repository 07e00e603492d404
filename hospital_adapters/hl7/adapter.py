"""The MLLP listener: HL7 v2 over TCP, one thread per HIS connection.

Owns: reading frames off each connection with a read timeout and a size limit, answering every
message in order on the same connection, and closing a connection whose stream cannot be trusted (a
frame past the size limit). Must never hold a connection open past the read timeout.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
from typing import cast

from hospital_adapters import limits as adapter_limits
from hospital_adapters.adapter import ListeningAdapter
from hospital_adapters.config import HospitalConfig
from hospital_adapters.hl7.mllp import FrameTooLarge, MllpFramer, encode_frame
from hospital_adapters.hl7.service import Hl7Service, Hl7Settings
from hospital_adapters.port import EnginePort
from hospital_adapters.serving import BoundedThreadingServer

log = logging.getLogger(__name__)


class _MllpServer(BoundedThreadingServer):
    def __init__(self, service: Hl7Service) -> None:
        self.service = service
        super().__init__((service.settings.host, service.settings.port), _MllpHandler,
                         max_connections=adapter_limits.MAX_MLLP_CONNECTIONS)


class _MllpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        service = cast(_MllpServer, self.server).service
        connection = self.request
        connection.settimeout(adapter_limits.MLLP_READ_TIMEOUT_SECONDS)
        framer = MllpFramer(adapter_limits.MAX_HL7_MESSAGE_BYTES)
        while True:
            try:
                data = connection.recv(adapter_limits.MLLP_READ_CHUNK_BYTES)
            except OSError:  # includes the read timeout: the sender stalled or vanished
                return
            if not data:
                return
            try:
                payloads = framer.feed(data)
            except FrameTooLarge:
                log.warning("closing an MLLP connection from %s: frame too large", self.client_address[0])
                connection.sendall(encode_frame(service.too_large()))
                _close_gently(connection)
                return
            for payload in payloads:
                connection.sendall(encode_frame(service.handle(payload)))


def _close_gently(connection: socket.socket) -> None:
    """Half-close and drain briefly, so the AR is not lost to a reset caused by unread input."""
    connection.shutdown(socket.SHUT_WR)
    connection.settimeout(adapter_limits.MLLP_DRAIN_SECONDS)
    drained = 0
    with contextlib.suppress(OSError):
        while drained < adapter_limits.MAX_HL7_MESSAGE_BYTES:
            data = connection.recv(adapter_limits.MLLP_READ_CHUNK_BYTES)
            if not data:
                break
            drained += len(data)


class Hl7Adapter(ListeningAdapter):
    """An MLLP listener for one hospital."""

    kind = "HL7"

    def __init__(self, service: Hl7Service) -> None:
        super().__init__()
        self._service = service

    def _new_server(self) -> _MllpServer:
        return _MllpServer(self._service)

    def _thread_name(self) -> str:
        return f"mllp-{self._service.settings.port}"

    @property
    def address(self) -> str:
        return f"mllp://{self._service.settings.host}:{self.port}"


def build(config: HospitalConfig, engine: EnginePort) -> Hl7Adapter:
    """Entry point ``hl7``: an MLLP listener from the hospital's configuration."""
    return Hl7Adapter(Hl7Service(config, config.load_code_table(), engine, Hl7Settings.from_config(config)))
