"""The real engine behind the hospital adapters: a fresh database (SQLite and PostgreSQL) seeded with the
demo hospitals and enrolment by the ``settlement`` commands, the gRPC server over mTLS on port 0, the
HIS terminals' engine ports and a desk terminal's view of the engine's state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_helpers import (
    DEMO,
    FHIR_HOSPITAL,
    FHIR_TERMINAL,
    HL7_HOSPITAL,
    HL7_TERMINAL,
    POLICIES,
    TODAY,
    Engine,
    on_port_zero,
)

from hospital_adapters import HospitalConfig, build_adapter, load_config
from hospital_adapters.fhir.adapter import FhirAdapter
from hospital_adapters.hl7.adapter import Hl7Adapter
from hospital_adapters.samples import FHIR_HOSPITAL_CONFIG, HL7_HOSPITAL_CONFIG
from settlement import cli
from settlement.client import GrpcEnginePort
from settlement.storage.engine import Engines


def seed_demo_data(database_url: str) -> None:
    """What an operator runs: ``settlement hospitals import`` and ``settlement enrol import``."""
    common = ["--policies", str(POLICIES), "--database", database_url]
    assert cli.main(["hospitals", "import", str(DEMO / "hospitals.toml"), *common]) == cli.EXIT_OK
    assert cli.main(["enrol", "import", str(DEMO / "enrolment.csv"), "--insecure-demo-key",
                     "--business-date", TODAY.isoformat(), *common]) == cli.EXIT_OK


@pytest.fixture
def engine(database_url: str, engines: Engines, tmp_path: Path) -> Iterator[Engine]:
    seed_demo_data(database_url)
    running = Engine.start(engines, tmp_path / "pki")
    yield running
    running.close()


@pytest.fixture
def hl7_port(engine: Engine) -> GrpcEnginePort:
    return engine.his_port(HL7_HOSPITAL, HL7_TERMINAL)


@pytest.fixture
def fhir_port(engine: Engine) -> GrpcEnginePort:
    return engine.his_port(FHIR_HOSPITAL, FHIR_TERMINAL)


@pytest.fixture
def hl7_config() -> HospitalConfig:
    return on_port_zero(load_config(HL7_HOSPITAL_CONFIG))


@pytest.fixture
def hl7_adapter(hl7_config: HospitalConfig, hl7_port: GrpcEnginePort) -> Iterator[Hl7Adapter]:
    adapter = build_adapter(hl7_config, hl7_port)
    assert isinstance(adapter, Hl7Adapter)
    with adapter:
        yield adapter


@pytest.fixture
def fhir_adapter(fhir_port: GrpcEnginePort) -> Iterator[FhirAdapter]:
    adapter = build_adapter(on_port_zero(load_config(FHIR_HOSPITAL_CONFIG)), fhir_port)
    assert isinstance(adapter, FhirAdapter)
    with adapter:
        yield adapter


@pytest.fixture
def files_config(tmp_path: Path) -> Callable[[Path], HospitalConfig]:
    """A small clinic's configuration: the HL7 hospital's code table, charge files in ``inbox``."""

    def make(inbox: Path) -> HospitalConfig:
        base = load_config(HL7_HOSPITAL_CONFIG)
        return HospitalConfig(
            hospital_id=base.hospital_id,
            name=base.name,
            adapter="files",
            code_table_path=base.code_table_path,
            connection={"inbox": str(inbox), "poll_interval_ms": 100},
            base_dir=tmp_path,
        )

    return make
