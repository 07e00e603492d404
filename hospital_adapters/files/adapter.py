"""The folder-watching adapter: polls a hospital's inbox on a background thread.

Owns: the polling loop and its clean stop. Polling rather than inotify: it works on the network shares
small clinics export to, and one pass per second is plenty for a clinic's pace. Must never process
files concurrently (one thread per inbox).
"""

from __future__ import annotations

import logging
import threading

from hospital_adapters.adapter import HospitalAdapter
from hospital_adapters.config import ConfigError, HospitalConfig
from hospital_adapters.files.inbox import FilesSettings, Inbox
from hospital_adapters.port import EnginePort

log = logging.getLogger(__name__)


class FilesAdapter(HospitalAdapter):
    """Settles every charge file dropped into one folder, once."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"files-{self.inbox.settings.inbox.name}")
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def address(self) -> str:
        return str(self.inbox.settings.inbox)

    def _run(self) -> None:
        interval_seconds = self.inbox.settings.poll_interval_ms / 1000
        while not self._stopping.is_set():
            try:
                self.inbox.process_pending()
            except OSError:
                # The share went away or a file vanished mid-read: log it and try again next pass.
                log.exception("charge folder %s: pass failed", self.address)
            self._stopping.wait(interval_seconds)


def build(config: HospitalConfig, engine: EnginePort) -> FilesAdapter:
    """Entry point ``files``: a polling charge-file inbox from the hospital's configuration."""
    settings = FilesSettings.from_config(config)
    if not settings.inbox.is_dir():
        raise ConfigError(f"hospital {config.hospital_id}: inbox {settings.inbox} is not a folder")
    return FilesAdapter(Inbox(config, config.load_code_table(), engine, settings))
