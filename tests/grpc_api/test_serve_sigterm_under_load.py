"""SIGTERM to `settlement serve` under load: the process drains and exits 0, and every settle a terminal was
answered OK for is in the database exactly once, with a ledger that still checks.

Everything as an operator does it: certificates from ``settlement.server.pki``, the database prepared with
the CLI (``db upgrade``, ``hospitals import``, ``enrol import`` of the demo data), the server started as
a subprocess on a free port with mTLS, terminals settling from several threads, each on its own channel.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from identifier_scan import identifiers_in
from sqlalchemy import select

from settlement.api.gen.clinic.settlement.v1 import charge_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
from settlement.domain import Category
from settlement.server import pki
from settlement.service.clock import CHINA_STANDARD_TIME
from settlement.service.policy_book import PolicyBook
from settlement.storage import tables as t
from settlement.storage.engine import make_engines

REPOSITORY = Path(__file__).resolve().parents[2]
POLICIES = REPOSITORY / "policies"
DEMO = REPOSITORY / "demo"
HOSPITAL = "H33010800045"  # demo: a community centre in Hangzhou (330100), no card proof required
TERMINAL = "H33010800045D01"
REGION = "330100"
TERMINALS = 6
# With two processes on the port the kernel spreads connections by a hash: with 16 the chance that one
# process gets none is 2 in 65,536, with 6 it was 1 in 32.
TERMINALS_SHARING_A_PORT = 16
ACKS_BEFORE_SIGTERM = 60
STARTUP_SECONDS = 30.0
EXIT_SECONDS = 60.0
CALL_TIMEOUT_SECONDS = 20.0
DRAIN_NOTICE_SECONDS = 0.5  # settles keep being accepted this long after SIGTERM
CLI_TIMEOUT_SECONDS = 120.0
UNANSWERED = {"UNAVAILABLE", "CANCELLED"}


def settlement_cli(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "settlement.cli", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def prepared_with_the_cli(database_url: str, directory: Path) -> None:
    for arguments in (
        ("db", "upgrade"),
        ("hospitals", "import", str(DEMO / "hospitals.toml"), "--policies", str(POLICIES)),
        ("enrol", "import", str(DEMO / "enrolment.csv"), "--insecure-demo-key", "--policies", str(POLICIES)),
    ):
        done = settlement_cli(*arguments, "--database", database_url, cwd=directory)
        assert done.returncode == 0, f"settlement {' '.join(arguments)}: {done.stdout}{done.stderr}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Patient:
    person_number: str
    card_number: str


def demo_patients() -> list[Patient]:
    """The demo's insured persons of the hospital's region whose cards are active."""
    with (DEMO / "enrolment.csv").open(encoding="utf-8", newline="") as file:
        return [
            Patient(row["person_number"], row["card_number"])
            for row in csv.DictReader(file)
            if row["region"] == REGION and row["card_status"] == "active"
        ]


def charge_lines() -> list[charge_pb2.ChargeLine]:
    catalogue = PolicyBook.load(POLICIES).regions[REGION].catalogue.items
    a = next(code for code, item in catalogue.items() if item.category is Category.A)
    b = next(code for code, item in catalogue.items() if item.category is Category.B)
    return [
        charge_pb2.ChargeLine(hospital_line_id="1", item_code=a, quantity="1", unit_price_yuan="12.00"),
        charge_pb2.ChargeLine(hospital_line_id="2", item_code=b, quantity="1", unit_price_yuan="8.50"),
    ]


@dataclass
class Load:
    """What the terminals saw: request ids sent, answered OK (and when), and every refusal."""

    sigterm_sent_at: float | None = None
    sent: list[str] = field(default_factory=list)
    acknowledged: list[tuple[str, float]] = field(default_factory=list)
    refused: list[tuple[str, float]] = field(default_factory=list)  # (status code name, when)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledged_ids(self) -> list[str]:
        with self.lock:
            return [request_id for request_id, _ in self.acknowledged]


def terminal_loop(channel: grpc.Channel, patient: Patient, visit_date: str, load: Load) -> None:
    """Settle one visit after another until the server stops answering after SIGTERM."""
    stub = pb_grpc.SettlementServiceStub(channel)
    lines = charge_lines()
    while not load.stop.is_set():
        request = pb.SettleRequest(
            request_id=str(uuid.uuid4()),
            hospital_id=HOSPITAL,
            person_number=patient.person_number,
            card_number=patient.card_number,
            visit_type=charge_pb2.VISIT_TYPE_OUTPATIENT,
            visit_date=visit_date,
            use_account=charge_pb2.ACCOUNT_USE_PAY,
            lines=lines,
        )
        with load.lock:
            load.sent.append(request.request_id)
        try:
            stub.Settle(request, metadata=(("operator-id", "doctor-1"),), timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            with load.lock:
                load.refused.append((error.code().name, time.monotonic()))
            if load.sigterm_sent_at is not None:
                return  # the server is going away: this terminal stops
            continue
        with load.lock:
            load.acknowledged.append((request.request_id, time.monotonic()))


@dataclass(frozen=True)
class ServerFiles:
    ca: Path
    terminal_cert: Path
    terminal_key: Path
    environment: dict[str, str]


def server_files(directory: Path, database_url: str, port: int) -> ServerFiles:
    pki_dir = directory / "pki"
    pki.init_authority(pki_dir)
    cert, key = pki.issue_server(pki_dir, ["localhost", "127.0.0.1"])
    terminal_cert, terminal_key = pki.issue_terminal(pki_dir, HOSPITAL, TERMINAL)
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("SETTLEMENT_")}
    environment = {
        **inherited,
        "SETTLEMENT_LISTEN": f"127.0.0.1:{port}",
        "SETTLEMENT_DATABASE_URL": database_url,
        "SETTLEMENT_DATA_DIR": str(directory / "data"),
        "SETTLEMENT_POLICIES": str(POLICIES),
        "SETTLEMENT_TLS_CERT": str(cert),
        "SETTLEMENT_TLS_KEY": str(key),
        "SETTLEMENT_TLS_CLIENT_CA": str(pki_dir / pki.CA_CERT),
        "SETTLEMENT_DRAIN_NOTICE_SECONDS": str(DRAIN_NOTICE_SECONDS),
        "SETTLEMENT_DRAIN_GRACE_SECONDS": "20",
        "SETTLEMENT_HEALTH_POLL_INTERVAL_MS": "100",
        "PYTHONUNBUFFERED": "1",
    }
    return ServerFiles(pki_dir / pki.CA_CERT, terminal_cert, terminal_key, environment)


def mtls_channel(files: ServerFiles, port: int) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=files.ca.read_bytes(),
        private_key=files.terminal_key.read_bytes(),
        certificate_chain=files.terminal_cert.read_bytes(),
    )
    # Its own connection, as a desk has: channels in one process may otherwise share one.
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=[("grpc.use_local_subchannel_pool", 1)])


def wait_until_serving(channel: grpc.Channel, server: subprocess.Popen[str]) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert server.poll() is None, f"settlement serve exited with {server.returncode} before serving"
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == serving:
                return
        except grpc.RpcError:
            pass  # not listening yet
        time.sleep(0.1)
    raise AssertionError(f"settlement serve was not SERVING within {STARTUP_SECONDS} s")


def written_request_ids(database_url: str) -> list[str]:
    engines = make_engines(database_url)
    try:
        with engines.reader.connect() as connection:
            return [
                str(request_id)
                for request_id in connection.execute(
                    select(t.settlements.c.request_id).where(t.settlements.c.hospital_id == HOSPITAL)
                ).scalars()
            ]
    finally:
        engines.dispose()


def assert_every_acknowledged_settle_written_once(database_url: str, load: Load, directory: Path) -> None:
    written = written_request_ids(database_url)
    acknowledged = load.acknowledged_ids()
    assert len(acknowledged) == len(set(acknowledged))
    assert len(written) == len(set(written)), "a request was settled twice"
    assert set(acknowledged) <= set(written), "an acknowledged settlement is missing from the database"
    assert set(written) <= set(load.sent), "the database holds a settlement no terminal asked for"
    checked = settlement_cli("ledger", "check", "--database", database_url, cwd=directory)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def wait_until_listening(server_log: Path, processes: int, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while server_log.read_text(encoding="utf-8").count("settlement server listening") < processes:
        assert server.poll() is None, f"settlement serve exited with {server.returncode} before listening"
        assert time.monotonic() < deadline, f"not all {processes} server processes listened"
        time.sleep(0.05)


def wait_for_replacement(server_log: Path, victim: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while f"(pid {victim}) exited with -9; starting another" not in server_log.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, "the killed server process was not replaced"
        time.sleep(0.05)


def wait_for_acknowledgements(load: Load, count: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while len(load.acknowledged_ids()) < count:
        assert time.monotonic() < deadline, f"the load stalled: {load.refused[-5:]}"
        time.sleep(0.02)


@pytest.fixture
def server_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "serve.log"
    yield path
    # What the server process logged never reaches this session's log scan: scan it here.
    if path.exists():
        logged = path.read_text(encoding="utf-8")
        assert list(identifiers_in(logged)) == [], "settlement serve logged a full citizen ID or card number"


@contextmanager
def serving_under_load(
    database_url: str, directory: Path, server_log: Path, processes: int
) -> Iterator[tuple[subprocess.Popen[str], Load]]:
    """`settlement serve` prepared with the CLI, its terminals settling on their own channels; on leaving,
    the load stops and a server still running is killed."""
    prepared_with_the_cli(database_url, directory)
    port = free_port()
    files = server_files(directory, database_url, port)
    files.environment["SETTLEMENT_PROCESSES"] = str(processes)
    visit_date = dt.datetime.now(CHINA_STANDARD_TIME).date().isoformat()
    count = TERMINALS if processes == 1 else TERMINALS_SHARING_A_PORT
    patients = [demo_patients()[n % TERMINALS] for n in range(count)]  # two desks may see one patient
    load = Load()
    with server_log.open("w", encoding="utf-8") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "settlement.cli", "serve"],
            cwd=directory, env=files.environment, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    channels = [mtls_channel(files, port) for _ in range(count)]
    terminals = [
        threading.Thread(target=terminal_loop, args=(channel, patient, visit_date, load), daemon=True)
        for channel, patient in zip(channels, patients, strict=True)
    ]
    try:
        wait_until_listening(server_log, processes, server)  # connections made earlier all go to the first
        wait_until_serving(channels[0], server)
        for terminal in terminals:
            terminal.start()
        wait_for_acknowledgements(load, ACKS_BEFORE_SIGTERM)
        yield server, load
        load.stop.set()
        for terminal in terminals:
            terminal.join(timeout=CALL_TIMEOUT_SECONDS)
    finally:
        load.stop.set()
        if server.poll() is None:
            server.kill()
            server.wait()
        for channel in channels:
            channel.close()


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2], ids=["one process", "two processes sharing the port"])
def test_sigterm_mid_load_drains_exits_0_and_loses_no_acknowledged_settle(
    database_url: str, tmp_path: Path, server_log: Path, processes: int
) -> None:
    with serving_under_load(database_url, tmp_path, server_log, processes) as (server, load):
        load.sigterm_sent_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=EXIT_SECONDS)

    logged = server_log.read_text(encoding="utf-8")
    assert exit_code == 0, logged[-3000:]
    assert logged.count("received SIGTERM") == (1 if processes == 1 else 1 + processes)  # the supervisor too
    answering = set(re.findall(r"settlement\.rpc\[(\d+)\] rpc method=\S+/Settle outcome=OK", logged))
    assert len(answering) == processes, "each server process answered settles"
    sigterm_at = load.sigterm_sent_at
    assert sigterm_at is not None
    assert any(at > sigterm_at for _, at in load.acknowledged), "no settle was answered while draining"
    assert [code for code, at in load.refused if at < sigterm_at] == [], "refusals before SIGTERM"
    # A call arriving as the listener stops is CANCELLED by gRPC, later ones find the port closed: both are
    # "no answer", which a terminal retries with the same request_id; either way at most one settlement.
    assert {code for code, _ in load.refused} <= UNANSWERED, (
        "after SIGTERM a call is answered or not at all; refusals (code, seconds after SIGTERM): "
        f"{[(code, round(at - sigterm_at, 2)) for code, at in load.refused]}; the server's log, less its "
        f"OK lines, ends: {_unusual_lines(logged)[-3000:]}"
    )
    assert_every_acknowledged_settle_written_once(database_url, load, tmp_path)


@pytest.mark.slow
def test_kill_9_of_one_of_two_server_processes_mid_load_loses_no_acknowledged_settle(
    database_url: str, tmp_path: Path, server_log: Path
) -> None:
    with serving_under_load(database_url, tmp_path, server_log, 2) as (server, load):
        victim = int(re.findall(r"runtime\[(\d+)\] settlement server listening", server_log.read_text())[0])
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)  # mid-commit or not: whatever it held is rolled back
        wait_for_replacement(server_log, victim)
        wait_for_acknowledgements(load, 2 * ACKS_BEFORE_SIGTERM)  # the survivor and the replacement serve on
        load.sigterm_sent_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=EXIT_SECONDS)

    logged = server_log.read_text(encoding="utf-8")
    assert exit_code == 0, logged[-3000:]
    assert f"(pid {victim}) exited with -9; starting another" in logged
    assert [code for code, at in load.refused if at < killed_at] == [], "refusals before the kill"
    assert {code for code, _ in load.refused} <= UNANSWERED, "a call is answered or not at all"
    assert_every_acknowledged_settle_written_once(database_url, load, tmp_path)


def _unusual_lines(logged: str) -> str:
    """The server log without its per-call OK lines: what to read when a drain went wrong."""
    return "\n".join(line for line in logged.splitlines() if "outcome=OK" not in line)
