"""Policy TOML files: valid ones load, every mistake names the file and the key."""

import datetime as dt
from pathlib import Path

import pytest

from settlement.domain import InsuredType, NationalRule, RuleKey, SegmentedRule, VisitType
from settlement.errors import NoPolicyInForce, UnknownItemCode
from settlement.policy_files import PolicyFileError, load_policies, load_region

SAMPLES = Path(__file__).parents[2] / "policies"

CATALOGUE = """
[[item]]
code = "A001"
name = "普通门诊诊察费"
category = "A"
unit = "次"
price_ceiling = "25.00"

[[item]]
code = "B001"
name = "阿托伐他汀钙片"
category = "B"
selfpay_ratio = "0.10"
unit = "片"
"""

VERSION_2025 = """
[[version]]
effective_from = 2025-01-01
effective_to = 2025-12-31
insured_types = ["employee", "retired"]
hospital_levels = [1, 2, 3]
visit_types = ["outpatient"]
pool_ratio = "0.70"
deductible_fen = 100000
account_allowed = true
account_scope = "ALL"
"""

VERSION_2026 = VERSION_2025.replace("2025-01-01", "2026-01-01").replace(
    "effective_to = 2025-12-31\n", ""
).replace('"0.70"', '"0.75"')


def _region(tmp_path: Path, versions: str, header: str = "") -> Path:
    folder = tmp_path / "city"
    folder.mkdir(exist_ok=True)
    (folder / "catalogue.toml").write_text(CATALOGUE, encoding="utf-8")
    text = header or 'region = "320100"\nname = "Sample"\nmodel = "national"\ncatalogue = "catalogue.toml"\n'
    (folder / "policy.toml").write_text(text + versions, encoding="utf-8")
    return folder / "policy.toml"


def test_a_settlement_uses_the_version_in_force_on_its_date(tmp_path: Path) -> None:
    policy = load_region(_region(tmp_path, VERSION_2025 + VERSION_2026))
    key = RuleKey(InsuredType.EMPLOYEE, 2, VisitType.OUTPATIENT)
    old = policy.rule_for(key, dt.date(2025, 12, 31))
    new = policy.rule_for(key, dt.date(2026, 1, 1))
    assert isinstance(old, NationalRule)
    assert isinstance(new, NationalRule)
    assert (str(old.pool_ratio), str(new.pool_ratio)) == ("0.7000", "0.7500")
    assert policy.rule_for(key, dt.date(2031, 6, 1)) == new  # the last version is open-ended


def test_a_date_before_every_version_is_refused(tmp_path: Path) -> None:
    policy = load_region(_region(tmp_path, VERSION_2025))
    with pytest.raises(NoPolicyInForce, match="2024-12-31"):
        policy.rule_for(RuleKey(InsuredType.EMPLOYEE, 1, VisitType.OUTPATIENT), dt.date(2024, 12, 31))


def test_a_combination_no_version_covers_is_refused(tmp_path: Path) -> None:
    policy = load_region(_region(tmp_path, VERSION_2025))
    with pytest.raises(NoPolicyInForce, match="resident"):
        policy.rule_for(RuleKey(InsuredType.RESIDENT, 1, VisitType.OUTPATIENT), dt.date(2025, 3, 1))


def test_overlapping_date_ranges_are_refused_naming_the_version(tmp_path: Path) -> None:
    overlapping = VERSION_2026.replace("2026-01-01", "2025-06-01")
    with pytest.raises(PolicyFileError, match=r"policy.toml: version\[1\].effective_from: .* overlap"):
        load_region(_region(tmp_path, VERSION_2025 + overlapping))


def test_a_gap_between_date_ranges_is_refused(tmp_path: Path) -> None:
    gapped = VERSION_2026.replace("2026-01-01", "2026-02-01")
    with pytest.raises(PolicyFileError, match="gap between 2025-12-31 and 2026-02-01"):
        load_region(_region(tmp_path, VERSION_2025 + gapped))


def test_a_combination_that_starts_later_than_the_others_is_a_gap(tmp_path: Path) -> None:
    late = VERSION_2026.replace('["employee", "retired"]', '["resident"]')
    with pytest.raises(PolicyFileError, match=r"resident.*a gap"):
        load_region(_region(tmp_path, VERSION_2025 + late))


