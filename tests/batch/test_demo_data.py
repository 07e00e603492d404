"""The demo data is valid and fits the rest of the repository: the adapter samples and the policies."""

from __future__ import annotations

import csv
import tomllib
from collections import Counter

from batch_helpers import DEMO, KEY, REGIONS, REPOSITORY_ROOT

from hospital_adapters.samples import FHIR_HOSPITAL_CONFIG, HL7_HOSPITAL_CONFIG
from settlement.identity import citizen_id_is_valid
from settlement.service.enrolment import read_enrolment, read_hospitals


def demo_rows() -> list[dict[str, str]]:
    with (DEMO / "enrolment.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_demo_hospitals_include_the_two_adapter_sample_hospitals_and_a_desk_only_one() -> None:
    hospitals = {entry.hospital_id: entry for entry in read_hospitals(DEMO / "hospitals.toml", REGIONS)}
    samples = {
        tomllib.loads(path.read_text(encoding="utf-8"))["hospital_id"]
        for path in (HL7_HOSPITAL_CONFIG, FHIR_HOSPITAL_CONFIG)
    }

    assert samples <= set(hospitals)
    desk_only = [h for h in hospitals.values() if {terminal.channel for terminal in h.terminals} == {"desk"}]
    assert desk_only
    assert {h.region for h in hospitals.values()} == REGIONS


def test_the_demo_enrolment_reads_without_a_problem_and_covers_both_regions_and_all_insured_types() -> None:
    rows, problems = read_enrolment((DEMO / "enrolment.csv").read_bytes(), encoding="utf-8", regions=REGIONS, key=KEY)

    assert problems == []
    assert len(rows) == 20
    assert {row.region for row in rows} == REGIONS
    assert {(row.region, row.insured_type) for row in rows} == {
        (region, insured) for region in REGIONS for insured in ("employee", "retired", "resident")
    }
    assert Counter(row.card_status for row in rows) == {"active": 18, "lost": 1, "blocked": 1}
    assert all(citizen_id_is_valid(row["citizen_id"]) for row in demo_rows())


def test_the_person_the_adapter_tests_send_is_enrolled_in_the_demo() -> None:
    helpers = (REPOSITORY_ROOT / "tests" / "adapters" / "adapter_helpers.py").read_text(encoding="utf-8")
    person_numbers = {row["person_number"] for row in demo_rows()}

    assert 'PERSON = "33010000000000012345"' in helpers
    assert "33010000000000012345" in person_numbers
