"""The README's run command works: scripts/demo.sh sets up, serves, plays a visit, closes the day, stops."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_TIMEOUT_SECONDS = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_the_demo_script_runs_a_visit_end_to_end_and_stops_cleanly(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "SETTLEMENT_DATA_DIR": str(tmp_path / "demo"),
        "SETTLEMENT_LISTEN": f"127.0.0.1:{free_port()}",
        "SETTLEMENT_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
    }
    environment.pop("SETTLEMENT_DATABASE_URL", None)
    finished = subprocess.run(
        [str(ROOT / "scripts" / "demo.sh")],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
        check=False,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-4000:]
    assert "retry of the same request_id returned the same settlement: True" in output
    assert "settlement ledger check: OK" in output
    assert "stopped" in output
    assert "A33010001" not in output  # the card number only ever appears masked
