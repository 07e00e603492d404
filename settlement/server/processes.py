"""Several server processes on one port: each with its own interpreter lock and group-commit writer.

Owns: reserving the port, starting ``[limits].processes`` children of ``settlement serve`` that share it
(SO_REUSEPORT: the kernel spreads terminal connections over them), forwarding SIGTERM/SIGINT so each
drains as a single server does, and starting a new child when one dies. Must never serve a call itself.

Why: one Python process settles on about one core (its threads share one interpreter lock). Several
processes use the other cores. Their writers still take turns on the database: on SQLite through the
file lock beside it (``Engines.write_turn``), on PostgreSQL through the writer's advisory lock, so every
promise of a single process holds; each process only batches its own callers' writes.

Each child has its own Prometheus endpoint: with ``[metrics].listen = "host:9464"`` child ``i`` listens
on port ``9464 + i`` (scrape each); with port 0 each picks a free one and logs it.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from pathlib import Path

from settlement.server.config import ServerConfig
from settlement.server.runtime import ServerStartError, SignalLatch

SHARED_PORT_ENV = "SETTLEMENT_SHARED_PORT"  # set for the children: bind the port with SO_REUSEPORT
MAX_RESTARTS_PER_MINUTE = 5  # beyond: something is wrong with the host or database, not one process
POLL_SECONDS = 0.2
SECONDS_PER_MINUTE = 60
PR_SET_PDEATHSIG = 1  # prctl(2)

_log = logging.getLogger("settlement.serve")


def run_processes(
    config: ServerConfig, command: Sequence[str], environ: Mapping[str, str], *, fingerprint: Callable[[], str]
) -> int:
    """Start the children, supervise them until SIGTERM/SIGINT, pass it on, and return the exit code.

    ``fingerprint`` digests the settings the children read at start (config file, policy files,
    environment): a child is only replaced while it is unchanged, so every process on the port settles
    against the same database with the same rules.
    """
    host, _, port_text = config.listen.rpartition(":")
    try:
        reservation = _reserve(host, int(port_text))
    except OSError as error:
        raise ServerStartError(f"cannot listen on {config.listen}: {error.strerror}") from None
    started_with = fingerprint()
    signals = SignalLatch()
    signals.install()
    children: list[subprocess.Popen[bytes]] = []
    try:
        with closing(reservation):
            port = reservation.getsockname()[1]

            def start(index: int) -> subprocess.Popen[bytes]:
                return _start(command, _child_environment(config, environ, host, port, index))

            children.extend(start(index) for index in range(config.limits.processes))
            _log.info("%d server processes share %s:%d", len(children), host, port)
            failure = _supervise(children, start, signals, started_with, fingerprint)
            if failure is not None:
                _stop(children, signal.SIGTERM)
                return failure
            _log.info("received %s: each server process drains", signals.name)
            codes = _stop(children, signals.received or signal.SIGTERM)
    except BaseException:
        _stop(children, signal.SIGTERM)  # never leave servers on the port that nobody watches
        raise
    finally:
        signals.restore()
    failed = [code for code in codes if code != 0]
    return failed[0] if failed else 0


def _supervise(
    children: list[subprocess.Popen[bytes]],
    start: Callable[[int], subprocess.Popen[bytes]],
    signals: SignalLatch,
    started_with: str,
    fingerprint: Callable[[], str],
) -> int | None:
    """Replace children that die until a signal arrives; an exit code when supervising must stop instead."""
    restarts: list[float] = []
    while signals.received is None:
        for index, child in enumerate(children):
            code = child.poll()
            if code is None:
                continue
            now = time.monotonic()
            restarts = [at for at in restarts if now - at < SECONDS_PER_MINUTE] + [now]
            if len(restarts) > MAX_RESTARTS_PER_MINUTE:
                _log.error("server processes keep exiting (process %d: %s); stopping them all", index, code)
                return _exit_status(code) or 1
            if fingerprint() != started_with:
                _log.error(
                    "server process %d exited (%s), and the configuration or policy files changed since the start: "
                    "not starting a process with other settings; stopping them all (restart the service)",
                    index, code,
                )  # fmt: skip
                return 1
            _log.error("server process %d (pid %d) exited with %s; starting another", index, child.pid, code)
            children[index] = start(index)
        time.sleep(POLL_SECONDS)
    return None


def _reserve(host: str, port: int) -> socket.socket:
    """Bind (not listen on) the port with SO_REUSEPORT: port 0 becomes a fixed port the children share.

    A fixed port is first bound without SO_REUSEPORT: if any server (another ``settlement serve`` with
    several processes included) holds it, this fails instead of silently sharing its terminals.
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    address = (host.strip("[]") or "0.0.0.0", port)  # noqa: S104 - the configured listen address
    if port != 0:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind(address)
    reservation = socket.socket(family, socket.SOCK_STREAM)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reservation.bind(address)
    return reservation


def settings_fingerprint(config_file: Path | None, policies_dir: Path, environ: Mapping[str, str]) -> str:
    """A digest of what a child reads at start: the config file, every policy file, SETTLEMENT_* variables."""
    digest = hashlib.sha256()
    files = [config_file] if config_file is not None else []
    files += sorted(path for path in policies_dir.rglob("*") if path.is_file())
    for path in files:
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"(unreadable)")
    for name in sorted(name for name in environ if name.startswith("SETTLEMENT_")):
        digest.update(f"{name}={environ[name]}\0".encode())
    return digest.hexdigest()


def _child_environment(
    config: ServerConfig, environ: Mapping[str, str], host: str, port: int, index: int
) -> dict[str, str]:
    child = {
        **environ,
        "SETTLEMENT_LISTEN": f"{host}:{port}",
        "SETTLEMENT_PROCESSES": "1",
        SHARED_PORT_ENV: "1",
    }
    if config.metrics_listen:
        metrics_host, _, metrics_port = config.metrics_listen.rpartition(":")
        child["SETTLEMENT_METRICS_LISTEN"] = f"{metrics_host}:{int(metrics_port) + index if int(metrics_port) else 0}"
    return child


def _start(command: Sequence[str], environment: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own CLI
        # The supervisor runs no threads, so preexec_fn cannot deadlock here.
        [sys.executable, *command], env=dict(environment), preexec_fn=_stop_with_parent,  # noqa: PLW1509
    )  # fmt: skip


def _stop_with_parent() -> None:
    """In the child before it runs: SIGTERM when the supervisor dies (even by SIGKILL), so no orphan keeps
    serving on the port unwatched."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(children: Sequence[subprocess.Popen[bytes]], signal_number: int) -> list[int]:
    """Pass the signal on and wait for the drains: their exit codes are the stop's outcome. A child the
    signal ended before it could catch it counts as stopped; one that had already died (and was not
    replaced yet) is logged, not counted: the stop asked of the others still went as asked."""
    signalled = []
    for index, child in enumerate(children):
        code = child.poll()
        if code is None:
            os.kill(child.pid, signal_number)
            signalled.append(child)
        else:
            _log.error("server process %d (pid %d) had exited with %s before the stop", index, child.pid, code)
    codes = [child.wait() for child in signalled]
    return [0 if code == -signal_number else _exit_status(code) for code in codes]


def _exit_status(code: int) -> int:
    """A child ended by signal N (Popen says -N) is reported as the shell does: 128 + N."""
    return 128 - code if code < 0 else code
