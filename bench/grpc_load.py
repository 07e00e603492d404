"""gRPC load generator: N desk terminals, each on its own mTLS channel with its own terminal certificate,
playing a realistic mix against ``settlement serve``, beside an empty-RPC baseline on the same server.

    .venv/bin/python bench/grpc_load.py                                # 32 terminals, 10 s, own server on SQLite
    .venv/bin/python bench/grpc_load.py --terminals 8 --seconds 30 --store postgres --json figures.json
    .venv/bin/python bench/grpc_load.py --card-proof                   # every settle signed by a virtual card
    .venv/bin/python bench/grpc_load.py --server-env SETTLEMENT_PROCESSES=2         # try a server setting
    .venv/bin/python bench/grpc_load.py --target 127.0.0.1:50051 --pki data/demo/pki --seconds 5

Own server (the default): in a temporary folder it runs ``settlement db upgrade``, ``settlement hospitals
import`` (a bench hospital in region 330100 with N desk terminals), ``settlement enrol import`` of both
demo files (``demo/*.csv``: 306 persons with active cards), ``settlement pki init`` / ``issue-server`` and
issues one terminal certificate per terminal (the library call behind ``settlement pki issue-terminal``,
to spare N interpreter starts), then starts ``settlement serve`` in mTLS mode with the production limits
(one process, 256 concurrent RPCs, 2 ms group-commit window), logging one line per RPC to a file as in
production. SQLite is a file in that folder; PostgreSQL a throwaway database on 127.0.0.1:5432
(``--postgres-admin``). Afterwards it stops the server with SIGTERM and runs ``settlement ledger check``
on what the load wrote.

A running server (``--target`` with ``--pki DIR``): every ``DIR/terminals/<hospital>/<terminal>.crt`` is a
terminal (cycled when there are fewer certificates than ``--terminals``; each terminal still opens its own
channel); they must be registered in that server's database, and the persons of ``--persons`` enrolled.
A terminal whose hospital answers CARD_PROOF_REQUIRED switches to card-present settles.

Each terminal loops over its own share of the persons (so no card is used by two terminals). Per turn:
a visit (86 %) — ``Quote`` then ``Settle`` of the same 8-line outpatient charge (``--quote-percent``
lowers the share quoted first), and 5 % of the settled visits are then cancelled (``CancelSettlement``)
— or a read: ``GetAccount`` (7 %), ``GetSettlement`` of a recent settle (5 %), ``ListSettlements`` of a
person's day (2 %). With ``--card-proof`` (or when the hospital requires it) the patient's card is a
virtual card (cardio's applet, real APDUs, in process) that signs the quoted total for the terminal, as
at a desk.

Phases, on every terminal at once: warm-up (``--warmup-seconds``, the mix, discarded), baseline
(``--baseline-seconds``: the standard health ``Check`` RPC, which passes the same interceptors — identity,
metrics, status mapping — so it is the ceiling Python gRPC itself sets on this stack), then the measured
mix (``--seconds``). Terminals run as tasks on one event loop per client process (``--processes``).

Prints per method: calls, calls/s, p50/p99/p99.9 latency (ms, answered calls) and refusals, then settles/s
÷ empty calls/s, the CPU the server and the load generator used, and the server's commit batching; as
a table and, with ``--json FILE``, as JSON. Target (issue 4, 2-core machine, server and load generator on
it together): at 32 terminals on SQLite, >= 1,200 settles/s with p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import math
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, text

from cardio.applet import CardPersonalisation, CitizenCardApplet
from cardio.card_crypto import GenerateAcRequest
from cardio.citizen_card import CitizenCard, read_citizen_card
from cardio.fake_reader import ScriptedCardReader
from cardio.protocol import CardHolder, CardIdentification
from cardio.reader import ApduExchange
from settlement import limits
from settlement.api.gen.clinic.settlement.v1 import charge_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
from settlement.server.identity import terminal_of_certificate
from settlement.server.pki import issue_terminal
from settlement.server.status import error_info_of
from settlement.service.clock import CHINA_STANDARD_TIME
from settlement.storage.engine import sqlite_url
from settlement.terminal.calls import signed_date

ROOT = Path(__file__).resolve().parents[1]

# ---- limits and the mix (units in the names) --------------------------------------------------------
DEFAULT_TERMINALS = 32
MAX_TERMINALS = 999  # terminal ids HBENCH0001T001..T999 stay within the 16 characters a card signs
DEFAULT_SECONDS = 10.0
CALL_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 15.0
SERVER_START_TIMEOUT_SECONDS = 60.0
SERVER_STOP_TIMEOUT_SECONDS = 60.0
VISIT_PERCENT, GET_ACCOUNT_PERCENT, GET_SETTLEMENT_PERCENT = 86, 7, 5  # the rest: ListSettlements
CANCEL_PERCENT_OF_SETTLED = 5
RECENT_SETTLEMENTS = 16  # per terminal, for GetSettlement and cancels
LIST_PAGE_SIZE = 20
TARGET_SETTLES_PER_SECOND = 1200
TARGET_SETTLE_P99_MS = 50.0
METHODS = ("Quote", "Settle", "CancelSettlement", "GetAccount", "GetSettlement", "ListSettlements")
BASELINE = "Health/Check"
PERCENTILE_KEYS = ("p50_ms", "p99_ms", "p99_9_ms")

BENCH_HOSPITAL = "HBENCH0001"
BENCH_REGION = "330100"
DEMO_PERSONS = (ROOT / "demo" / "enrolment.csv", ROOT / "demo" / "clinic-morning-enrolment.csv")
DEMO_ISSUER = ("demo-issuer-1", "000102030405060708090a0b0c0d0e0f")  # published: demo cards only
DEMO_PIN = "123456"
POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# An 8-line outpatient visit, as a desk sends it: catalogue code, quantity, unit price (yuan).
VISIT_LINES = (
    ("001102000010000-110200001", "1", "20"),  # consultation, A
    ("002501020350000-250102035", "1", "20"),  # full blood count, A
    ("XJ01CAA040A001010100483", "24", "0.45"),  # amoxicillin, A
    ("ZA01BAL0301010203964", "24", "0.55"),  # Lianhua Qingwen, B
    ("XC10AAA128A001010203146", "28", "2.10"),  # atorvastatin above its price ceiling, B
    ("XA02BCA211A012010104117", "14", "1.20"),  # omeprazole, B
    ("XA11GAW017A001010104602", "10", "1.50"),  # vitamin C, C
    ("C0414020000000101153", "2", "8.50"),  # cold pack, C
)


# ---- what a worker process is given ------------------------------------------------------------------


@dataclass(frozen=True)
class TerminalSpec:
    hospital_id: str
    terminal_id: str
    cert_file: str
    key_file: str


@dataclass(frozen=True)
class Person:
    person_number: str
    card_number: str
    citizen_id: str
    name: str
    region: str


@dataclass(frozen=True)
class WorkerPlan:
    target: str
    ca_file: str
    server_name: str
    terminals: list[tuple[TerminalSpec, list[Person]]]
    card_proof: bool
    quote_percent: int
    today: str
    warmup_seconds: float
    baseline_seconds: float
    mix_seconds: float
    seed: int


@dataclass
class Tally:
    """One worker's results: latencies of answered calls and refusals, by phase and method."""

    latencies: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    refusals: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    def answered(self, phase: str, method: str, seconds: float) -> None:
        self.latencies.setdefault(phase, {}).setdefault(method, []).append(seconds)

    def refused(self, phase: str, method: str, reason: str) -> None:
        by_reason = self.refusals.setdefault(phase, {}).setdefault(method, {})
        by_reason[reason] = by_reason.get(reason, 0) + 1

    def merge(self, other: Tally) -> None:
        for phase, latencies in other.latencies.items():
            for method, values in latencies.items():
                self.latencies.setdefault(phase, {}).setdefault(method, []).extend(values)
        for phase, refusals in other.refusals.items():
            for method, reasons in refusals.items():
                for reason, count in reasons.items():
                    mine = self.refusals.setdefault(phase, {}).setdefault(method, {})
                    mine[reason] = mine.get(reason, 0) + count


