"""The engine port, the fake engine, configuration and the registry."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from hospital_adapters import (
    CanonicalLine,
    CanonicalSettleRequest,
    ConfigError,
    FakeEngine,
    Refusal,
    Settled,
    Split,
    VisitType,
    build_adapter,
    derive_request_id,
    find_factory,
    load_config,
)
from hospital_adapters.hl7.adapter import Hl7Adapter
from hospital_adapters.reasons import ADAPTER_REASONS
from hospital_adapters.registry import available_kinds
from hospital_adapters.samples import HL7_HOSPITAL_CONFIG
from settlement.errors import InvariantViolated


def request(request_id: str = "r1", quantity: str = "2", person: str = "P1") -> CanonicalSettleRequest:
    return CanonicalSettleRequest("H1", request_id, person, date(2024, 5, 1), VisitType.OUTPATIENT, True,
                                  (CanonicalLine("C1", "1", quantity, "10.5"),))


def test_the_request_id_depends_only_on_hospital_channel_and_source_id() -> None:
    first = derive_request_id("H1", "hl7", "HIS|F|MSG1")
    assert first == derive_request_id("H1", "hl7", "HIS|F|MSG1")
    assert len({first, derive_request_id("H2", "hl7", "HIS|F|MSG1"), derive_request_id("H1", "fhir", "HIS|F|MSG1"),
                derive_request_id("H1", "hl7", "HIS|F|MSG2")}) == 4


def test_the_fake_engine_answers_a_retry_with_its_first_answer_even_a_refusal() -> None:
    engine = FakeEngine({"P1": 500})
    settled = engine.settle(request())
    assert isinstance(settled, Settled)
    assert settled.split.total_fen == 2100
    assert engine.settle(request()) == settled

    engine.refusal = Refusal("NO_POLICY_IN_FORCE", "no policy")
    refused = engine.settle(request("r2"))
    engine.refusal = None
    assert engine.settle(request("r2")) == refused
    assert len(engine.settlements) == 1


def test_the_fake_engine_refuses_a_reused_request_id_with_another_body() -> None:
    engine = FakeEngine({"P1": 500})
    engine.settle(request())
    refusal = engine.settle(request(quantity="3"))
    assert isinstance(refusal, Refusal)
    assert refusal.reason == "REQUEST_ID_REUSED"


def test_a_quote_writes_nothing() -> None:
    engine = FakeEngine({"P1": 500})
    engine.quote(request())
    assert engine.settlements == []
    assert engine.balance_fen("P1") == 500


def test_a_split_that_breaks_an_identity_is_a_crash_not_an_answer() -> None:
    good = Split(100, 0, 0, 0, 100, 0, 70, 30, 0, 0)
    with pytest.raises(InvariantViolated):
        replace(good, cash_fen=1)
    with pytest.raises(InvariantViolated):
        replace(good, deductible_paid_fen=101)


def test_a_canonical_line_beyond_the_spec_scale_is_a_bug() -> None:
    with pytest.raises(InvariantViolated):
        CanonicalLine("C1", "1", "1.00001", "1")


def test_the_registry_builds_the_configured_kind_from_a_source_checkout() -> None:
    config = load_config(HL7_HOSPITAL_CONFIG)
    assert {"hl7", "fhir", "files"} <= set(available_kinds())
    assert isinstance(build_adapter(config, FakeEngine({})), Hl7Adapter)
    with pytest.raises(ConfigError, match="unknown adapter kind"):
        find_factory("x400")


@pytest.mark.parametrize(("text", "complaint"), [
    ('hospital_id = "H1"\nname = "x"\nadapter = "hl7"\ncode_table = "c.csv"\ncolour = 1\n', "unknown keys"),
    ('name = "x"\nadapter = "hl7"\ncode_table = "c.csv"\n', "hospital_id"),
    ('hospital_id = "H1"\nname = "x"\nadapter = "hl7"\ncode_table = "c.csv"\nuse_account = "yes"\n', "use_account"),
    ('hospital_id = "H1"\nname = "x"\nadapter = "hl7"\ncode_table = "c.csv"\nvisit_type = "INPATIENT"\n',
     "visit_type"),
    ("hospital_id = ", "Invalid"),
])
def test_a_configuration_mistake_names_the_key(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "hospital.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=complaint):
        load_config(path)


def test_a_port_that_is_not_a_number_is_refused_when_the_adapter_is_built() -> None:
    config = load_config(HL7_HOSPITAL_CONFIG)
    with pytest.raises(ConfigError, match="port must be a int"):
        build_adapter(replace(config, connection={**config.connection, "port": "2575"}), FakeEngine({}))


def test_the_integration_guide_documents_every_adapter_reason() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "integration.md").read_text(encoding="utf-8")
    missing = [reason for reason in ADAPTER_REASONS if f"`{reason}`" not in guide]
    assert missing == []
