"""Hospital integration: per-hospital HIS adapters (HL7 v2 over MLLP, FHIR R4B, charge files).

An adapter receives or fetches a visit's charge lines in the hospital's own codes, maps them to
catalogue codes through the hospital's code table, settles them through an ``EnginePort`` and reports
the result back in the hospital's own format. The engine is reached only through the port, so adapters
are tested against ``FakeEngine`` and deployed with the gRPC implementation.

Public surface: the port and its types, the fake, configuration, the registry and the adapter base.
Transports live in ``hospital_adapters.hl7``, ``.fhir`` and ``.files`` and are imported on demand.
"""

from hospital_adapters.adapter import AdapterFactory, HospitalAdapter
from hospital_adapters.config import ConfigError, HospitalConfig, load_config
from hospital_adapters.fake import FakeEngine
from hospital_adapters.port import (
    CanonicalLine,
    CanonicalSettleRequest,
    EnginePort,
    EngineUnavailable,
    Quoted,
    QuoteOutcome,
    Refusal,
    Settled,
    SettleOutcome,
    Split,
    VisitType,
    derive_request_id,
)
from hospital_adapters.registry import ENTRY_POINT_GROUP, build_adapter, find_factory

__all__ = [
    "ENTRY_POINT_GROUP",
    "AdapterFactory",
    "CanonicalLine",
    "CanonicalSettleRequest",
    "ConfigError",
    "EnginePort",
    "EngineUnavailable",
    "FakeEngine",
    "HospitalAdapter",
    "HospitalConfig",
    "QuoteOutcome",
    "Quoted",
    "Refusal",
    "SettleOutcome",
    "Settled",
    "Split",
    "VisitType",
    "build_adapter",
    "derive_request_id",
    "find_factory",
    "load_config",
]
