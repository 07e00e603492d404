"""The code mapping table: hospital codes and units to catalogue codes, exact or refused."""

from __future__ import annotations

import csv
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from hospital_adapters.charges import HisLine
from hospital_adapters.mapping import CodeTable, CodeTableError
from hospital_adapters.samples import FHIR_HOSPITAL_CONFIG, HL7_HOSPITAL_CONFIG, catalogue

TABLE = CodeTable.parse(
    "hospital_code,hospital_unit,catalogue_code,catalogue_unit,factor\n"
    "YP1,盒,X-MET,片,24\n"
    "YP1,片,X-MET,片,1\n"
    "YP2,BOX,X-AMX,粒,3\n"
    "DUP,次,A,次,1\n"
    "DUP,次,B,次,1\n"
)


def line(code: str, unit: str | None, quantity: str = "1", price: str = "12.00", line_id: str = "1") -> HisLine:
    return HisLine(line_id, code, unit, Decimal(quantity), Decimal(price))


def test_a_box_becomes_its_tablets_with_the_price_divided_exactly() -> None:
    canonical, problems = TABLE.translate((line("YP1", "盒", "2", "15.36"),))

    assert problems == ()
    assert [(c.catalogue_code, c.quantity, c.unit_price_yuan) for c in canonical] == [("X-MET", "48", "0.64")]


def test_units_match_regardless_of_case() -> None:
    canonical, problems = TABLE.translate((line("YP2", "box", "1", "3.00"),))
    assert problems == ()
    assert canonical[0].quantity == "3"


def test_a_price_that_does_not_divide_to_six_places_is_refused_not_rounded() -> None:
    canonical, problems = TABLE.translate((line("YP2", "BOX", "1", "10.00"),))

    assert canonical == ()
    assert [(p.reason, p.field) for p in problems] == [("DECIMAL_FORMAT", "unit_price")]


def test_every_unmapped_ambiguous_or_mismatched_line_is_reported() -> None:
    _, problems = TABLE.translate((
        line("NOPE", "盒", line_id="a"),
        line("DUP", "次", line_id="b"),
        line("YP1", "瓶", line_id="c"),
        line("YP1", None, line_id="d"),
        line("YP2", None, "1", "3", line_id="e"),
    ))

    assert [(p.line_id, p.reason) for p in problems] == [
        ("a", "UNKNOWN_ITEM_CODE"), ("b", "AMBIGUOUS_ITEM_CODE"), ("c", "UNIT_MISMATCH"),
        ("d", "AMBIGUOUS_ITEM_CODE")]
    assert "片, 盒" in problems[2].message


@pytest.mark.parametrize("text", [
    "code,unit\nA,B\n",
    "hospital_code,hospital_unit,catalogue_code,catalogue_unit,factor\nA,盒,X,片,0\n",
    "hospital_code,hospital_unit,catalogue_code,catalogue_unit,factor\nA,盒,X,片,abc\n",
    "hospital_code,hospital_unit,catalogue_code,catalogue_unit,factor\nA,,X,片,1\n",
    "hospital_code,hospital_unit,catalogue_code,catalogue_unit,factor\nA,盒,X,片\n",
])
def test_a_broken_table_stops_the_adapter_from_starting(text: str) -> None:
    with pytest.raises(CodeTableError):
        CodeTable.parse(text)


def test_the_sample_tables_map_only_to_the_catalogue_constants() -> None:
    for config in (HL7_HOSPITAL_CONFIG, FHIR_HOSPITAL_CONFIG):
        table = CodeTable.load(config.parent / "codes.csv")
        assert table.catalogue_codes() <= catalogue.ALL_CODES
        with (config.parent / "codes.csv").open(encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row and not row[0].startswith("#")]
        assert len(rows) > 4


def test_the_sample_tables_agree_with_the_engines_sample_catalogues_codes_and_units() -> None:
    catalogues = sorted((Path(__file__).parents[2] / "policies").glob("*/catalogue.toml"))
    assert catalogues, "the engine's sample catalogues are missing"
    for catalogue_file in catalogues:
        units = {item["code"]: item["unit"] for item in tomllib.loads(catalogue_file.read_text("utf-8"))["item"]}
        assert set(units) >= catalogue.ALL_CODES, catalogue_file
        for config in (HL7_HOSPITAL_CONFIG, FHIR_HOSPITAL_CONFIG):
            with (config.parent / "codes.csv").open(encoding="utf-8") as handle:
                for row in csv.DictReader(line for line in handle if not line.startswith("#")):
                    assert units[row["catalogue_code"]] == row["catalogue_unit"], (config.parent.name, row)
