"""The files adapter against the real engine: charge files dropped in a folder settle once, through
restarts, a crash before the result was written, and an engine that was down."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import HL7_HOSPITAL, HL7_TERMINAL, PERSON, Engine, Inspector

from hospital_adapters import HospitalConfig, build_adapter
from hospital_adapters.files.adapter import FilesAdapter
from hospital_adapters.files.inbox import result_path
from hospital_adapters.samples import CHARGE_FILES_DIR
from settlement.client import GrpcEnginePort

WAIT_SECONDS = 15.0
SAMPLE_FILES = ("visit-0001.csv", "visit-0002.json")

MakeConfig = Callable[[Path], HospitalConfig]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    for name in SAMPLE_FILES:
        shutil.copy(CHARGE_FILES_DIR / name, folder / name)
    return folder


@pytest.fixture
def inspector(engine: Engine) -> Inspector:
    return engine.inspector(HL7_HOSPITAL)


def files_adapter(config: HospitalConfig, port: GrpcEnginePort) -> FilesAdapter:
    adapter = build_adapter(config, port)
    assert isinstance(adapter, FilesAdapter)
    return adapter


def wait_for_results(inbox: Path, names: tuple[str, ...] = SAMPLE_FILES) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + WAIT_SECONDS
    while not all(result_path(inbox / name).exists() for name in names):
        assert time.monotonic() < deadline, f"no result for {names} within {WAIT_SECONDS} s"
        time.sleep(0.05)
    return {name: json.loads(result_path(inbox / name).read_text(encoding="utf-8")) for name in names}


def test_dropped_files_settle_once_even_when_the_adapter_restarts_or_crashed_before_the_result(
        files_config: MakeConfig, hl7_port: GrpcEnginePort, inbox: Path, inspector: Inspector,
        engine: Engine) -> None:
    balance_before_fen = inspector.balance_fen(PERSON)
    config = files_config(inbox)
    with files_adapter(config, hl7_port):
        results = wait_for_results(inbox)

    for result in results.values():
        assert result["status"] == "settled"
        stored = inspector.settlement(result["request_id"])
        assert stored is not None
        assert (result["settlement_id"], result["total_fen"], result["account_paid_fen"], result["cash_fen"]) == (
            stored.settlement_id, stored.split.total_fen, stored.split.account_paid_fen, stored.split.cash_fen)
    assert results["visit-0001.csv"]["total_fen"] == 3900
    assert results["visit-0002.json"]["total_fen"] == 2000
    assert engine.settlement_rows() == 2
    paid_fen = sum(result["account_paid_fen"] for result in results.values())
    assert inspector.balance_fen(PERSON) == balance_before_fen - paid_fen

    # A restart: the result files mark the work as done, nothing is sent again.
    written = {name: result_path(inbox / name).read_bytes() for name in SAMPLE_FILES}
    with files_adapter(config, hl7_port):
        time.sleep(0.5)  # several polls
    assert {name: result_path(inbox / name).read_bytes() for name in SAMPLE_FILES} == written

    # A crash after the engine settled but before the result was written: the file goes again under the
    # same visit_id, the engine answers with the first settlement.
    result_path(inbox / "visit-0001.csv").unlink()
    with files_adapter(config, hl7_port):
        again = wait_for_results(inbox, ("visit-0001.csv",))
    assert again["visit-0001.csv"] == results["visit-0001.csv"]
    assert engine.settlement_rows() == 2
    assert inspector.balance_fen(PERSON) == balance_before_fen - paid_fen


def test_a_file_sent_while_the_engine_is_down_has_no_result_and_settles_once_it_is_back(
        files_config: MakeConfig, hl7_port: GrpcEnginePort, inbox: Path, engine: Engine) -> None:
    down = GrpcEnginePort.connect("localhost:1", operator_id="his-adapter",
                                  tls=engine.tls(HL7_HOSPITAL, HL7_TERMINAL), timeout_ms=2_000)
    with down:
        assert files_adapter(files_config(inbox), down).inbox.process_pending() == []
    assert not any(result_path(inbox / name).exists() for name in SAMPLE_FILES)

    written = files_adapter(files_config(inbox), hl7_port).inbox.process_pending()

    assert sorted(path.name for path in written) == sorted(f"{name}.result.json" for name in SAMPLE_FILES)
    assert engine.settlement_rows() == 2


def test_a_file_with_an_unknown_code_is_answered_refused_naming_the_line_and_nothing_is_settled(
        files_config: MakeConfig, hl7_port: GrpcEnginePort, tmp_path: Path, engine: Engine) -> None:
    folder = tmp_path / "refused"
    folder.mkdir()
    text = (CHARGE_FILES_DIR / "visit-0001.csv").read_text(encoding="utf-8").replace("YP20117", "XX9999")
    (folder / "visit-0003.csv").write_text(text.replace("V20260302-0001", "V20260302-0003"), encoding="utf-8")

    files_adapter(files_config(folder), hl7_port).inbox.process_pending()

    result = json.loads(result_path(folder / "visit-0003.csv").read_text(encoding="utf-8"))
    assert result["status"] == "refused"
    [problem] = result["problems"]
    assert (problem["reason"], problem["line_id"]) == ("UNKNOWN_ITEM_CODE", "2")
    assert engine.settlement_rows() == 0
