"""Hospitals and terminals from a TOML file: new ones added, identical ones skipped, conflicts refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_helpers import ACTOR, DEMO, REGIONS, clock_on, table_counts
from sqlalchemy import select

from settlement.errors import InvalidImportFile
from settlement.service.enrolment import register_hospitals
from settlement.storage import tables as t
from settlement.storage.engine import Engines

ONE_HOSPITAL = """
[[hospital]]
hospital_id = "H1"
name = "测试医院"
level = {level}
region = "330100"

[[hospital.terminal]]
terminal_id = "H1-D1"
name = "诊室 1"
channel = "desk"
"""

COUNTED = ("hospitals", "terminals", "audit_log")


def register(engines: Engines, path: Path) -> tuple[int, int, int]:
    done = register_hospitals(engines, path, regions=REGIONS, actor=ACTOR, clock=clock_on())
    return done.hospitals_added, done.terminals_added, done.unchanged


def test_the_demo_hospitals_are_registered_with_their_terminals_and_audited(engines: Engines) -> None:
    assert register(engines, DEMO / "hospitals.toml") == (3, 7, 0)

    with engines.reader.connect() as connection:
        hospitals = {row.hospital_id: row for row in connection.execute(select(t.hospitals))}
        channels = {row.terminal_id: row.channel for row in connection.execute(select(t.terminals))}
        audit = connection.execute(select(t.audit_log)).one()
    assert hospitals["H33010600123"].level == 3
    assert hospitals["H33010600123"].card_proof_required
    assert hospitals["H32010200077"].region == "320100"
    assert channels["H33010600123-HL7"] == "his"
    assert channels["H33010800045D01"] == "desk"
    assert (audit.action, audit.outcome) == ("hospitals.import", "ok")


def test_importing_the_same_file_again_changes_nothing(engines: Engines) -> None:
    register(engines, DEMO / "hospitals.toml")
    before = table_counts(engines, COUNTED)

    assert register(engines, DEMO / "hospitals.toml") == (0, 0, 10)
    assert table_counts(engines, COUNTED) == before


def test_a_conflicting_value_is_refused_naming_its_key_and_nothing_of_the_file_is_written(
    engines: Engines, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text(ONE_HOSPITAL.format(level=2), encoding="utf-8")
    register(engines, first)
    second.write_text(
        ONE_HOSPITAL.format(level=3)
        + '\n[[hospital]]\nhospital_id = "H2"\nname = "新医院"\nlevel = 1\nregion = "330100"\n',
        encoding="utf-8",
    )
    before = table_counts(engines, COUNTED)

    with pytest.raises(InvalidImportFile) as refused:
        register(engines, second)

    assert "hospital[0].level: H1 is already registered with level = 2, the file says 3" in refused.value.message
    assert table_counts(engines, COUNTED) == before


@pytest.mark.parametrize(
    ("replace", "by", "key"),
    [
        ('region = "330100"', 'region = "110000"', "hospital[0].region"),
        ("level = 2", "level = 4", "hospital[0].level"),
        ('channel = "desk"', 'channel = "kiosk"', "hospital[0].terminal[0].channel"),
        ('name = "诊室 1"', 'name = "诊室 1"\nserial = "x"', "hospital[0].terminal[0].serial"),
    ],
)
def test_an_invalid_entry_is_refused_naming_its_key(
    engines: Engines, tmp_path: Path, replace: str, by: str, key: str
) -> None:
    path = tmp_path / "hospitals.toml"
    path.write_text(ONE_HOSPITAL.format(level=2).replace(replace, by), encoding="utf-8")

    with pytest.raises(InvalidImportFile) as refused:
        register(engines, path)

    assert f"{path}: {key}: " in refused.value.message
    assert table_counts(engines, COUNTED) == {"hospitals": 0, "terminals": 0, "audit_log": 0}
