"""Who is calling: the terminal from its verified client certificate, the operator from call metadata.

Owns: turning a gRPC ``ServicerContext`` into a ``Caller`` and the one check that a request names the
caller's own hospital. Must never trust a claimed identity: outside dev mode only the certificate gRPC
verified against the configured client CA counts, and ``x-dev-*`` metadata is ignored. Must never put the
operator id or any other caller-supplied value into an error message.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from cryptography import x509

from settlement.errors import InvalidField, OtherHospital, PermissionDenied, Unauthenticated
from settlement.server.pki import IDENTIFIER, TERMINAL_URI
from settlement.service.commands import Caller

OPERATOR_METADATA = "operator-id"
DEV_HOSPITAL_METADATA = "x-dev-hospital-id"
DEV_TERMINAL_METADATA = "x-dev-terminal-id"
PEER_CERTIFICATE_PROPERTY = "x509_pem_cert"
_OPERATOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")  # an HIS staff id: ASCII, at most 64
_CACHED_CERTIFICATES = 4096  # terminals of a large site; each entry is one parsed certificate's names
# The server runs on grpc.aio; these functions only read the peer and the metadata, which both kinds have.
ServicerContext = grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True, slots=True)
class Terminal:
    hospital_id: str
    terminal_id: str


def identify(context: ServicerContext, *, dev_mode: bool) -> Caller:
    """The caller of this RPC; raises ``Unauthenticated`` or ``PermissionDenied`` when there is none."""
    terminal = terminal_of(context, dev_mode=dev_mode)
    return Caller(terminal.hospital_id, terminal.terminal_id, operator_of(context))


def check_hospital(caller: Caller, requested_hospital_id: str, *, field: str = "hospital_id") -> None:
    """Refuse a request for another hospital than the caller's certificate names."""
    if not requested_hospital_id:
        raise InvalidField(f"{field} is required: the terminal's own hospital id", field=field)
    if requested_hospital_id != caller.hospital_id:
        raise OtherHospital(
            f"this terminal belongs to hospital {caller.hospital_id} and may not act for hospital "
            f"{requested_hospital_id}",
            metadata={"field": field, "hospital_id": requested_hospital_id},
        )


def terminal_of(context: ServicerContext, *, dev_mode: bool) -> Terminal:
    pem = peer_certificate_pem(context)
    if pem is not None:
        terminal = terminal_of_certificate(pem)
        if terminal is None:
            raise PermissionDenied(
                "the client certificate names no terminal: it needs exactly one URI SAN "
                "clinic-settlement://hospital/<id>/terminal/<id>; issue one with `settlement pki issue-terminal`",
                metadata={"certificate": "no terminal URI"},
            )
        return terminal
    if not dev_mode:
        # Unreachable behind require_client_auth; kept so a misconfigured listener cannot go anonymous.
        raise Unauthenticated("no verified client certificate: connect with the terminal's certificate over mTLS")
    hospital = _single(context, DEV_HOSPITAL_METADATA)
    terminal_id = _single(context, DEV_TERMINAL_METADATA)
    for key, value in ((DEV_HOSPITAL_METADATA, hospital), (DEV_TERMINAL_METADATA, terminal_id)):
        if value is None or not IDENTIFIER.fullmatch(value):
            raise Unauthenticated(
                f"dev mode: call metadata {key} is missing or malformed (letters, digits, '.', '_', '-')",
                metadata={"metadata": key},
            )
    return Terminal(hospital or "", terminal_id or "")


def operator_of(context: ServicerContext) -> str:
    values = _values(context, OPERATOR_METADATA)
    if not values or (len(values) == 1 and isinstance(values[0], str) and not values[0].strip()):
        raise Unauthenticated(
            "call metadata operator-id is missing: send the logged-in doctor's or cashier's staff id",
            metadata={"metadata": OPERATOR_METADATA},
        )
    value = values[0]
    if len(values) > 1 or not isinstance(value, str) or not _OPERATOR.fullmatch(value):
        raise Unauthenticated(
            "call metadata operator-id is malformed: 1-64 ASCII letters, digits or . _ : @ -",
            metadata={"metadata": OPERATOR_METADATA},
        )
    return value


def peer_terminal(context: ServicerContext, *, dev_mode: bool) -> Terminal | None:
    """The caller's terminal if it can be told, else None: for log lines, never for decisions."""
    try:
        return terminal_of(context, dev_mode=dev_mode)
    except (Unauthenticated, PermissionDenied):
        return None


def peer_certificate_pem(context: ServicerContext) -> bytes | None:
    # grpc-stubs types the values as bytes; gRPC gives a list of bytes per property.
    values: object = context.auth_context().get(PEER_CERTIFICATE_PROPERTY)
    if isinstance(values, bytes):
        return values
    if isinstance(values, Sequence) and values and isinstance(values[0], bytes):
        return values[0]
    return None


@functools.lru_cache(maxsize=_CACHED_CERTIFICATES)
def terminal_of_certificate(pem: bytes) -> Terminal | None:
    """The terminal a (CA-verified) certificate names in its URI SAN; None unless exactly one."""
    certificate = x509.load_pem_x509_certificate(pem)
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    found = [
        match
        for uri in names.get_values_for_type(x509.UniformResourceIdentifier)
        if (match := TERMINAL_URI.fullmatch(uri))
    ]
    if len(found) != 1:
        return None
    return Terminal(found[0]["hospital"], found[0]["terminal"])


def _values(context: ServicerContext, key: str) -> list[str | bytes]:
    return [value for name, value in context.invocation_metadata() or () if name == key]


def _single(context: ServicerContext, key: str) -> str | None:
    """The one value of a metadata key; None when absent, sent twice, or binary."""
    values = _values(context, key)
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    return values[0]
