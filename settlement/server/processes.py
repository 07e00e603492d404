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

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import closing

from settlement.server.config import ServerConfig
from settlement.server.runtime import SignalLatch

SHARED_PORT_ENV = "SETTLEMENT_SHARED_PORT"  # set for the children: bind the port with SO_REUSEPORT
MAX_RESTARTS_PER_MINUTE = 5  # beyond: something is wrong with the host or database, not one process
POLL_SECONDS = 0.2

_log = logging.getLogger("settlement.serve")


def run_processes(config: ServerConfig, command: Sequence[str], environ: Mapping[str, str]) -> int:
    """Start the children, supervise them until SIGTERM/SIGINT, pass it on, and return the exit code."""
    host, _, port_text = config.listen.rpartition(":")
    signals = SignalLatch()
    signals.install()
    with closing(_reserve(host, int(port_text))) as reservation:
        port = reservation.getsockname()[1]
        children = [
            _start(command, _child_environment(config, environ, host, port, index))
            for index in range(config.limits.processes)
        ]
        _log.info("%d server processes share %s:%d", len(children), host, port)
        restarts: list[float] = []
        try:
            while signals.received is None:
                for index, child in enumerate(children):
                    code = child.poll()
                    if code is None:
                        continue
                    now = time.monotonic()
                    restarts = [at for at in restarts if now - at < 60] + [now]
                    if len(restarts) > MAX_RESTARTS_PER_MINUTE:
                        _log.error("server processes keep exiting (last: %d with %s); stopping", index, code)
                        _stop(children, signals.received or 15)
                        return code or 1
                    _log.error("server process %d (pid %d) exited with %s; starting another", index, child.pid, code)
                    children[index] = _start(command, _child_environment(config, environ, host, port, index))
                time.sleep(POLL_SECONDS)
            _log.info("received %s: each server process drains", signals.name)
            codes = _stop(children, signals.received)
        finally:
            signals.restore()
    failed = [code for code in codes if code != 0]
    return failed[0] if failed else 0


def _reserve(host: str, port: int) -> socket.socket:
    """Bind (not listen on) the port with SO_REUSEPORT: port 0 becomes a fixed port the children share."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    reservation = socket.socket(family, socket.SOCK_STREAM)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reservation.bind((host.strip("[]") or "0.0.0.0", port))  # noqa: S104 - the configured listen address
    return reservation


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
    return subprocess.Popen([sys.executable, *command], env=dict(environment))  # noqa: S603 - our own CLI


def _stop(children: Sequence[subprocess.Popen[bytes]], signal_number: int) -> list[int]:
    for child in children:
        if child.poll() is None:
            os.kill(child.pid, signal_number)
    return [child.wait() for child in children]
