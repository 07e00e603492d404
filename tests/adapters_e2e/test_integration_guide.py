"""The integration guide's examples are true: its messages are the samples, and its answers are what the
real engine gives when they are sent in the guide's order on a fresh demo database."""

from __future__ import annotations

import http.client
import json
import re
import shutil
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from e2e_helpers import REPOSITORY, Engine, MllpClient, sample_dft

from hospital_adapters import HospitalConfig, build_adapter
from hospital_adapters.fhir.adapter import FhirAdapter
from hospital_adapters.files.adapter import FilesAdapter
from hospital_adapters.files.inbox import result_path
from hospital_adapters.hl7.adapter import Hl7Adapter
from hospital_adapters.samples import CHARGE_FILES_DIR, FHIR_SAMPLE_CLAIM, HL7_SAMPLE_MESSAGE
from settlement.client import GrpcEnginePort

GUIDE = REPOSITORY / "docs" / "integration.md"
_SETTLEMENT_ID = re.compile(r"S[0-9a-f]{22}")  # opaque, different on every run
_NEXT_HEADING = re.compile(r"\n#{1,3} ")
_CODE_BLOCK = re.compile(r"```[a-z]*\n(.*?)```", re.DOTALL)


def code_blocks(heading: str) -> list[str]:
    """The fenced blocks of one section of the guide, in order."""
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    end = _NEXT_HEADING.search(text, start)
    return _CODE_BLOCK.findall(text[start:end.start() if end else None])


def hl7(text: str) -> str:
    """Guide text (one segment per line) as it goes on the wire (segments separated by CR)."""
    return "\r".join(text.splitlines())


def masked(text: str) -> str:
    return _SETTLEMENT_ID.sub("S…", text)


def json_masked(text: str | bytes) -> Any:
    return json.loads(masked(text.decode() if isinstance(text, bytes) else text), parse_float=Decimal)


def post(port: int, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/fhir/Claim", body=body, headers={"Content-Type": "application/fhir+json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_guides_examples_are_the_samples_and_the_engines_answers_to_them(
        engine: Engine, hl7_adapter: Hl7Adapter, fhir_adapter: FhirAdapter, hl7_port: GrpcEnginePort,
        files_config: Callable[[Path], HospitalConfig], tmp_path: Path) -> None:
    message, documented_ack = code_blocks("### Example: a DFT^P03 and its ACK")
    [documented_error_ack] = code_blocks("### Example: an error ACK")
    [documented_claim] = code_blocks("### Example: a Claim")
    [documented_response] = code_blocks("### Its ClaimResponse (HTTP 200)")
    [documented_outcome] = code_blocks("### Errors: an OperationOutcome")
    charge_csv, charge_json, documented_result = code_blocks("## 5. Charge files (small clinics)")

    assert message == HL7_SAMPLE_MESSAGE.read_text(encoding="utf-8")
    client = MllpClient(hl7_adapter.port)
    try:
        assert masked(client.exchange(hl7(message))) == masked(hl7(documented_ack))
        error_ack = client.exchange(sample_dft("MSG00002", changes={
            "15.36&CNY^UP^^^盒": "15.36&CNY^UP^^^瓶", "JY0301^血常规": "XX9999^未对照项目"}))
    finally:
        client.close()
    assert error_ack == hl7(documented_error_ack)

    assert json.loads(documented_claim) == json.loads(FHIR_SAMPLE_CLAIM.read_text(encoding="utf-8"))
    status, response = post(fhir_adapter.port, FHIR_SAMPLE_CLAIM.read_bytes())
    assert status == 200
    assert json_masked(response) == json_masked(documented_response)
    unknown = json.loads(FHIR_SAMPLE_CLAIM.read_text(encoding="utf-8"))
    unknown["item"][0]["productOrService"]["coding"][0]["code"] = "LAB-XYZ"
    status, outcome = post(fhir_adapter.port, json.dumps(unknown).encode())
    assert status == 422
    assert json.loads(outcome) == json.loads(documented_outcome)

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name, documented in (("visit-0001.csv", charge_csv), ("visit-0002.json", charge_json)):
        assert (CHARGE_FILES_DIR / name).read_text(encoding="utf-8") == documented
        shutil.copy(CHARGE_FILES_DIR / name, inbox / name)
    adapter = build_adapter(files_config(inbox), hl7_port)
    assert isinstance(adapter, FilesAdapter)
    adapter.inbox.process_pending()
    assert json_masked(result_path(inbox / "visit-0001.csv").read_text(encoding="utf-8")) == json_masked(
        documented_result)
    assert engine.settlement_rows() == 4
