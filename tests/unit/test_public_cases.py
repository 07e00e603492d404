"""The worked cases in ../shared/cases reproduce exactly through the ``settlement split`` command."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from settlement.cli import main

CASES = Path(__file__).parents[3] / "shared" / "cases" / "public.json"


@pytest.mark.skipif(not CASES.exists(), reason="../shared/cases is beside the checkout in CI")
def test_the_calculator_reproduces_every_expected_field_of_the_public_cases() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "settlement.cli", "split", str(CASES)], capture_output=True, text=True, check=False
    )
    assert finished.returncode == 0, finished.stderr
    got = {row["id"]: row for row in json.loads(finished.stdout)}
    cases = json.loads(CASES.read_text(encoding="utf-8"))
    mismatches = {
        (case["id"], key): (value, got[case["id"]].get(key))
        for case in cases
        for key, value in case["expect"].items()
        if got[case["id"]].get(key) != value
    }
    assert not mismatches


def _write(tmp_path: Path, cases: object) -> str:
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases), encoding="utf-8")
    return str(path)


GOOD = {
    "id": "G1",
    "model": "national",
    "policy": {"pool_ratio": "0.70", "deductible_fen": 0, "use_account": True, "account_scope": "ALL"},
    "person": {"account_fen": 100, "ytd_deductible_fen": 0, "ytd_fund_fen": 0},
    "items": [{"code": "A", "category": "A", "amount_fen": 1000}],
}


def test_a_malformed_case_exits_non_zero_naming_the_case_and_field_and_the_others_still_print(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {**GOOD, "id": "BAD7", "items": [{"code": "B", "category": "B", "selfpay_ratio": "0.12345",
                                            "amount_fen": 5}]}  # fmt: skip
    exit_code = main(["split", _write(tmp_path, [GOOD, bad])])
    out, err = capsys.readouterr()
    assert exit_code == 1
    assert "case BAD7: items[0].selfpay_ratio" in err
    assert [row["id"] for row in json.loads(out)] == ["G1"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model": "regional"}, "model"),
        ({"items": []}, "lines"),
        ({"items": [{"code": "A", "category": "D", "amount_fen": 1}]}, "items[0].category"),
        ({"items": [{"code": "A", "category": "A", "amount_fen": -1}]}, "items[0].amount_fen"),
        ({"items": [{"code": "A", "category": "A", "amount_fen": 1.5}]}, "items[0].amount_fen"),
        ({"policy": {**GOOD["policy"], "pool_ratio": "1.5"}}, "policy.pool_ratio"),  # type: ignore[dict-item]
        ({"person": {"ytd_fund_fen": 0}}, "person.account_fen"),
    ],
)
def test_each_kind_of_malformed_case_names_its_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, object], field: str
) -> None:
    assert main(["split", _write(tmp_path, [{**GOOD, **change}])]) == 1
    assert f"case G1: {field}" in capsys.readouterr().err


def test_a_file_that_is_not_json_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.json"
    path.write_text("[\n{,", encoding="utf-8")
    assert main(["split", str(path)]) == 2
    assert "broken.json:2:" in capsys.readouterr().err
