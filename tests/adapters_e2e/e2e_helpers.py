"""The running engine and the HIS-side clients for the end-to-end adapter tests (a module of its own, with
a name no other test directory uses, imported by the tests and by conftest)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
from mllp_client import MllpClient as SharedMllpClient
from sqlalchemy import func, select

from hospital_adapters import HospitalConfig
from hospital_adapters.samples import HL7_SAMPLE_MESSAGE
from settlement.api.gen.clinic.settlement.v1 import settlement_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
from settlement.client import ClientTls, GrpcEnginePort, open_channel
from settlement.server import pki
from settlement.server.config import load_config
from settlement.server.runtime import RunningServer, build_server
from settlement.server.servicer import SettlementServicer
from settlement.service.app import SettlementApp
from settlement.service.clock import FixedClock, instant_us
from settlement.service.context import ServiceContext
from settlement.service.policy_book import PolicyBook
from settlement.storage import tables
from settlement.storage.engine import Engines

REPOSITORY = Path(__file__).resolve().parents[2]
DEMO = REPOSITORY / "demo"
POLICIES = REPOSITORY / "policies"
TODAY = dt.date(2026, 3, 2)  # the samples' visit date: the engine's clock stands on it
PERSON = "33010000000000012345"  # demo/enrolment.csv: the person every sample message names
# demo/hospitals.toml: the two sample hospitals and their HIS terminals (channel his).
HL7_HOSPITAL = "H33010600123"
HL7_TERMINAL = "H33010600123-HL7"
FHIR_HOSPITAL = "H33010800045"
FHIR_TERMINAL = "H33010800045-FHIR"
DESK_TERMINALS = {"H33010600123": "H33010600123D01", "H33010800045": "H33010800045D01"}
INSPECTOR_METADATA = (("operator-id", "auditor-1"),)
CALL_TIMEOUT_SECONDS = 10


def on_port_zero(config: HospitalConfig) -> HospitalConfig:
    return replace(config, connection={**config.connection, "port": 0})


def yuan(fen: int) -> str:
    whole, cents = divmod(fen, 100)
    return f"{whole}.{cents:02d}"


@dataclass
class Engine:
    """The real engine: the application service on a seeded database behind an mTLS server on port 0."""

    engines: Engines
    app: SettlementApp
    server: RunningServer
    pki_dir: Path
    _to_close: list[GrpcEnginePort | grpc.Channel | RunningServer] = field(default_factory=list)

    @classmethod
    def start(cls, engines: Engines, pki_dir: Path) -> Engine:
        context = ServiceContext(PolicyBook.load(POLICIES), {}, FixedClock(instant_us(TODAY, hour=10)))
        app = SettlementApp(engines, context)
        pki.init_authority(pki_dir)
        cert, key = pki.issue_server(pki_dir, ["localhost"])
        running = serve(app, {
            "SETTLEMENT_TLS_CERT": str(cert),
            "SETTLEMENT_TLS_KEY": str(key),
            "SETTLEMENT_TLS_CLIENT_CA": str(pki_dir / pki.CA_CERT),
        }, dev_mode=False)
        return cls(engines, app, running, pki_dir)

    @property
    def target(self) -> str:
        return f"localhost:{self.server.port}"

    def tls(self, hospital_id: str, terminal_id: str) -> ClientTls:
        """The terminal's files from the local CA, issued on first use."""
        cert, key = pki.terminal_paths(self.pki_dir, hospital_id, terminal_id)
        if not cert.exists():
            pki.issue_terminal(self.pki_dir, hospital_id, terminal_id)
        return ClientTls(self.pki_dir / pki.CA_CERT, cert, key)

    def his_port(self, hospital_id: str, terminal_id: str, *, timeout_ms: int = 10_000) -> GrpcEnginePort:
        port = GrpcEnginePort.connect(self.target, operator_id="his-adapter", tls=self.tls(hospital_id, terminal_id),
                                      timeout_ms=timeout_ms)
        self._to_close.append(port)
        return port

    def dev_listener(self) -> RunningServer:
        """A second, plaintext dev-mode listener on the same service (callers name themselves)."""
        running = serve(self.app, {"SETTLEMENT_DEV_MODE": "true"}, dev_mode=True)
        self._to_close.append(running)
        return running

    def inspector(self, hospital_id: str) -> Inspector:
        """A desk terminal of the hospital, reading what the engine stored."""
        channel = open_channel(self.target, tls=self.tls(hospital_id, DESK_TERMINALS[hospital_id]))
        self._to_close.append(channel)
        return Inspector(pb_grpc.SettlementServiceStub(channel), hospital_id)

    def settlement_rows(self) -> int:
        """Rows in the settlements table, whoever wrote them."""
        with self.engines.reader.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(tables.settlements)).scalar_one())

    def close(self) -> None:
        for closable in reversed(self._to_close):
            closable.close()
        self.server.close()
        self.app.close()


def serve(app: SettlementApp, environment: dict[str, str], *, dev_mode: bool) -> RunningServer:
    config = load_config(None, {"SETTLEMENT_LISTEN": "127.0.0.1:0", "SETTLEMENT_POLICIES": str(POLICIES),
                                **environment})
    return build_server(
        config,
        lambda server: pb_grpc.add_SettlementServiceServicer_to_server(
            SettlementServicer(app, dev_mode=dev_mode), server),
        lambda: True,
    )


@dataclass
class Inspector:
    stub: pb_grpc.SettlementServiceStub
    hospital_id: str

    def settlement(self, request_id: str) -> settlement_pb2.Settlement | None:
        try:
            reply = self.stub.GetSettlement(
                pb.GetSettlementRequest(hospital_id=self.hospital_id, request_id=request_id),
                metadata=INSPECTOR_METADATA, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return reply.settlement

    def settlements(self) -> list[settlement_pb2.Settlement]:
        """Today's settlements of the hospital, every line included."""
        reply = self.stub.ListSettlements(
            pb.ListSettlementsRequest(hospital_id=self.hospital_id, start_date=TODAY.isoformat(),
                                      end_date=TODAY.isoformat(), view=pb.SETTLEMENT_VIEW_FULL),
            metadata=INSPECTOR_METADATA, timeout=CALL_TIMEOUT_SECONDS)
        return list(reply.settlements)

    def balance_fen(self, person_number: str) -> int:
        reply = self.stub.GetAccount(pb.GetAccountRequest(hospital_id=self.hospital_id, person_number=person_number),
                                     metadata=INSPECTOR_METADATA, timeout=CALL_TIMEOUT_SECONDS)
        return int(reply.account.balance_fen)


# ---- HL7 over MLLP -----------------------------------------------------------------------------------


class MllpClient(SharedMllpClient):
    """The shared MLLP client, waiting as long as a call to the engine may take."""

    def __init__(self, port: int) -> None:
        super().__init__(port, timeout_seconds=CALL_TIMEOUT_SECONDS)


def sample_dft(control_id: str = "MSG00001", *, person: str = PERSON, changes: dict[str, str] | None = None) -> str:
    """The sample hospital's DFT^P03 (hospital_adapters/samples), with another control id, person or text."""
    text = HL7_SAMPLE_MESSAGE.read_text(encoding="utf-8").replace("|MSG00001|", f"|{control_id}|")
    text = text.replace(f"{PERSON}^", f"{person}^")
    for old, new in (changes or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return "\r".join(line for line in text.splitlines() if line)  # HL7 separates segments with CR


def segments(ack: str, name: str) -> list[list[str]]:
    """The fields of every segment with this name (index 0 is the segment name)."""
    return [segment.split("|") for segment in ack.split("\r") if segment.startswith(name + "|")]
