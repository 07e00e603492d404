"""The hospital adapter interface: one running connection between a HIS and the engine.

Owns: the tiny base class every adapter kind implements (start in the background, say where it
listens, stop) and the factory signature the registry calls. Must never know a wire format.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from hospital_adapters.config import HospitalConfig
from hospital_adapters.port import EnginePort


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


AdapterFactory = Callable[[HospitalConfig, EnginePort], HospitalAdapter]