@pytest.mark.parametrize(
    ("broken", "key"),
    [
        (VERSION_2025.replace('"0.70"', '"0.70001"'), r"version\[0\].pool_ratio"),
        (VERSION_2025.replace('"0.70"', '"1.2"'), r"version\[0\].pool_ratio"),
        (VERSION_2025.replace("deductible_fen = 100000", "deductible_fen = -1"), r"version\[0\].deductible_fen"),
        (VERSION_2025.replace("deductible_fen = 100000\n", ""), r"version\[0\].deductible_fen: is required"),
        (VERSION_2025.replace('"ALL"', '"SOME"'), r"version\[0\].account_scope"),
        (VERSION_2025.replace('"outpatient"', '"inpatient"'), r"version\[0\].visit_types"),
        (VERSION_2025.replace("[1, 2, 3]", "[4]"), r"version\[0\].hospital_levels"),
        (VERSION_2025.replace("effective_to = 2025-12-31", "effective_to = 2024-12-31"), r"version\[0\].effective_to"),
        (VERSION_2025.replace("account_allowed = true", 'account_allowed = "yes"'), r"version\[0\].account_allowed"),
        (VERSION_2025.replace("fund_cap", "x") + "fund_cap = 5\n", r"version\[0\].fund_cap: unknown key"),
        (VERSION_2025.replace("[1, 2, 3]", "[true]"), r"version\[0\].hospital_levels"),
        (VERSION_2025.replace('["outpatient"]', '["outpatient", "outpatient"]'), r"version\[0\].visit_types"),
    ],
)
def test_each_bad_value_is_refused_naming_the_file_and_the_key(tmp_path: Path, broken: str, key: str) -> None:
    with pytest.raises(PolicyFileError, match=rf"policy.toml: {key}"):
        load_region(_region(tmp_path, broken))


def test_a_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match=r"policy.toml: \(syntax\)"):
        load_region(_region(tmp_path, "[[version]\n"))


def test_a_catalogue_gives_each_code_its_class_ratio_and_ceiling(tmp_path: Path) -> None:
    catalogue = load_region(_region(tmp_path, VERSION_2025)).catalogue
    assert str(catalogue.item("B001", field="f").selfpay_ratio) == "0.1000"
    assert str(catalogue.item("A001", field="f").price_ceiling) == "25"
    with pytest.raises(UnknownItemCode, match=r"lines\[3\].item_code: item code 'Z9'"):
        catalogue.item("Z9", field="lines[3].item_code")


def test_a_duplicated_catalogue_code_is_refused(tmp_path: Path) -> None:
    path = _region(tmp_path, VERSION_2025)
    (path.parent / "catalogue.toml").write_text(CATALOGUE + CATALOGUE, encoding="utf-8")
    with pytest.raises(PolicyFileError, match=r"catalogue.toml: item\[2\].code: code 'A001' appears twice"):
        load_region(path)


def test_segmented_covers_accept_only_their_own_parts(tmp_path: Path) -> None:
    header = 'region = "330100"\nname = "Hz"\nmodel = "segmented"\ncatalogue = "catalogue.toml"\n'
    version = """
[[version]]
effective_from = 2025-01-01
insured_types = ["employee"]
hospital_levels = [1]
visit_types = ["outpatient"]
pool_ratio = "0.80"
self_segment_fen = 100000
current_covers = ["E", "L", "Z"]
historical_covers = ["segment", "copay", "L", "Z"]
"""
    policy = load_region(_region(tmp_path, version, header))
    rule = policy.rule_for(RuleKey(InsuredType.EMPLOYEE, 1, VisitType.OUTPATIENT), dt.date(2026, 5, 1))
    assert isinstance(rule, SegmentedRule)
    with pytest.raises(PolicyFileError, match=r"version\[0\].current_covers: 'segment' is not one of"):
        load_region(_region(tmp_path, version.replace('["E", "L", "Z"]', '["segment"]'), header))


@pytest.mark.skipif(not (SAMPLES / "hangzhou-segmented").exists(), reason="sample regions not written yet")
def test_the_shipped_sample_regions_load_and_cover_today() -> None:
    regions = load_policies(SAMPLES)
    assert {policy.model.value for policy in regions.values()} == {"national", "segmented"}
    for policy in regions.values():
        for key in policy.rule_keys():
            policy.rule_for(key, dt.date(2026, 11, 22))
        assert len(policy.catalogue.items) >= 30
