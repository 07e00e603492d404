"""Load generator: settles per second and latency at 1, 8 and 32 concurrent callers, in process (no gRPC).

Runs against SQLite (a file in a temporary folder) and PostgreSQL (a throwaway database on the local
server), then runs pgbench's built-in TPC-B on the same PostgreSQL for a reference and prints the ratio.

    .venv/bin/python bench/settle_load.py [--seconds 10] [--callers 1,8,32] [--stores sqlite,postgres]

Targets (issue 3, 2-core machine): >= 2,000 settles/s on SQLite and >= 1,000/s on PostgreSQL at 32
callers, p99 <= 50 ms. Each settle is an 8-line outpatient visit with an account debit, as at a desk.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "service"))

from service_world import DESK, EMPLOYEE, HANGZHOU_EMPLOYEE, charge, item_codes, open_app, seed
from sqlalchemy import create_engine, text

from settlement.domain import Category
from settlement.service.commands import SettleCommand
from settlement.storage.engine import make_engines, sqlite_url
from settlement.storage.migrate import upgrade

POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Figures:
    store: str
    callers: int
    settles: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.settles / self.seconds

    def line(self) -> str:
        return (
            f"{self.store:<9} {self.callers:>3} callers: {self.per_second:8.0f} settles/s  "
            f"p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:6.2f} ms  ({self.settles} settles)"
        )


def eight_lines(region: str) -> tuple[tuple[str, str, str], ...]:
    codes = item_codes(region, Category.A)[:3] + item_codes(region, Category.B)[:3] + item_codes(region, Category.C)[:2]
    return tuple((code, "1", "9.50") for code in codes)


def measure(database_url: str, store: str, callers: int, seconds: float) -> Figures:
    engines = make_engines(database_url)
    app = open_app(engines)
    people = [EMPLOYEE, HANGZHOU_EMPLOYEE]
    requests = {person.number: charge(person, lines=eight_lines(person.region)) for person in people}
    latencies: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()

    def caller(n: int) -> None:
        person = people[n % len(people)]
        mine: list[float] = []
        while not stop.is_set():
            command = SettleCommand(DESK, str(uuid.uuid4()), requests[person.number])
            started = time.perf_counter()
            app.settle(command)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(callers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    app.close()
    ordered = sorted(latencies)
    return Figures(
        store,
        callers,
        len(ordered),
        elapsed,
        statistics.median(ordered) * 1000,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    )


def fresh_database(store: str, folder: Path) -> tuple[str, str | None]:
    if store == "sqlite":
        return sqlite_url(folder / f"bench-{uuid.uuid4().hex[:6]}.db"), None
    name = f"settlement_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}", name


def drop_database(name: str) -> None:
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def pgbench_tps(clients: int, seconds: int) -> float:
    """pgbench's built-in TPC-B-like script on a throwaway database of the same server."""
    name = f"settlement_pgbench_{uuid.uuid4().hex[:8]}"
    base = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
    subprocess.run(["createdb", *base, name], check=True)
    try:
        subprocess.run(["pgbench", *base, "-i", "-q", "-s", "1", name], check=True, capture_output=True)
        run = subprocess.run(
            ["pgbench", *base, "-c", str(clients), "-j", "2", "-T", str(seconds), name],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        subprocess.run(["dropdb", *base, "--force", name], check=False)
    found = re.search(r"tps = ([0-9.]+)", run.stdout)
    if found is None:
        raise RuntimeError(f"no tps in pgbench output: {run.stdout}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--callers", default="1,8,32")
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    callers = [int(c) for c in args.callers.split(",")]
    results: list[Figures] = []
    with tempfile.TemporaryDirectory() as folder:
        for store in args.stores.split(","):
            for count in callers:
                url, pg_name = fresh_database(store, Path(folder))
                engines = make_engines(url)
                upgrade(engines.writer)
                seed(engines)
                engines.dispose()
                try:
                    figures = measure(url, store, count, args.seconds)
                finally:
                    if pg_name:
                        drop_database(pg_name)
                results.append(figures)
                print(figures.line(), flush=True)
    if "postgres" in args.stores:
        top = max(callers)
        tps = pgbench_tps(top, int(args.seconds))
        ours = next(f for f in results if f.store == "postgres" and f.callers == top)
        print(f"pgbench TPC-B  {top:>3} clients: {tps:8.0f} tps; settles/s ÷ TPC-B tps = {ours.per_second / tps:.2f}")


if __name__ == "__main__":
    main()