# ---- one terminal ----------------------------------------------------------------------------------


class Terminal:
    """A desk: its channel, its patients (and their virtual cards), its recent settlements."""

    def __init__(self, spec: TerminalSpec, persons: list[Person], plan: WorkerPlan, index: int) -> None:
        options: list[tuple[str, Any]] = [
            # Each terminal its own connection, as separate desks have (gRPC would share one otherwise).
            ("grpc.use_local_subchannel_pool", 1),
            # Measure the server: no transparent retries hiding a refused or reset call.
            ("grpc.enable_retries", 0),
        ]
        if plan.server_name:
            options.append(("grpc.ssl_target_name_override", plan.server_name))
        credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(plan.ca_file).read_bytes(),
            private_key=Path(spec.key_file).read_bytes(),
            certificate_chain=Path(spec.cert_file).read_bytes(),
        )
        self.channel = grpc.aio.secure_channel(plan.target, credentials, options=options)
        self.stub = pb_grpc.SettlementServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.spec = spec
        self.persons = persons
        self.plan = plan
        self.metadata = (("operator-id", f"bench-{index:03d}"),)
        self.card_proof = plan.card_proof
        self.random = random.Random(plan.seed * 1_000_003 + index)
        self.recent: deque[str] = deque(maxlen=RECENT_SETTLEMENTS)
        self.cards: dict[str, VirtualCard] = {}
        self._next_person = 0

    async def connect(self) -> None:
        await asyncio.wait_for(self.channel.channel_ready(), timeout=CONNECT_TIMEOUT_SECONDS)

    async def run(self, start: float, tally: Tally) -> None:
        warm_end = start + self.plan.warmup_seconds
        baseline_end = warm_end + self.plan.baseline_seconds
        end = baseline_end + self.plan.mix_seconds
        while (now := time.monotonic()) < end:
            if now < warm_end:
                await self.turn("warmup", tally)
            elif now < baseline_end:
                await self.check(tally)
            else:
                await self.turn("mix", tally)

    async def check(self, tally: Tally) -> None:
        await self._call(tally, "baseline", BASELINE, self.health.Check, health_pb2.HealthCheckRequest(service=""))

    async def turn(self, phase: str, tally: Tally) -> None:
        roll = self.random.randrange(100)
        person = self.persons[self._next_person % len(self.persons)]
        self._next_person += 1
        hospital_id = self.spec.hospital_id
        if roll < VISIT_PERCENT:
            await self.visit(phase, person, tally)
        elif roll < VISIT_PERCENT + GET_ACCOUNT_PERCENT or not self.recent:
            request = pb.GetAccountRequest(
                hospital_id=hospital_id, person_number=person.person_number, card_number=person.card_number
            )
            await self._call(tally, phase, "GetAccount", self.stub.GetAccount, request)
        elif roll < VISIT_PERCENT + GET_ACCOUNT_PERCENT + GET_SETTLEMENT_PERCENT:
            request_get = pb.GetSettlementRequest(hospital_id=hospital_id, settlement_id=self.recent[-1])
            await self._call(tally, phase, "GetSettlement", self.stub.GetSettlement, request_get)
        else:
            request_list = pb.ListSettlementsRequest(
                hospital_id=hospital_id, person_number=person.person_number, start_date=self.plan.today,
                end_date=self.plan.today, page_size=LIST_PAGE_SIZE,
            )
            await self._call(tally, phase, "ListSettlements", self.stub.ListSettlements, request_list)

    async def visit(self, phase: str, person: Person, tally: Tally) -> None:
        fields: dict[str, Any] = {
            "hospital_id": self.spec.hospital_id,
            "person_number": person.person_number,
            "card_number": person.card_number,
            "visit_type": charge_pb2.VISIT_TYPE_OUTPATIENT,
            "visit_date": self.plan.today,
            "use_account": charge_pb2.ACCOUNT_USE_PAY,
            "lines": [
                charge_pb2.ChargeLine(hospital_line_id=str(n), item_code=code, quantity=quantity, unit_price_yuan=price)
                for n, (code, quantity, price) in enumerate(VISIT_LINES, start=1)
            ],
        }
        request = pb.SettleRequest(request_id=str(uuid.uuid4()), **fields)
        if self.card_proof or self.random.randrange(100) < self.plan.quote_percent:
            quote, _ = await self._call(tally, phase, "Quote", self.stub.Quote, pb.QuoteRequest(**fields))
            if quote is None:
                return
            if self.card_proof:
                request.card_proof.CopyFrom(self._sign(person, quote))
        settled, reason = await self._call(tally, phase, "Settle", self.stub.Settle, request)
        if reason == "CARD_PROOF_REQUIRED":
            self.card_proof = True  # this hospital wants card-present settles from desks: from now on
        elif reason == "COUNTER_NOT_INCREASED":
            self._card_of(person).applet.card.counter += 1_000  # a server that saw this card before: move past
        if settled is None:
            return
        self.recent.append(settled.settlement.settlement_id)
        if self.random.randrange(100) < CANCEL_PERCENT_OF_SETTLED:
            cancel = pb.CancelSettlementRequest(
                request_id=str(uuid.uuid4()), hospital_id=self.spec.hospital_id,
                settlement_id=settled.settlement.settlement_id,
            )
            await self._call(tally, phase, "CancelSettlement", self.stub.CancelSettlement, cancel)

    def _sign(self, person: Person, quote: Any) -> Any:
        """The card signs the quoted total for this terminal against the quote's challenge."""
        signed = self._card_of(person).card.generate_ac(
            GenerateAcRequest(
                amount_fen=quote.split.total_fen, transaction_date=signed_date(quote),
                unpredictable_number=quote.unpredictable_number, terminal_id=self.spec.terminal_id,
            )
        )
        return charge_pb2.CardProof(
            card_number=person.card_number, transaction_counter=signed.counter, cryptogram=signed.cryptogram,
            quote_id=quote.quote_id,
        )

    def _card_of(self, person: Person) -> VirtualCard:
        """The patient's virtual card, inserted and read with its PIN once; it then signs each visit."""
        if person.card_number in self.cards:
            return self.cards[person.card_number]
        born = dt.date(int(person.citizen_id[6:10]), int(person.citizen_id[10:12]), int(person.citizen_id[12:14]))
        applet = CitizenCardApplet(
            CardPersonalisation(
                identification=CardIdentification(bytes.fromhex(person.region + "00" * 13), "3.00", person.card_number),
                holder=CardHolder(person.citizen_id, person.name, "1", born),
                pin=DEMO_PIN,
                master_key=bytes.fromhex(DEMO_ISSUER[1]),
            )
        )
        reader = ScriptedCardReader(["Bench Reader 00 00"])
        reader.insert("Bench Reader 00 00", applet.process)
        exchange = ApduExchange(reader.connect("Bench Reader 00 00"))
        read_citizen_card(exchange, DEMO_PIN)
        self.cards[person.card_number] = VirtualCard(applet, CitizenCard(exchange))
        return self.cards[person.card_number]

    async def _call(
        self, tally: Tally, phase: str, method: str, rpc: Callable[..., Any], request: Any
    ) -> tuple[Any, str | None]:
        """One timed call: (reply, None), or (None, reason) when refused — the ErrorInfo reason, else the
        status code — tallied either way."""
        started = time.perf_counter()
        try:
            reply = await rpc(request, metadata=self.metadata, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            info = error_info_of(error)
            reason = str(info.reason) if info is not None else str(error.code().name)
            tally.refused(phase, method, reason)
            return None, reason
        tally.answered(phase, method, time.perf_counter() - started)
        return reply, None


@dataclass
class VirtualCard:
    applet: CitizenCardApplet  # its counter moves on with every signature
    card: CitizenCard  # the desk's view of it, PIN verified


def worker_main(plan: WorkerPlan, ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """A client process: connect every terminal, report ready, wait for the common start, run, report."""
    asyncio.run(_worker(plan, ready, go, start_at, results))


async def _worker(plan: WorkerPlan, ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """The terminals as tasks on one event loop: a desk waits for its reply and nothing else, and the load
    generator spends its CPU on calls rather than on switching between 32 threads."""
    terminals = [Terminal(spec, persons, plan, index) for index, (spec, persons) in enumerate(plan.terminals)]
    try:
        try:
            await asyncio.gather(*(terminal.connect() for terminal in terminals))
        except Exception as error:
            ready.put(f"connect failed: {type(error).__name__}: {error}")
            return
        ready.put("ready")
        await asyncio.to_thread(go.wait)
        tallies = [Tally() for _ in terminals]
        await asyncio.gather(
            *(terminal.run(start_at.value, tally) for terminal, tally in zip(terminals, tallies, strict=True))
        )
        total = Tally()
        for tally in tallies:
            total.merge(tally)
        results.put(asdict(total))
    finally:
        for terminal in terminals:
            await terminal.channel.close(None)


# ---- the server: our own, prepared with the CLI, or a running one -----------------------------------------


@dataclass
class Server:
    target: str
    ca_file: Path
    terminals: list[TerminalSpec]
    process: subprocess.Popen[bytes] | None = None
    log_file: Path | None = None
    database_url: str = ""
    metrics_urls: tuple[str, ...] = ()  # one per server process
    description: str = ""


def settlement_cli(*args: str, env: dict[str, str]) -> str:
    finished = subprocess.run(
        [sys.executable, "-m", "settlement.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if finished.returncode != 0:
        raise RuntimeError(f"settlement {' '.join(args)} failed:\n{finished.stdout}{finished.stderr}")
    return finished.stdout


@contextmanager
def own_server(args: argparse.Namespace, folder: Path) -> Iterator[Server]:
    database_url, pg_name = _fresh_database(args.store, folder, args.postgres_admin)
    pki = folder / "pki"
    env = {
        **os.environ,
        "SETTLEMENT_DATA_DIR": str(folder),
        "SETTLEMENT_DATABASE_URL": database_url,
        "SETTLEMENT_POLICIES": str(ROOT / "policies"),
        "SETTLEMENT_LISTEN": "127.0.0.1:0",
        "SETTLEMENT_METRICS_LISTEN": "127.0.0.1:0",
        "SETTLEMENT_DEV_MODE": "false",
        "SETTLEMENT_REFLECTION": "false",
        "SETTLEMENT_TLS_CERT": str(pki / "server.crt"),
        "SETTLEMENT_TLS_KEY": str(pki / "server.key"),
        "SETTLEMENT_TLS_CLIENT_CA": str(pki / "ca.crt"),
        "SETTLEMENT_ISSUER_KEYS": "=".join(DEMO_ISSUER),
        "SETTLEMENT_DRAIN_NOTICE_SECONDS": "0",
    }
    for setting in args.server_env:
        name, _, value = setting.partition("=")
        env[name] = value
    hospitals = folder / "bench-hospital.toml"
    hospitals.write_text(_bench_hospital_toml(args.terminals, card_proof=args.card_proof), encoding="utf-8")
    print(f"preparing: {args.store} database, a hospital with {args.terminals} desks, demo persons, PKI", flush=True)
    settlement_cli("db", "upgrade", env=env)
    settlement_cli("hospitals", "import", str(hospitals), env=env)
    for path in DEMO_PERSONS:
        settlement_cli("enrol", "import", str(path), "--insecure-demo-key", env=env)
    settlement_cli("pki", "init", "--dir", str(pki), env=env)
    settlement_cli("pki", "issue-server", "--dir", str(pki), "--name", "localhost", "--name", "127.0.0.1", env=env)
    terminals = []
    for n in range(1, args.terminals + 1):
        cert, key = issue_terminal(pki, BENCH_HOSPITAL, _bench_terminal_id(n))
        terminals.append(TerminalSpec(BENCH_HOSPITAL, _bench_terminal_id(n), str(cert), str(key)))
    log_file = folder / "server.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "settlement.cli", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    try:
        server_processes = int(env.get("SETTLEMENT_PROCESSES", str(limits.SERVER_PROCESSES)))
        port, metrics_ports = _wait_for_server(process, log_file, server_processes)
        window = env.get("SETTLEMENT_GROUP_COMMIT_WINDOW_MS", str(limits.GROUP_COMMIT_WINDOW_MS))
        yield Server(
            f"127.0.0.1:{port}", pki / "ca.crt", terminals, process, log_file, database_url,
            tuple(f"http://127.0.0.1:{metrics_port}/metrics" for metrics_port in metrics_ports),
            f"own server: settlement serve, mTLS, {args.store}, {server_processes} process(es), "
            f"one event loop each, group commit window {window} ms",
        )
    finally:
        _stop(process)
        if pg_name:
            _drop_database(args.postgres_admin, pg_name)


def running_server(args: argparse.Namespace) -> Server:
    terminals = []
    for cert in sorted((args.pki / "terminals").glob("*/*.crt")):
        named = terminal_of_certificate(cert.read_bytes())
        if named is not None:
            key = cert.with_suffix(".key")
            terminals.append(TerminalSpec(named.hospital_id, named.terminal_id, str(cert), str(key)))
    if not terminals:
        raise SystemExit(f"no terminal certificates under {args.pki / 'terminals'}")
    return Server(args.target, args.pki / "ca.crt", terminals, description=f"running server at {args.target}")


def _wait_for_server(process: subprocess.Popen[bytes], log_file: Path, processes: int) -> tuple[int, list[int]]:
    """The port and each server process's metrics port, once every process said SERVING."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        text = log_file.read_text(encoding="utf-8", errors="replace")
        found = re.findall(r"listening on 127\.0\.0\.1:(\d+) .* metrics 127\.0\.0\.1:(\d+)", text)
        if len(found) >= processes and text.count("health SERVING") >= processes:
            return int(found[0][0]), [int(metrics) for _, metrics in found]
        if process.poll() is not None:
            raise RuntimeError(f"settlement serve exited with {process.returncode}:\n{text[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"settlement serve did not become SERVING in {SERVER_START_TIMEOUT_SECONDS} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SERVER_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _bench_terminal_id(n: int) -> str:
    return f"{BENCH_HOSPITAL}T{n:03d}"


def _bench_hospital_toml(terminals: int, *, card_proof: bool) -> str:
    rows = [
        "[[hospital]]",
        f'hospital_id = "{BENCH_HOSPITAL}"',
        'name = "压测医院 (bench/grpc_load.py)"',
        "level = 2",
        f'region = "{BENCH_REGION}"',
        f"card_proof_required = {'true' if card_proof else 'false'}",
    ]
    for n in range(1, terminals + 1):
        rows += ["", "[[hospital.terminal]]", f'terminal_id = "{_bench_terminal_id(n)}"', f'name = "desk {n}"',
                 'channel = "desk"']
    return "\n".join(rows) + "\n"


def _fresh_database(store: str, folder: Path, admin_url: str) -> tuple[str, str | None]:
    if store == "sqlite":
        return sqlite_url(folder / "settlement.db"), None
    name = f"settlement_grpc_load_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}", name


def _drop_database(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# ---- running the phases and measuring ------------------------------------------------------------------


def read_persons(paths: list[Path]) -> list[Person]:
    persons = []
    for path in paths:
        with path.open(encoding="utf-8", newline="") as file:
            for row in csv.DictReader(file):
                if row["card_status"] == "active":
                    persons.append(
                        Person(row["person_number"], row["card_number"], row["citizen_id"], row["name"], row["region"])
                    )
    return persons


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_processes(pid: int) -> list[int]:
    """The server processes ``settlement serve`` started ([limits].processes > 1), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in children.read_text().split()] if children.exists() else []


def commit_counters(metrics_urls: tuple[str, ...]) -> list[tuple[float, float]]:
    """(commits, writes committed) so far, for each server process from its Prometheus endpoint (each
    process's group-commit writer carries its settles, cancels and quotes)."""
    counters = []
    for url in metrics_urls:
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        count = re.search(r"^settlement_db_commit_batch_size_count (\S+)$", text, re.MULTILINE)
        total = re.search(r"^settlement_db_commit_batch_size_sum (\S+)$", text, re.MULTILINE)
        counters.append((float(count[1]) if count else 0.0, float(total[1]) if total else 0.0))
    return counters


def run_load(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    persons = read_persons(args.persons)
    specs = [server.terminals[n % len(server.terminals)] for n in range(args.terminals)]
    shares: list[list[Person]] = [persons[n :: args.terminals] for n in range(args.terminals)]
    if any(not share for share in shares):
        raise SystemExit(f"{len(persons)} persons with active cards cannot give each of {args.terminals} terminals one")
    today = dt.datetime.now(CHINA_STANDARD_TIME).date().isoformat()  # the engine's business day
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    start_at = context.Value("d", 0.0)
    processes = []
    for p in range(args.processes):
        plan = WorkerPlan(
            server.target, str(server.ca_file), args.server_name,
            [(specs[n], shares[n]) for n in range(p, args.terminals, args.processes)],
            args.card_proof, args.quote_percent, today,
            args.warmup_seconds, args.baseline_seconds, args.seconds, args.seed + p,
        )
        process = context.Process(target=worker_main, args=(plan, ready, go, start_at, results), daemon=True)
        process.start()
        processes.append(process)
    for _ in processes:
        state = ready.get(timeout=CONNECT_TIMEOUT_SECONDS + 60)
        if state != "ready":
            raise SystemExit(f"a load process could not start: {state}")
    start = time.monotonic() + 0.5
    start_at.value = start
    go.set()
    cpu = _measure_cpu(server, processes, start + args.warmup_seconds, args)
    total = Tally()
    for _ in processes:
        raw = results.get(timeout=args.warmup_seconds + args.baseline_seconds + args.seconds + 120)
        total.merge(Tally(raw["latencies"], raw["refusals"]))
    for process in processes:
        process.join(timeout=10)
    return _figures(args, server, total, cpu)


def _measure_cpu(
    server: Server, processes: list[Any], baseline_start: float, args: argparse.Namespace
) -> dict[str, Any]:
    """CPU used by the server and by the load processes in the baseline and the mix window, and the
    server's commits in the mix window (sampled at the phase boundaries)."""
    pids = {"client": [process.pid for process in processes]}
    if server.process is not None:  # a running server's CPU is not ours to read
        pids["server"] = [server.process.pid, *child_processes(server.process.pid)]

    def sample() -> dict[str, float]:
        return {who: sum(cpu_seconds(pid) for pid in found) for who, found in pids.items()}

    mix_start = baseline_start + args.baseline_seconds
    time.sleep(max(0.0, baseline_start - time.monotonic()))
    before_baseline = sample()
    time.sleep(max(0.0, mix_start - time.monotonic()))
    before_mix, commits_before = sample(), commit_counters(server.metrics_urls)
    time.sleep(max(0.0, mix_start + args.seconds - time.monotonic()))
    after_mix, commits_after = sample(), commit_counters(server.metrics_urls)
    figures = {
        f"{who}_cores_{phase}": (end[who] - begin[who]) / seconds
        for phase, begin, end, seconds in (
            ("baseline", before_baseline, before_mix, args.baseline_seconds),
            ("mix", before_mix, after_mix, args.seconds),
        )
        for who in pids
    }
    commits = sum(after[0] - before[0] for before, after in zip(commits_before, commits_after, strict=True))
    writes = [after[1] - before[1] for before, after in zip(commits_before, commits_after, strict=True)]
    figures["commits_per_second"] = commits / args.seconds
    figures["writes_per_commit"] = sum(writes) / commits if commits else 0.0
    # SO_REUSEPORT hashes each terminal's connection to a process: with few terminals one process may carry
    # many more than the other, which moves the figures from run to run.
    figures["writes_share_by_process"] = [round(w / sum(writes), 3) if sum(writes) else 0.0 for w in writes]
    return figures


def percentile_ms(ordered: list[float], percent: float) -> float | None:
    """Nearest rank; None without calls."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)] * 1000


def _method_figures(latencies: list[float], refusals: dict[str, int], seconds: float) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "calls": len(ordered),
        "calls_per_second": len(ordered) / seconds,
        "p50_ms": percentile_ms(ordered, 50),
        "p99_ms": percentile_ms(ordered, 99),
        "p99_9_ms": percentile_ms(ordered, 99.9),
        "refused": dict(sorted(refusals.items())),
    }


def _figures(args: argparse.Namespace, server: Server, total: Tally, cpu: dict[str, Any]) -> dict[str, Any]:
    mix = total.latencies.get("mix", {})
    mix_refusals = total.refusals.get("mix", {})
    methods = {
        method: _method_figures(mix.get(method, []), mix_refusals.get(method, {}), args.seconds)
        for method in METHODS
    }
    every = [value for values in mix.values() for value in values]
    methods["all"] = _method_figures(
        every, {k: v for m in mix_refusals.values() for k, v in m.items()}, args.seconds
    )
    baseline = _method_figures(
        total.latencies.get("baseline", {}).get(BASELINE, []),
        total.refusals.get("baseline", {}).get(BASELINE, {}),
        args.baseline_seconds,
    )
    settle = methods["Settle"]
    empty_per_second = baseline["calls_per_second"]
    return {
        "setup": {
            "server": server.description,
            "terminals": args.terminals,
            "distinct_certificates": len({spec.cert_file for spec in server.terminals[: args.terminals]}),
            "client_processes": args.processes,
            "card_proof": args.card_proof,
            "quote_percent": 100 if args.card_proof else args.quote_percent,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup_seconds,
            "baseline_seconds": args.baseline_seconds,
            "mix_percent": {
                "visit": VISIT_PERCENT,
                "GetAccount": GET_ACCOUNT_PERCENT,
                "GetSettlement": GET_SETTLEMENT_PERCENT,
                "ListSettlements": 100 - VISIT_PERCENT - GET_ACCOUNT_PERCENT - GET_SETTLEMENT_PERCENT,
                "cancelled of settled": CANCEL_PERCENT_OF_SETTLED,
            },
            "cpu_count": os.cpu_count(),
            "load_average_at_start": os.getloadavg()[0],
        },
        "mix": methods,
        "baseline_empty_rpc": baseline,
        "settles_per_empty_call": settle["calls_per_second"] / empty_per_second if empty_per_second else None,
        "all_calls_per_empty_call": methods["all"]["calls_per_second"] / empty_per_second if empty_per_second else None,
        "cpu": cpu,
        "target": {
            "settles_per_second": TARGET_SETTLES_PER_SECOND,
            "settle_p99_ms": TARGET_SETTLE_P99_MS,
            "met": settle["calls_per_second"] >= TARGET_SETTLES_PER_SECOND
            and settle["p99_ms"] is not None
            and settle["p99_ms"] <= TARGET_SETTLE_P99_MS,
        },
    }


def print_table(figures: dict[str, Any]) -> None:
    setup = figures["setup"]
    print(
        f"\n{setup['server']}; {setup['terminals']} terminals on their own mTLS channels "
        f"({setup['distinct_certificates']} certificates), {setup['client_processes']} client process(es), "
        f"card proof {'on' if setup['card_proof'] else 'off'}, {setup['quote_percent']} % of visits quoted; "
        f"mix {setup['seconds']:g} s after "
        f"{setup['warmup_seconds']:g} s warm-up; {setup['cpu_count']} CPUs, "
        f"load average {setup['load_average_at_start']:.2f} at start"
    )
    print(f"{'method':<22}{'calls':>8}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}  refused")
    rows = [*figures["mix"].items(), (f"{BASELINE} (empty)", figures["baseline_empty_rpc"])]
    for name, row in rows:
        refused = ", ".join(f"{reason} {count}" for reason, count in row["refused"].items()) or "-"
        p50, p99, p999 = (f"{row[key]:.2f}" if row[key] is not None else "-" for key in PERCENTILE_KEYS)
        print(f"{name:<22}{row['calls']:>8}{row['calls_per_second']:>10.0f}{p50:>9}{p99:>9}{p999:>10}  {refused}")
    cpu = figures["cpu"]
    target = figures["target"]
    if figures["settles_per_empty_call"] is not None:
        print(
            f"settles/s ÷ empty calls/s = {figures['settles_per_empty_call']:.2f}; "
            f"all mix calls/s ÷ empty calls/s = {figures['all_calls_per_empty_call']:.2f}"
        )
    server_mix, server_baseline = (
        f"{cpu[key]:.2f}" if key in cpu else "n/a" for key in ("server_cores_mix", "server_cores_baseline")
    )
    print(
        f"CPU cores used: mix — server {server_mix}, load generator {cpu['client_cores_mix']:.2f}; "
        f"baseline — server {server_baseline}, load generator {cpu['client_cores_baseline']:.2f}"
    )
    if cpu.get("commits_per_second"):
        shares = " / ".join(f"{share:.0%}" for share in cpu["writes_share_by_process"])
        print(
            f"server commits: {cpu['commits_per_second']:.0f}/s, {cpu['writes_per_commit']:.1f} writes per commit;"
            f" writes by process: {shares}"
        )
    print(
        f"target: >= {target['settles_per_second']} settles/s with p99 <= {target['settle_p99_ms']:g} ms: "
        f"{'met' if target['met'] else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--terminals", type=int, default=DEFAULT_TERMINALS, help="concurrent terminals (%(default)s)")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="the measured mix (%(default)s)")
    parser.add_argument("--warmup-seconds", type=float, default=2.0, help="the mix, not measured (%(default)s)")
    parser.add_argument("--baseline-seconds", type=float, default=5.0, help="empty health Checks (%(default)s)")
    parser.add_argument("--processes", type=int, default=1, help="client processes the terminals share (%(default)s)")
    parser.add_argument("--card-proof", action="store_true", help="card-present settles signed by virtual cards")
    parser.add_argument("--quote-percent", type=int, default=100,
                        help="visits quoted before the settle (%(default)s; HIS adapters often settle directly)")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite", help="own server's database")
    parser.add_argument("--postgres-admin", default=POSTGRES_ADMIN, help="where to create the throwaway database")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment setting for the own server, e.g. SETTLEMENT_PROCESSES=2")
    parser.add_argument("--target", help="HOST:PORT of a running server instead of an own one (needs --pki)")
    parser.add_argument("--pki", type=Path, help="with --target: the folder with ca.crt and terminals/*/*.crt")
    parser.add_argument("--server-name", default="", help="with --target: the name on the server certificate")
    parser.add_argument("--persons", type=Path, nargs="+", default=list(DEMO_PERSONS), help="enrolment CSVs")
    parser.add_argument("--seed", type=int, default=1, help="the mix's random seed (%(default)s)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args()
    if not 1 <= args.terminals <= MAX_TERMINALS:
        parser.error(f"--terminals must be 1..{MAX_TERMINALS}")
    if not 0 <= args.quote_percent <= 100:
        parser.error("--quote-percent must be 0..100 (card-present settles are always quoted)")
    if not 1 <= args.processes <= args.terminals:
        parser.error("--processes must be between 1 and --terminals")
    if args.target and not args.pki:
        parser.error("--target needs --pki (the CA and the terminals' certificates)")

    if args.target:
        figures = run_load(args, running_server(args))
    else:
        with tempfile.TemporaryDirectory(prefix="grpc-load-") as folder, own_server(args, Path(folder)) as server:
            figures = run_load(args, server)
            if server.process is not None:
                _stop(server.process)  # drained: everything acknowledged is committed before the check
            check = subprocess.run(
                [sys.executable, "-m", "settlement.cli", "ledger", "check"], cwd=ROOT, capture_output=True,
                text=True, check=False, env={**os.environ, "SETTLEMENT_DATABASE_URL": server.database_url},
            )
            figures["ledger_check_after"] = (check.stdout.strip().splitlines() or [check.stderr.strip()])[-1]
    print_table(figures)
    if "ledger_check_after" in figures:
        print(f"after the run: {figures['ledger_check_after']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
