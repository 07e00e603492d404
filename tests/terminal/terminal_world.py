"""The world a desk terminal test runs in: the seeded engine behind a real gRPC server, a card, charges.

The server is the real one (``build_server`` on port 0, the real servicer and service on a seeded
database that requires card proofs). ``ReplyControl`` lets a test lose the reply of a Settle that the
engine has committed, or kill the terminal process at that moment: the two ways a desk never learns
that it settled.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from service_world import DESK, EMPLOYEE, HOSPITAL, MASTER_KEY, POLICIES, TODAY, item_codes, open_app, seed
from sqlalchemy import select

from cardio.applet import CardPersonalisation
from cardio.virtual_card import demo_personalisation
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
from settlement.domain import Category
from settlement.identity import with_check_character
from settlement.server import pki
from settlement.server.config import load_config
from settlement.server.identity import ServicerContext
from settlement.server.runtime import RunningServer, build_server
from settlement.server.servicer import SettlementServicer
from settlement.service.app import SettlementApp
from settlement.service.clock import FixedClock, instant_us
from settlement.storage import tables as t
from settlement.storage.engine import Engines
from settlement.terminal.calls import Identity, secure_channel
from settlement.terminal.flow import Desk, DeskSettings
from settlement.terminal.journal import Journal
from settlement.terminal.prompts import Console

READER = "Fake Reader 00 00"
PIN = "135790"
CITIZEN_ID = with_check_character("33010619800101123")
OPERATOR = "doctor-7"


def employee_card(**overrides: Any) -> CardPersonalisation:
    """The seeded employee's card, keyed by the engine's issuer master key."""
    fields: dict[str, Any] = {
        "card_number": EMPLOYEE.card,
        "citizen_id": CITIZEN_ID,
        "name": "王小明",
        "pin": PIN,
        "master_key": MASTER_KEY,
    }
    fields.update(overrides)
    return demo_personalisation(**fields)


def charges_document(*, person: bool = True) -> dict[str, Any]:
    a = item_codes(EMPLOYEE.region, Category.A)[0]
    b = item_codes(EMPLOYEE.region, Category.B)[0]
    document: dict[str, Any] = {
        "visit_date": TODAY.isoformat(),  # the engine's fixed clock stands on TODAY
        "lines": [
            {"hospital_line_id": "F1", "item_code": a, "quantity": "1", "unit_price_yuan": "20.00"},
            {"hospital_line_id": "F2", "item_code": b, "quantity": "2", "unit_price_yuan": "35.50"},
        ],
    }
    if person:
        document["person_number"] = EMPLOYEE.number
    return document


def write_charges(directory: Path, **options: Any) -> Path:
    path = directory / "charges.json"
    path.write_text(json.dumps(charges_document(**options), ensure_ascii=False), encoding="utf-8")
    return path


@dataclass
class ReplyControl:
    """What happens after the engine committed a Settle: the reply arrives, is lost, or the terminal dies."""

    drop_settle_replies: int = 0
    kill_on_settle: subprocess.Popen[str] | None = None
    settles_committed: int = 0


class ControlledServicer(SettlementServicer):
    def __init__(self, app: SettlementApp, *, dev_mode: bool, control: ReplyControl) -> None:
        super().__init__(app, dev_mode=dev_mode)
        self.control = control

    async def Settle(self, request: pb.SettleRequest, context: ServicerContext) -> pb.SettleResponse:
        reply = await super().Settle(request, context)  # committed from here on
        self.control.settles_committed += 1
        victim = self.control.kill_on_settle
        if victim is not None:
            self.control.kill_on_settle = None
            os.kill(victim.pid, signal.SIGKILL)  # the test reaps it; the abort below goes to a dead peer
            await context.abort(grpc.StatusCode.UNAVAILABLE, "test: the terminal died before the reply")  # type: ignore[union-attr]
        if self.control.drop_settle_replies > 0:
            self.control.drop_settle_replies -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "test: the reply was lost on the way back")  # type: ignore[union-attr]
        return reply


@dataclass
class World:
    engines: Engines
    app: SettlementApp
    clock: FixedClock
    server: RunningServer
    control: ReplyControl
    pki_dir: Path | None
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"localhost:{self.server.port}"

    def settlement_rows(self) -> list[dict[str, Any]]:
        with self.engines.reader.connect() as connection:
            rows = connection.execute(select(t.settlements).order_by(t.settlements.c.created_at_us))
            return [dict(row._mapping) for row in rows]

    def stub(self) -> pb_grpc.SettlementServiceStub:
        """A stub as the desk's: over mTLS with the desk's certificate, or plaintext in dev mode."""
        if self.pki_dir is None:
            channel = grpc.insecure_channel(f"127.0.0.1:{self.server.port}")
        else:
            cert, key = pki.terminal_paths(self.pki_dir, HOSPITAL, DESK.terminal_id)
            channel = secure_channel(self.target, ca=self.pki_dir / pki.CA_CERT, cert=cert, key=key)
        self.closers.append(channel.close)
        return pb_grpc.SettlementServiceStub(channel)

    def identity(self) -> Identity:
        return Identity(HOSPITAL, DESK.terminal_id, OPERATOR, dev_mode=self.pki_dir is None)


@contextmanager
def running_world(engines: Engines, directory: Path, *, tls: bool) -> Iterator[World]:
    """A seeded engine (card proofs required) behind a real server: mTLS, or dev mode in plaintext."""
    seed(engines, card_proof_required=True)
    clock = FixedClock(instant_us(TODAY, hour=10))
    app = open_app(engines, clock)
    environment = {
        "SETTLEMENT_LISTEN": "127.0.0.1:0",
        "SETTLEMENT_POLICIES": str(POLICIES),
        "SETTLEMENT_DATA_DIR": str(directory / "data"),
    }
    pki_dir: Path | None = None
    if tls:
        pki_dir = directory / "pki"
        pki.init_authority(pki_dir)
        cert, key = pki.issue_server(pki_dir, ["localhost"])
        pki.issue_terminal(pki_dir, HOSPITAL, DESK.terminal_id)
        environment |= {
            "SETTLEMENT_TLS_CERT": str(cert),
            "SETTLEMENT_TLS_KEY": str(key),
            "SETTLEMENT_TLS_CLIENT_CA": str(pki_dir / pki.CA_CERT),
        }
    else:
        environment["SETTLEMENT_DEV_MODE"] = "true"
    control = ReplyControl()
    server = build_server(
        load_config(None, environment),
        lambda grpc_server: pb_grpc.add_SettlementServiceServicer_to_server(
            ControlledServicer(app, dev_mode=not tls, control=control), grpc_server
        ),
        lambda: True,
    )
    world = World(engines, app, clock, server, control, pki_dir)
    try:
        yield world
    finally:
        for close in world.closers:
            close()
        server.close()
        app.close()


@dataclass
class Screen:
    """A console for tests: scripted answers in, everything the doctor would see out."""

    answers: str = ""
    pins: list[str] = field(default_factory=lambda: [PIN])
    assume_yes: bool = True
    output: io.StringIO = field(default_factory=io.StringIO)

    def console(self) -> Console:
        def read_pin(_prompt: str) -> str:
            return self.pins.pop(0) if len(self.pins) > 1 else self.pins[0]

        return Console(
            stdin=io.StringIO(self.answers), stdout=self.output, read_pin=read_pin, assume_yes=self.assume_yes
        )

    @property
    def text(self) -> str:
        return self.output.getvalue()


def make_desk(
    world: World,
    journal: Journal,
    screen: Screen,
    *,
    reader: Any = None,
    unfinished: str = "ask",
    today: dt.date = TODAY,
) -> Desk:
    settings = DeskSettings(
        identity=world.identity(),
        reader=None,
        card_wait_timeout_ms=5_000,
        unfinished=unfinished,
        settle_timeout_ms=10_000,
        retry_backoff_ms=10,
    )
    return Desk(world.stub(), journal, screen.console(), settings, reader=reader, today=lambda: today)


def desk_program(world: World, journal: Path, *options: str, pin_variable: str, card_timeout_s: int = 10) -> list[str]:
    """The command line of ``settlement terminal`` at the seeded desk, over mTLS, confirming by itself."""
    assert world.pki_dir is not None
    cert, key = pki.terminal_paths(world.pki_dir, HOSPITAL, DESK.terminal_id)
    return [
        sys.executable,
        "-m",
        "settlement.cli",
        "terminal",
        "--target",
        world.target,
        "--ca",
        str(world.pki_dir / pki.CA_CERT),
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--operator",
        OPERATOR,
        "--journal",
        str(journal),
        "--yes",
        "--pin-from-env",
        pin_variable,
        "--card-timeout",
        str(card_timeout_s),
        *options,
    ]
