"""The README's run command works: scripts/demo.sh sets up, issues certificates, serves over mTLS, plays a
clinic morning through a real gRPC client, closes the day, checks the ledger and stops; and the demo data
it enrols is what its generator writes."""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import socket
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from settlement.identity import citizen_id_is_valid

ROOT = Path(__file__).resolve().parents[1]
DEMO_TIMEOUT_SECONDS = 300
ENROLMENT_FILES = (ROOT / "demo" / "enrolment.csv", ROOT / "demo" / "clinic-morning-enrolment.csv")
# What a citizen ID or a card number looks like (the server's own last-line scrub uses the same shape).
IDENTIFIER_LIKE = re.compile(r"(?<![0-9A-Za-z])[0-9]{14,18}[0-9Xx](?![0-9A-Za-z])")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def enrolled_rows() -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in ENROLMENT_FILES:
        with path.open(encoding="utf-8", newline="") as file:
            rows.extend(csv.DictReader(file))
    return rows


@pytest.mark.slow
def test_the_demo_script_plays_a_clinic_morning_over_mtls_and_stops_cleanly(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "SETTLEMENT_DATA_DIR": str(tmp_path / "demo"),
        "SETTLEMENT_LISTEN": f"127.0.0.1:{free_port()}",
        "SETTLEMENT_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
    }
    environment.pop("SETTLEMENT_DATABASE_URL", None)
    finished = subprocess.run(
        [str(ROOT / "scripts" / "demo.sh")],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
        check=False,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-4000:]
    server_log = (tmp_path / "demo" / "server.log").read_text(encoding="utf-8")

    # Enrolled from both files; certificates issued for each desk; the server in mTLS mode, not dev mode.
    assert "demo/clinic-morning-enrolment.csv: 300 persons with their cards enrolled" in output
    assert output.count("terminal clinic-settlement://hospital/") == 4
    assert "(mTLS), reflection on" in output
    assert "DEV MODE" not in server_log
    assert "turned away at the TLS handshake: UNAVAILABLE" in output

    # The morning: settles at both hospitals, a retry, a cancel, a refund, three refusals with their reasons.
    assert output.count("门诊结算单 receipt") == 6
    assert output.count("card present ·") == 6
    assert "retry of the same request_id returned the same settlement: True" in output
    assert re.search(r"cancelled S\w+ by the reversing entry C\w+", output)
    assert "refund of line 3" in output
    assert "FAILED_PRECONDITION / CARD_BLOCKED" in output
    assert "该卡已冻结" in output
    assert "INVALID_ARGUMENT / UNKNOWN_ITEM_CODE (field lines[1].item_code)" in output
    assert "项目编码不在医保目录中" in output
    assert "PERMISSION_DENIED / OTHER_HOSPITAL" in output
    assert "只能操作本院的记录" in output
    assert "8 patients, 6 settled (card present), 1 retry answered from the first reply, 1 cancelled" in output
    for hospital_id in ("H33010600123", "H32010200077"):
        assert re.search(rf"{hospital_id}\s+[34]\s+1\s", output), f"{hospital_id}'s day is not shown"
        assert re.search(rf"{hospital_id} \d{{4}}-\d{{2}}-\d{{2}} closed at", output)

    # Every call went through the server as a terminal named by its certificate.
    assert "terminal=H32010200077D02" in server_log
    assert "outcome=UNKNOWN_ITEM_CODE" in server_log
    assert "settlement ledger check: OK" in output
    assert finished.stdout.rstrip().endswith("stopped")

    # Nothing that identifies a person in full, on the screen or in the server's log.
    rows = enrolled_rows()
    for text in (output, server_log):
        assert not IDENTIFIER_LIKE.search(text)
        for row in rows:
            assert row["card_number"] not in text
            assert row["citizen_id"] not in text
            assert row["name"] not in output


def test_the_clinic_morning_enrolment_is_what_its_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("make_enrolment", ROOT / "demo" / "make_clinic_morning_enrolment.py")
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    committed = (ROOT / "demo" / "clinic-morning-enrolment.csv").read_text(encoding="utf-8")
    assert generator.render() == committed, "run .venv/bin/python demo/make_clinic_morning_enrolment.py"


def test_the_demo_persons_are_a_few_hundred_valid_and_distinct_across_both_files() -> None:
    rows = enrolled_rows()
    assert len(rows) == 320
    for column in ("person_number", "citizen_id", "card_number"):
        assert len({row[column] for row in rows}) == len(rows), f"{column} repeats"
    assert all(citizen_id_is_valid(row["citizen_id"]) for row in rows)
    assert {row["key_reference"] for row in rows} == {"demo-issuer-1"}
    kinds = Counter((row["region"], row["insured_type"]) for row in rows)
    insured_types = ("employee", "retired", "resident")
    assert set(kinds) == {(region, kind) for region in ("330100", "320100") for kind in insured_types}
    assert {row["card_status"] for row in rows} == {"active", "lost", "blocked"}
    residents = [row for row in rows if row["insured_type"] == "resident"]
    assert all(row["current_year_fen"] == row["historical_fen"] == "0" for row in residents)
