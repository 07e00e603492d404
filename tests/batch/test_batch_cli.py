"""The batch jobs from the command line: messages, exit codes, and the demo data end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_helpers import DEMO, POLICIES, enrolment_csv, execute, person
from sqlalchemy import select

from settlement.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from settlement.commands._options import CITIZEN_ID_KEY_ENV, DATABASE_URL_ENV, shown_url
from settlement.storage import tables as t
from settlement.storage.engine import make_engines
from settlement.storage.migrate import head_revision

KEY_HEX = "00112233445566778899aabbccddeeff"


@pytest.fixture(autouse=True)
def no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.delenv(CITIZEN_ID_KEY_ENV, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def migrated(database_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert run(capsys, "db", "upgrade", "--database", database_url)[0] == EXIT_OK
    return database_url


def test_db_upgrade_prints_the_revision_and_may_be_repeated(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run(capsys, "db", "upgrade", "--database", database_url)
    second = run(capsys, "db", "upgrade", "--database", database_url)

    assert first[0] == second[0] == EXIT_OK
    assert f"is at schema revision {head_revision()}" in first[1]
    assert (
        shown_url("postgresql://clerk:s3cret@db.example/settlement") == "postgresql://clerk:***@db.example/settlement"
    )


def test_a_job_on_an_unmigrated_database_says_which_command_to_run(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "ledger", "check", "--database", database_url)

    assert code == EXIT_FAILED
    assert "DATABASE_NOT_MIGRATED" in err
    assert "run `settlement db upgrade` first" in err


def test_the_demo_data_imports_once_funds_and_checks_out(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ("--database", migrated(database_url, capsys))

    policies = ("--policies", str(POLICIES))
    hospitals = run(capsys, "hospitals", "import", str(DEMO / "hospitals.toml"), *policies, *db)
    enrolled = run(capsys, "enrol", "import", str(DEMO / "enrolment.csv"), "--insecure-demo-key", *policies, *db)
    again = run(capsys, "enrol", "import", str(DEMO / "enrolment.csv"), "--insecure-demo-key", *policies, *db)
    fund = ("--region", "330100", "--year", "2026", "--insured-type", "employee", "--amount-fen", "120000")
    funded = run(capsys, "accounts", "fund", *fund, *policies, *db)
    checked = run(capsys, "ledger", "check", *db)

    added = "3 hospital(s) and 7 terminal(s) added, 0 already registered as in the file"
    assert hospitals[:2] == (EXIT_OK, f"settlement hospitals import: {DEMO / 'hospitals.toml'}: {added}\n")
    assert enrolled[0] == EXIT_OK
    assert "20 persons with their cards enrolled" in enrolled[1]
    assert "--insecure-demo-key" in enrolled[2]  # the warning
    assert again[0] == EXIT_OK
    assert "already imported" in again[1]
    assert "nothing changed" in again[1]
    assert funded[:2] == (
        EXIT_OK,
        "settlement accounts fund: fund:330100:2026:employee: 5 persons funded, 6000.00 yuan\n",
    )
    assert checked[0] == EXIT_OK
    assert checked[1].startswith("settlement ledger check: OK: ")


def test_a_bad_enrolment_file_exits_1_naming_each_line_and_column_and_imports_nothing(
    database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = ("--database", migrated(database_url, capsys))
    path = tmp_path / "enrolment.csv"
    path.write_bytes(enrolment_csv([person(1), person(2, region="123456"), person(3, historical_fen="1,000")]))

    code, out, err = run(capsys, "enrol", "import", str(path), "--citizen-id-key-file", str(_key_file(tmp_path)), *db)

    assert (code, out) == (EXIT_FAILED, "")
    assert "INVALID_IMPORT_FILE" in err
    assert "nothing imported" in err
    assert f"{path}:3: region: must be a known region" in err
    assert f"{path}:4: historical_fen: must be whole fen" in err
    engines = make_engines(database_url)
    with engines.reader.connect() as connection:
        assert connection.execute(select(t.persons)).first() is None
    engines.dispose()


def test_enrolment_needs_a_citizen_id_key_and_refuses_a_short_one(
    database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = ("--database", migrated(database_url, capsys))
    path = tmp_path / "enrolment.csv"
    path.write_bytes(enrolment_csv([person(1)]))

    without = run(capsys, "enrol", "import", str(path), *db)
    monkeypatch.setenv(CITIZEN_ID_KEY_ENV, "abcd")
    short = run(capsys, "enrol", "import", str(path), *db)
    monkeypatch.setenv(CITIZEN_ID_KEY_ENV, KEY_HEX)
    with_key = run(capsys, "enrol", "import", str(path), *db)

    assert without[0] == EXIT_USAGE
    assert f"set ${CITIZEN_ID_KEY_ENV}" in without[2]
    assert short[0] == EXIT_USAGE
    assert "at least 16 bytes" in short[2]
    assert with_key[0] == EXIT_OK
    assert "1 persons with their cards enrolled" in with_key[1]


def test_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "enrol", "import", str(tmp_path / "absent.csv"))

    assert code == EXIT_USAGE
    assert "cannot read" in err


def test_the_database_comes_from_the_environment_when_not_given(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, database_url)

    code, out, _ = run(capsys, "db", "upgrade")

    assert code == EXIT_OK
    assert head_revision() in out


def test_funding_and_rollover_say_what_they_did_and_repeat_as_no_ops(
    database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = ("--database", migrated(database_url, capsys))
    path = tmp_path / "enrolment.csv"
    path.write_bytes(enrolment_csv([person(1, current_year_fen="0"), person(2, current_year_fen="100")]))
    run(capsys, "enrol", "import", str(path), "--citizen-id-key-file", str(_key_file(tmp_path)), *db)
    fund = ("accounts", "fund", "--region", "330100", "--year", "2025", "--insured-type", "employee")
    day = ("--business-date", "2025-01-02")
    first = run(capsys, *fund, "--amount-fen", "1000", *day, *db)
    repeat = run(capsys, *fund, "--amount-fen", "1000", *day, *db)
    changed = run(capsys, *fund, "--amount-fen", "2000", *day, *db)
    early = run(capsys, "accounts", "rollover", "--year", "2025", "--business-date", "2025-12-30", *db)
    rolled = run(capsys, "accounts", "rollover", "--year", "2025", "--chunk-persons", "1", *db)
    rolled_again = run(capsys, "accounts", "rollover", "--year", "2025", *db)

    assert first[:2] == (EXIT_OK, "settlement accounts fund: fund:330100:2025:employee: 2 persons funded, 20.00 yuan\n")
    assert repeat[0] == EXIT_OK
    assert "already done (2 persons, 20.00 yuan); nothing changed" in repeat[1]
    assert changed[0] == EXIT_FAILED
    assert "REQUEST_ID_REUSED" in changed[2]
    assert "amount_fen 1000" in changed[2]
    assert early[0] == EXIT_FAILED
    assert "year 2025 is not over" in early[2]
    assert rolled[:2] == (EXIT_OK, "settlement accounts rollover: rollover:2025: 2 persons rolled over, 21.00 yuan\n")
    assert rolled_again[0] == EXIT_OK
    assert "already done" in rolled_again[1]


def test_ledger_check_exits_1_and_names_the_broken_account(
    database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = ("--database", migrated(database_url, capsys))
    path = tmp_path / "enrolment.csv"
    path.write_bytes(enrolment_csv([person(1, current_year_fen="700")]))
    run(capsys, "enrol", "import", str(path), "--citizen-id-key-file", str(_key_file(tmp_path)), *db)
    engines = make_engines(database_url)
    execute(engines, "UPDATE accounts SET current_year_fen = 699")
    engines.dispose()

    code, out, _ = run(capsys, "ledger", "check", *db)

    assert code == EXIT_FAILED
    assert out.startswith("settlement ledger check: FAILED: 2 problem(s) in ")
    assert "  account person:P000001:current: stored balance 699 fen, its postings net 700 fen (off by -1)\n" in out
    assert "  trial balance: stored balances sum to -1 fen, not 0" in out


def _key_file(folder: Path) -> Path:
    path = folder / "citizen-id.key"
    path.write_text(KEY_HEX + "\n", encoding="ascii")
    return path
