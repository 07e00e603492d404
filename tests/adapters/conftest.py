"""Fixtures for the hospital adapter tests: the sample hospitals on port 0, a fake engine, and clients
that speak each transport for real (MLLP over TCP, HTTP, a folder)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from adapter_helpers import PERSON, PERSON_BALANCE_FEN, on_port_zero
from mllp_client import MllpClient

from hospital_adapters import FakeEngine, HospitalConfig, build_adapter, load_config
from hospital_adapters.fhir.adapter import FhirAdapter
from hospital_adapters.files.adapter import FilesAdapter
from hospital_adapters.hl7.adapter import Hl7Adapter
from hospital_adapters.samples import FHIR_HOSPITAL_CONFIG, HL7_HOSPITAL_CONFIG


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine({PERSON: PERSON_BALANCE_FEN, "P002": 0})


@pytest.fixture
def hl7_config() -> HospitalConfig:
    return on_port_zero(load_config(HL7_HOSPITAL_CONFIG))


@pytest.fixture
def fhir_config() -> HospitalConfig:
    return on_port_zero(load_config(FHIR_HOSPITAL_CONFIG))


@pytest.fixture
def hl7_adapter(hl7_config: HospitalConfig, engine: FakeEngine) -> Iterator[Hl7Adapter]:
    adapter = build_adapter(hl7_config, engine)
    assert isinstance(adapter, Hl7Adapter)
    with adapter:
        yield adapter


@pytest.fixture
def fhir_adapter(fhir_config: HospitalConfig, engine: FakeEngine) -> Iterator[FhirAdapter]:
    adapter = build_adapter(fhir_config, engine)
    assert isinstance(adapter, FhirAdapter)
    with adapter:
        yield adapter


@pytest.fixture
def files_config(tmp_path: Path) -> HospitalConfig:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    base = load_config(HL7_HOSPITAL_CONFIG)
    return replace(base, adapter="files", connection={"inbox": str(inbox), "poll_interval_ms": 100})


@pytest.fixture
def files_adapter(files_config: HospitalConfig, engine: FakeEngine) -> FilesAdapter:
    adapter = build_adapter(files_config, engine)
    assert isinstance(adapter, FilesAdapter)
    return adapter


@pytest.fixture
def mllp_client(hl7_adapter: Hl7Adapter) -> Iterator[Callable[[], MllpClient]]:
    clients: list[MllpClient] = []

    def connect() -> MllpClient:
        client = MllpClient(hl7_adapter.port)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def post(fhir_adapter: FhirAdapter) -> Callable[..., tuple[int, dict[str, Any], bytes]]:
    def send(body: bytes | dict[str, Any], *, path: str = "/fhir/Claim",
             content_type: str = "application/fhir+json") -> tuple[int, dict[str, Any], bytes]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        connection = http.client.HTTPConnection("127.0.0.1", fhir_adapter.port, timeout=5)
        try:
            connection.request("POST", path, body=data, headers={"Content-Type": content_type})
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        return response.status, json.loads(raw), raw

    return send
