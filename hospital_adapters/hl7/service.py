"""One HL7 message in, one ACK out: the HL7 adapter without its socket.

Owns: decoding the payload in the hospital's character set, reading the DFT^P03, settling it through the
shared pipeline and building the ACK. The listener and the fuzz tests both call ``handle``. Must never
raise for any input bytes (an ``InvariantViolated`` from the engine is a bug and is let through).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from hospital_adapters import limits as adapter_limits
from hospital_adapters.charges import Problem, Rejected, SubmissionRefused
from hospital_adapters.config import ConfigError, HospitalConfig
from hospital_adapters.hl7.ack import build_ack
from hospital_adapters.hl7.dft import MessageHeader, normalise_segments, parse_dft, read_header
from hospital_adapters.mapping import CodeTable
from hospital_adapters.pipeline import settle_visit
from hospital_adapters.port import EnginePort, Settled


@dataclass(frozen=True, slots=True)
class Hl7Settings:
    """The ``[connection]`` table of an HL7 hospital."""

    host: str = "127.0.0.1"
    port: int = 2575
    encoding: str = "utf-8"  # MSH-18 "UNICODE UTF-8"; some HIS send GB18030
    processing_id: str = "P"  # a "T" (training) message must never settle real money on a "P" listener
    application: str = "SETTLEMENT"  # our MSH-3 in the ACK
    facility: str = ""  # our MSH-4 in the ACK

    @classmethod
    def from_config(cls, config: HospitalConfig) -> Hl7Settings:
        defaults = cls()
        settings = cls(
            host=config.setting("host", str, defaults.host),
            port=config.setting("port", int, defaults.port),
            encoding=config.setting("encoding", str, defaults.encoding),
            processing_id=config.setting("processing_id", str, defaults.processing_id),
            application=config.setting("application", str, defaults.application),
            facility=config.setting("facility", str, config.hospital_id),
        )
        try:
            codecs.lookup(settings.encoding)
        except LookupError:
            raise ConfigError(f"hospital {config.hospital_id}: unknown encoding {settings.encoding!r}") from None
        if not 0 <= settings.port <= 65_535:
            raise ConfigError(f"hospital {config.hospital_id}: port {settings.port} is out of range")
        return settings


class Hl7Service:
    """Answers DFT^P03 messages for one hospital."""

    def __init__(self, config: HospitalConfig, table: CodeTable, engine: EnginePort,
                 settings: Hl7Settings) -> None:
        self._config = config
        self._table = table
        self._engine = engine
        self.settings = settings

    def handle(self, payload: bytes) -> bytes:
        """The ACK for one framed payload."""
        try:
            text = payload.decode(self.settings.encoding)
        except UnicodeDecodeError:
            header = read_header(normalise_segments(payload.decode(self.settings.encoding, errors="replace")))
            return self._ack(header, Rejected((Problem(
                "MALFORMED_MESSAGE", f"the message is not valid {self.settings.encoding}", None, "MSH"),)), {})
        try:
            parsed = parse_dft(text, self._config, expected_processing_id=self.settings.processing_id)
        except SubmissionRefused as refused:
            return self._ack(read_header(normalise_segments(text)), Rejected(refused.problems), {})
        result = settle_visit(parsed.visit, self._table, self._engine)
        return self._ack(parsed.header, result, parsed.line_positions)

    def too_large(self) -> bytes:
        """The AR sent before closing a connection whose frame passed the size limit."""
        problem = Problem("MESSAGE_TOO_LARGE",
                          f"a message exceeded {adapter_limits.MAX_HL7_MESSAGE_BYTES} bytes; the connection "
                          "is closed, split the charge into several messages", None, "MSH")
        return self._ack(MessageHeader(), Rejected((problem,)), {})

    def _ack(self, header: MessageHeader, result: Settled | Rejected, positions: dict[str, int]) -> bytes:
        text = build_ack(header, result, line_positions=positions,
                         application=self.settings.application, facility=self.settings.facility)
        return text.encode(self.settings.encoding, errors="replace")
