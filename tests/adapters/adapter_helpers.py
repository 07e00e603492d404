"""Small HIS-side clients and sample messages for the hospital adapter tests (imported by the tests
and by conftest; a module of its own so its name cannot clash with another directory's conftest)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hospital_adapters import HospitalConfig

# A person number (人员编号, not a citizen ID) the fake engine knows, with 100.00 yuan on the account.
PERSON = "33010000000000012345"
PERSON_BALANCE_FEN = 10_000


def on_port_zero(config: HospitalConfig) -> HospitalConfig:
    return replace(config, connection={**config.connection, "port": 0})


def dft_p03(control_id: str = "MSG00001", *, person: str = PERSON, lines: list[str] | None = None,
            processing_id: str = "P") -> str:
    """A DFT^P03 as the sample HL7 hospital's HIS sends it; ``lines`` are FT1 segments."""
    if lines is None:
        lines = [
            "FT1|1|T0001||20240501093000|20240501|CG|GH0001^普通门诊诊查费^L|||1|25.00|25.00|0101^内科|HZYB",
            ("FT1|2|T0002||20240501093000|20240501|CG|YP10023^阿莫西林胶囊0.25g*24粒^L|||2|30.72|15.36&CNY^UP^^^盒"
            "|0101^内科|HZYB"),
            "FT1|3|T0003||20240501093000|20240501|CG|JY0301^血常规^L|||1|20.00|20.00^^^^项|0101^内科|HZYB",
        ]
    return "\r".join([
        (f"MSH|^~\\&|HIS|H33010600123|SETTLEMENT|H33010600123|20240501093000||DFT^P03^DFT_P03|{control_id}"
        f"|{processing_id}|2.5|||||CHN|UNICODE UTF-8"),
        "EVN|P03|20240501093000",
        f"PID|1||{person}^^^HZYB^PN||张^三||19800101|M",
        "PV1|1|O|0101^^^H33010600123",
        *lines,
    ])


def segments(ack: str, name: str) -> list[list[str]]:
    """The fields of every segment with this name (index 0 is the segment name)."""
    return [segment.split("|") for segment in ack.split("\r") if segment.startswith(name + "|")]


def claim(identifier: str = "CLM-20240501-0001", *, person: str = PERSON, use: str = "claim",
          items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Claim as the sample FHIR hospital's HIS posts it."""
    system = "http://his.example-chc.cn/fhir/CodeSystem/charge-item"
    if items is None:
        items = [
            {"sequence": 1, "productOrService": {"coding": [{"system": system, "code": "ZC-001"}]},
             "quantity": {"value": 1, "code": "VISIT"}, "unitPrice": {"value": 10.00, "currency": "CNY"}},
            {"sequence": 2, "productOrService": {"coding": [{"system": system, "code": "DRUG-MET-500"}]},
             "quantity": {"value": 1, "code": "BOX"}, "unitPrice": {"value": 21.00, "currency": "CNY"}},
        ]
    return {
        "resourceType": "Claim",
        "identifier": [{"system": "http://his.example-chc.cn/claim", "value": identifier}],
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type",
                             "code": "professional"}]},
        "use": use,
        "patient": {"identifier": {"system": "http://hzybj.example.cn/person", "value": person}},
        "created": "2024-05-01T09:30:00+08:00",
        "provider": {"identifier": {"value": "H33010800045"}},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "杭州市职工基本医疗保险"}}],
        "item": items,
    }
