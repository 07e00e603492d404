"""The files adapter driven through its real transport: charge files dropped into a folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

from adapter_helpers import PERSON, PERSON_BALANCE_FEN

from hospital_adapters import FakeEngine, HospitalConfig, build_adapter
from hospital_adapters.__main__ import main
from hospital_adapters.files.adapter import FilesAdapter

CSV_HEADER = "visit_id,person_number,visit_date,line_id,code,unit,quantity,unit_price,amount\n"


def csv_visit(visit_id: str = "V20240501-0001", *rows: str) -> str:
    rows = rows or ("1,GH0001,次,1,25.00,25.00", "2,YP20117,盒,2,7.00,14.00")
    return CSV_HEADER + "".join(f"{visit_id},{PERSON},2024-05-01,{row}\n" for row in rows)


def inbox_of(adapter: FilesAdapter) -> Path:
    return adapter.inbox.settings.inbox


def wait_for(path: Path, timeout_seconds: float = 5.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} was not written"
        time.sleep(0.02)
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_a_csv_file_dropped_in_the_folder_is_settled_and_answered_next_to_it(files_adapter: FilesAdapter,
                                                                             engine: FakeEngine) -> None:
    (inbox_of(files_adapter) / "visit-0001.csv").write_text(csv_visit(), encoding="utf-8")
    with files_adapter:
        result = wait_for(inbox_of(files_adapter) / "visit-0001.csv.result.json")

    assert result["status"] == "settled"
    assert (result["total_fen"], result["fund_paid_fen"], result["account_paid_fen"]) == (3900, 2730, 1170)
    assert result["balance_after_fen"] == PERSON_BALANCE_FEN - 1170
    [(request, _)] = engine.settlements
    assert [(line.quantity, line.unit_price_yuan) for line in request.lines] == [("1", "25"), ("40", "0.35")]


def test_a_json_file_is_settled_with_exact_decimals(files_adapter: FilesAdapter, engine: FakeEngine) -> None:
    visit = {"visit_id": "V-JSON-1", "person_number": PERSON, "visit_date": "2024-05-01", "use_account": False,
             "lines": [{"line_id": "1", "code": "JY0301", "unit": "项", "quantity": 1, "unit_price": 20.10}]}
    (inbox_of(files_adapter) / "visit.json").write_text(json.dumps(visit), encoding="utf-8")
    [written] = files_adapter.inbox.process_pending()

    result = json.loads(written.read_text(encoding="utf-8"))
    assert (result["status"], result["total_fen"], result["account_paid_fen"]) == ("settled", 2010, 0)
    assert engine.settlements[0][0].use_account is False


def test_a_file_with_bad_lines_lists_every_one_and_settles_nothing(files_adapter: FilesAdapter,
                                                                   engine: FakeEngine) -> None:
    (inbox_of(files_adapter) / "bad.csv").write_text(csv_visit(
        "V-BAD", "1,GH0001,次,1,25.00,", "2,NOPE,盒,1,1.00,", "3,YP20117,瓶,1,7.00,", "4,JY0301,项,-1,20.00,"),
        encoding="utf-8")
    [written] = files_adapter.inbox.process_pending()

    result = json.loads(written.read_text(encoding="utf-8"))
    assert result["status"] == "refused"
    assert [(p["line_id"], p["reason"]) for p in result["problems"]] == [
        ("4", "INVALID_AMOUNT"), ("2", "UNKNOWN_ITEM_CODE"), ("3", "UNIT_MISMATCH")]
    assert all(p["message_zh"] for p in result["problems"])
    assert engine.settle_calls == 0


def test_a_file_is_processed_once_even_when_the_adapter_restarts(files_config: HospitalConfig,
                                                                 engine: FakeEngine) -> None:
    first = build_adapter(files_config, engine)
    assert isinstance(first, FilesAdapter)
    (inbox_of(first) / "visit.csv").write_text(csv_visit(), encoding="utf-8")
    assert len(first.inbox.process_pending()) == 1

    restarted = build_adapter(files_config, engine)
    assert isinstance(restarted, FilesAdapter)
    assert restarted.inbox.process_pending() == []
    assert engine.settle_calls == 1


def test_a_lost_result_file_is_rewritten_without_settling_twice(files_adapter: FilesAdapter,
                                                                engine: FakeEngine) -> None:
    charge = inbox_of(files_adapter) / "visit.csv"
    charge.write_text(csv_visit(), encoding="utf-8")
    [written] = files_adapter.inbox.process_pending()
    first = written.read_text(encoding="utf-8")
    written.unlink()  # as if the adapter crashed after the engine answered, before the rename

    [rewritten] = files_adapter.inbox.process_pending()
    assert rewritten.read_text(encoding="utf-8") == first
    assert len(engine.settlements) == 1
    assert engine.settle_calls == 2


def test_no_result_is_written_while_the_engine_is_unreachable(files_adapter: FilesAdapter,
                                                              engine: FakeEngine) -> None:
    (inbox_of(files_adapter) / "visit.csv").write_text(csv_visit(), encoding="utf-8")
    engine.unavailable = True
    assert files_adapter.inbox.process_pending() == []

    engine.unavailable = False
    assert len(files_adapter.inbox.process_pending()) == 1
    assert len(engine.settlements) == 1


def test_files_still_being_written_and_unrelated_files_are_left_alone(files_adapter: FilesAdapter,
                                                                      engine: FakeEngine) -> None:
    inbox = inbox_of(files_adapter)
    (inbox / "visit.csv.tmp").write_text(csv_visit(), encoding="utf-8")
    (inbox / ".visit.csv").write_text(csv_visit(), encoding="utf-8")
    (inbox / "readme.txt").write_text("hello", encoding="utf-8")
    assert files_adapter.inbox.process_pending() == []
    assert engine.settle_calls == 0


def test_the_command_line_processes_a_folder_once(files_config: HospitalConfig, tmp_path: Path,
                                                  capsys: object) -> None:
    inbox = Path(files_config.connection["inbox"])
    (inbox / "visit.csv").write_text(csv_visit(), encoding="utf-8")
    config_file = tmp_path / "clinic.toml"
    config_file.write_text(
        f'hospital_id = "H1"\nname = "诊所"\nadapter = "files"\ncode_table = "{files_config.code_table_path}"\n'
        f'[connection]\ninbox = "{inbox}"\n', encoding="utf-8")

    assert main(["--config", str(config_file), "--once", "--fake-person", f"{PERSON}=500"]) == 0
    result = json.loads((inbox / "visit.csv.result.json").read_text(encoding="utf-8"))
    assert (result["status"], result["account_paid_fen"], result["cash_fen"]) == ("settled", 500, 670)
