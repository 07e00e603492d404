"""The FHIR endpoint: ``POST {base_path}/Claim`` over HTTP, one thread per connection.

Owns: the HTTP side only: path and method routing, media type, body size and read timeout, and
writing the resource with its status. Claim reading and response building are ``claims``'s. Must
never read a body without a bounded Content-Length.
"""

from __future__ import annotations

import http.server
import logging
from dataclasses import dataclass
from typing import cast

from hospital_adapters import limits as adapter_limits
from hospital_adapters.adapter import ListeningAdapter
from hospital_adapters.charges import Problem, Rejected, SubmissionRefused
from hospital_adapters.config import ConfigError, HospitalConfig
from hospital_adapters.fhir.claims import claim_response, operation_outcome, parse_claim
from hospital_adapters.mapping import CodeTable
from hospital_adapters.pipeline import quote_visit, settle_visit
from hospital_adapters.port import EnginePort, Quoted, Settled
from hospital_adapters.serving import BoundedThreadingServer

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
_ACCEPTED_MEDIA_TYPES = {FHIR_JSON, "application/json"}


@dataclass(frozen=True, slots=True)
class FhirSettings:
    """The ``[connection]`` table of a FHIR hospital."""

    host: str = "127.0.0.1"
    port: int = 8080
    base_path: str = "/fhir"

    @classmethod
    def from_config(cls, config: HospitalConfig) -> FhirSettings:
        defaults = cls()
        settings = cls(
            host=config.setting("host", str, defaults.host),
            port=config.setting("port", int, defaults.port),
            base_path="/" + str(config.setting("base_path", str, defaults.base_path)).strip("/"),
        )
        if not 0 <= settings.port <= 65_535:
            raise ConfigError(f"hospital {config.hospital_id}: port {settings.port} is out of range")
        config.setting("code_system", str, "any")  # optional, but a string when given
        return settings


class FhirService:
    """Answers Claims for one hospital: body bytes in, (status, resource JSON) out. No sockets."""

    def __init__(self, config: HospitalConfig, table: CodeTable, engine: EnginePort,
                 settings: FhirSettings) -> None:
        self._config = config
        self._table = table
        self._engine = engine
        self.settings = settings

    def handle_claim(self, body: bytes) -> tuple[int, str]:
        try:
            parsed = parse_claim(body, self._config)
        except SubmissionRefused as refused:
            return self.refusal(Rejected(refused.problems))
        result: Settled | Quoted | Rejected
        if parsed.quote_only:
            result = quote_visit(parsed.visit, self._table, self._engine)
        else:
            result = settle_visit(parsed.visit, self._table, self._engine)
        if isinstance(result, Rejected):
            return self.refusal(result, parsed.item_index)
        response = claim_response(parsed, result, parsed.visit.request_id)
        return 200, response.model_dump_json(exclude_none=True)

    @staticmethod
    def refusal(rejected: Rejected, item_index: dict[str, int] | None = None) -> tuple[int, str]:
        status, outcome = operation_outcome(rejected, item_index or {})
        return status, outcome.model_dump_json(exclude_none=True)


class _FhirServer(BoundedThreadingServer):
    def __init__(self, service: FhirService) -> None:
        self.service = service
        super().__init__((service.settings.host, service.settings.port), _ClaimHandler,
                         max_connections=adapter_limits.MAX_HTTP_CONNECTIONS)


class _ClaimHandler(http.server.BaseHTTPRequestHandler):
    timeout = adapter_limits.HTTP_READ_TIMEOUT_SECONDS
    protocol_version = "HTTP/1.1"
    server_version = "clinic-settlement-fhir"

    def _send(self, status: int, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{FHIR_JSON}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: int, reason: str, message: str) -> None:
        _, body = FhirService.refusal(Rejected((Problem(reason, message, None, "Claim"),)))
        self.close_connection = True  # the body may be unread: the stream cannot be reused
        self._send(status, body)

    def do_POST(self) -> None:
        service = cast(_FhirServer, self.server).service
        if self.path.split("?", 1)[0].rstrip("/") != f"{service.settings.base_path}/Claim".replace("//", "/"):
            self._refuse(404, "NOT_FOUND", f"POST Claims to {service.settings.base_path}/Claim")
            return
        media_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if media_type not in _ACCEPTED_MEDIA_TYPES:
            self._refuse(415, "UNSUPPORTED_MEDIA_TYPE", f"Content-Type must be {FHIR_JSON}")
            return
        length_text = self.headers.get("Content-Length") or ""
        if not length_text.isdigit():
            self._refuse(411, "INVALID_CLAIM", "Content-Length is required")
            return
        if int(length_text) > adapter_limits.MAX_FHIR_BODY_BYTES:
            self._refuse(413, "MESSAGE_TOO_LARGE", f"the body exceeds {adapter_limits.MAX_FHIR_BODY_BYTES} bytes")
            return
        body = self.rfile.read(int(length_text))
        status, response = service.handle_claim(body)
        self._send(status, response)

    def do_GET(self) -> None:
        self._refuse(405, "NOT_FOUND", "only POST {base_path}/Claim is served")

    def log_message(self, format: str, *args: object) -> None:
        log.info("fhir %s " + format, self.client_address[0], *args)


class FhirAdapter(ListeningAdapter):
    """An HTTP endpoint for one hospital's Claims."""

    kind = "FHIR"

    def __init__(self, service: FhirService) -> None:
        super().__init__()
        self._service = service

    def _new_server(self) -> _FhirServer:
        return _FhirServer(self._service)

    def _thread_name(self) -> str:
        return f"fhir-{self._service.settings.port}"

    @property
    def address(self) -> str:
        return f"http://{self._service.settings.host}:{self.port}{self._service.settings.base_path}/Claim"


def build(config: HospitalConfig, engine: EnginePort) -> FhirAdapter:
    """Entry point ``fhir``: an HTTP Claim endpoint from the hospital's configuration."""
    return FhirAdapter(FhirService(config, config.load_code_table(), engine, FhirSettings.from_config(config)))
