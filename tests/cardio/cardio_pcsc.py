"""The real PC/SC stack for the card tests: pcscd with the vsmartcard-vpcd driver, and reader waits.

A module of its own, with a name no other test directory uses, so test modules can import these
helpers (importing ``conftest`` by name picks whichever conftest pytest loaded last).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from cardio.virtual_card import VirtualCard

VPCD_PORTS = (35963, 35964)
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
PCSCD_PID_FILE = Path("/run/pcscd/pcscd.pid")
PCSCD_START_TIMEOUT_MS = 10_000
READER_STATE_TIMEOUT_MS = 3_000  # pcscd polls every ~400 ms; a card shows up or leaves well within this
IN_CI = os.environ.get("CI", "").lower() == "true"


def pcsc_unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"CI=true needs the real PC/SC stack: {reason}", pytrace=False)
    pytest.skip(reason)


def vpcd_readers() -> list[str]:
    from cardio.pcsc import PcscCardReader  # noqa: PLC0415 - only once pyscard is known to be there

    try:
        return [name for name in PcscCardReader().list_readers() if name.endswith((" 00 00", " 00 01"))]
    except Exception:
        return []


def running_pcscd_pid() -> int | None:
    try:
        pid = int(PCSCD_PID_FILE.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


@dataclass
class Pcscd:
    """The session's pcscd; ``owned`` when this test session started it (then it may be restarted)."""

    log_path: Path
    owned: bool = False
    process: subprocess.Popen[bytes] | None = None
    readers: list[str] = field(default_factory=list)

    def reader_for(self, port: int) -> str:
        return self.readers[VPCD_PORTS.index(port)]

    def start(self) -> None:
        binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([binary, "--foreground"], stdout=log, stderr=subprocess.STDOUT)
        self.owned = True
        self.wait_for_readers()

    def wait_for_readers(self) -> None:
        deadline = time.monotonic() + PCSCD_START_TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                pcsc_unavailable(f"pcscd exited with {self.process.returncode}; see {self.log_path}")
            readers = vpcd_readers()
            if len(readers) == 2:
                self.readers = sorted(readers)
                return
            time.sleep(0.1)
        pcsc_unavailable(f"the vpcd readers did not appear within {PCSCD_START_TIMEOUT_MS} ms; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        if not self.owned:
            raise RuntimeError("only a pcscd this session started may be restarted")
        self.stop()
        self.start()


@contextlib.contextmanager
def pcscd_with_vpcd(log_dir: Path) -> Iterator[Pcscd]:
    """A pcscd showing the two vpcd readers: the running one if it does, else one started (and stopped) here.

    One pcscd per machine, so a daemon without the vpcd readers is stopped first. A missing piece
    (pyscard, pcscd, the driver) skips, or fails under CI=true.
    """
    try:
        import smartcard.scard  # noqa: F401, PLC0415
    except ImportError:
        pcsc_unavailable("pyscard is not installed (pip install -e '.[reader]')")
    if shutil.which("pcscd") is None and not Path("/usr/sbin/pcscd").exists():
        pcsc_unavailable("pcscd is not installed (apt-get install pcscd)")
    if not VPCD_DRIVER.exists():
        pcsc_unavailable("the vsmartcard-vpcd driver is not installed (apt-get install vsmartcard-vpcd)")
    daemon = Pcscd(log_path=log_dir / "pcscd.log")
    if len(vpcd_readers()) == 2:
        daemon.readers = sorted(vpcd_readers())  # reuse the running one
    else:
        stale = running_pcscd_pid()
        if stale is not None:  # running but without vpcd readers: it cannot serve these tests
            os.kill(stale, signal.SIGTERM)
            for _ in range(50):
                if running_pcscd_pid() is None:
                    break
                time.sleep(0.1)
        daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()  # only a pcscd started here


def wait_for_reader(reader: str, *, present: bool, timeout_ms: int = READER_STATE_TIMEOUT_MS) -> None:
    """Block until pcscd reports ``reader`` with (or without) a card."""
    from smartcard import scard  # noqa: PLC0415

    deadline = time.monotonic() + timeout_ms / 1000
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS
    try:
        state = scard.SCARD_STATE_UNAWARE
        while time.monotonic() < deadline:
            hresult, states = scard.SCardGetStatusChange(context, 100, [(reader, state)])
            if hresult == scard.SCARD_S_SUCCESS:
                state = states[0][1] & ~scard.SCARD_STATE_CHANGED
                if bool(state & scard.SCARD_STATE_PRESENT) == present:
                    return
        raise AssertionError(f"{reader} still {'empty' if present else 'holds a card'} after {timeout_ms} ms")
    finally:
        scard.SCardReleaseContext(context)


CardMaker = Callable[..., VirtualCard]
