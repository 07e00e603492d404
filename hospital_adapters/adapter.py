"""The hospital adapter interface: one running connection between a HIS and the engine.

Owns: the tiny base class every adapter kind implements (start in the background, say where it
listens, stop) and the factory signature the registry calls. Must never know a wire format.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from hospital_adapters.config import HospitalConfig
from hospital_adapters.port import EnginePort
from hospital_adapters.serving import BoundedThreadingServer


class HospitalAdapter(ABC):
    """Receives or fetches a visit's charge lines, settles them through the engine, reports back."""

    @abstractmethod
    def start(self) -> None:
        """Start serving in background threads; return once the adapter accepts work."""

    @abstractmethod
    def stop(self) -> None:
        """Stop accepting work, let work in progress finish, release sockets and threads."""

    @property
    @abstractmethod
    def address(self) -> str:
        """Where the HIS reaches this adapter: ``mllp://host:port``, ``http://host:port/...``, a folder."""

    def __enter__(self) -> HospitalAdapter:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ListeningAdapter(HospitalAdapter):
    """An adapter that is a TCP listener: ``start`` binds it in the background, ``stop`` drains it."""

    kind = "listening"  # for messages: "HL7", "FHIR"

    def __init__(self) -> None:
        self._server: BoundedThreadingServer | None = None

    @abstractmethod
    def _new_server(self) -> BoundedThreadingServer:
        """A bound, not yet serving, server for this hospital."""

    @abstractmethod
    def _thread_name(self) -> str: ...

    def start(self) -> None:
        self._server = self._new_server()
        self._server.start_in_background(self._thread_name())

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def port(self) -> int:
        """The bound port (the real one when the configuration says 0)."""
        if self._server is None:
            raise RuntimeError(f"the {self.kind} adapter is not started")
        return self._server.port


AdapterFactory = Callable[[HospitalConfig, EnginePort], HospitalAdapter]
