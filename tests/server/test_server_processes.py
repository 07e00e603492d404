"""`settlement serve` with several processes on one port: the supervisor replaces a child that dies,
refuses a port another server holds, and takes its children with it when it is killed."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from settlement.cli import EXIT_FAILED, EXIT_OK
from settlement.storage.engine import make_engines, sqlite_url
from settlement.storage.migrate import upgrade

REPOSITORY = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 30.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def server_pids(log: Path) -> list[int]:
    """The server processes, in the order they started listening (each log line carries its pid)."""
    return [int(pid) for pid in re.findall(r"runtime\[(\d+)\] settlement server listening", log.read_text())]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    database = sqlite_url(tmp_path / "settlement.db")
    engines = make_engines(database)
    upgrade(engines.writer)
    engines.dispose()
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("SETTLEMENT_")}
    return {
        **inherited,
        "SETTLEMENT_DATABASE_URL": database,
        "SETTLEMENT_DATA_DIR": str(tmp_path),
        "SETTLEMENT_POLICIES": str(REPOSITORY / "policies"),
        "SETTLEMENT_DEV_MODE": "true",
        "SETTLEMENT_LISTEN": "127.0.0.1:0",
        "SETTLEMENT_PROCESSES": "2",
        "SETTLEMENT_DRAIN_NOTICE_SECONDS": "0",
        "SETTLEMENT_HEALTH_POLL_INTERVAL_MS": "50",
    }


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], tuple[subprocess.Popen[str], Path]]]:
    started: list[subprocess.Popen[str]] = []

    def start(environment: dict[str, str]) -> tuple[subprocess.Popen[str], Path]:
        log = tmp_path / f"serve-{len(started)}.log"
        with log.open("w") as file:
            process = subprocess.Popen(
                [sys.executable, "-m", "settlement.cli", "serve"],
                cwd=REPOSITORY, env=environment, stdout=file, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        started.append(process)
        return process, log

    yield start
    for process in started:
        for child in children_of(process.pid):
            os.kill(child, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_child_that_dies_is_replaced_and_sigterm_stops_them_all_with_exit_0(
    environment: dict[str, str], serve: Callable[[dict[str, str]], tuple[subprocess.Popen[str], Path]]
) -> None:
    supervisor, log = serve(environment)
    wait_for(lambda: len(server_pids(log)) == 2, "two listening processes")
    first, second = server_pids(log)

    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(server_pids(log)) == 3, "a replacement process listening")
    replaced = children_of(supervisor.pid)
    supervisor.send_signal(signal.SIGTERM)
    code = supervisor.wait(timeout=WAIT_SECONDS)

    assert f"(pid {first}) exited with -9; starting another" in log.read_text()
    assert second in replaced
    assert first not in replaced
    assert code == EXIT_OK
    assert not any(alive(child) for child in replaced)


@pytest.mark.slow
def test_a_port_another_server_holds_is_refused_by_name(
    environment: dict[str, str], serve: Callable[[dict[str, str]], tuple[subprocess.Popen[str], Path]]
) -> None:
    with socket.socket() as other_server:
        other_server.bind(("127.0.0.1", 0))
        other_server.listen()
        port = other_server.getsockname()[1]
        supervisor, log = serve({**environment, "SETTLEMENT_LISTEN": f"127.0.0.1:{port}"})
        code = supervisor.wait(timeout=WAIT_SECONDS)

    assert code == EXIT_FAILED
    assert f"cannot listen on 127.0.0.1:{port}" in log.read_text()


@pytest.mark.slow
def test_children_stop_when_their_supervisor_is_killed(
    environment: dict[str, str], serve: Callable[[dict[str, str]], tuple[subprocess.Popen[str], Path]]
) -> None:
    supervisor, log = serve(environment)
    wait_for(lambda: len(server_pids(log)) == 2, "two listening processes")
    children = children_of(supervisor.pid)

    supervisor.kill()
    supervisor.wait()

    wait_for(lambda: not any(alive(child) for child in children), "the children to stop")
