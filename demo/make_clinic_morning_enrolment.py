"""Writes ``demo/clinic-morning-enrolment.csv``: 300 fictitious insured persons for the demo's clinic
morning (``scripts/demo.sh``) and the gRPC load generator (``bench/grpc_load.py``).

    .venv/bin/python demo/make_clinic_morning_enrolment.py      # rewrites the CSV (its output is committed)

150 persons in Hangzhou (region 330100) and 150 in Nanjing (320100): half employees, a quarter retirees,
a quarter residents (no personal account, balances 0); 3 lost and 3 blocked cards per region; every card
under the demo issuer key ``demo-issuer-1``. Citizen IDs carry valid check characters but made-up
numbers (sequence codes 500-649, which ``demo/enrolment.csv`` never uses, so the files import together);
names are random pairs of common characters, not people.

Deterministic without a random generator: every choice is taken from SHA-256 of the row's region, index
and purpose, so the same code writes the same bytes on any Python (``tests/test_demo_script.py`` checks
the committed file against this script).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from settlement.identity import with_check_character
from settlement.service.enrolment import ENROLMENT_COLUMNS

OUTPUT = Path(__file__).resolve().parent / "clinic-morning-enrolment.csv"
PERSONS_PER_REGION = 150
FIRST_SEQUENCE_CODE = 500  # demo/enrolment.csv uses 001-499: no citizen ID can collide
KEY_REFERENCE = "demo-issuer-1"
COLUMNS = ENROLMENT_COLUMNS
# region -> (card number letter, districts whose codes start the citizen IDs)
REGIONS = {
    "330100": ("A", ("330102", "330105", "330106", "330108")),
    "320100": ("B", ("320102", "320104", "320105", "320106")),
}
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田"
    "董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢傅钟"
)
GIVEN = "安宁文静明华建国志强海燕晓丽俊杰思远雨欣子涵浩然佳怡梓轩欣怡宇航秀英桂兰玉梅春生秋月伟平"
LOST_EVERY, LOST_AT = 50, 17  # rows 17, 67, 117 of each region: cards reported lost
BLOCKED_EVERY, BLOCKED_AT = 50, 33  # rows 33, 83, 133: blocked cards


def _number(region: str, index: int, purpose: str) -> int:
    digest = hashlib.sha256(f"{region}:{index}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _pick(text: str, region: str, index: int, purpose: str) -> str:
    return text[_number(region, index, purpose) % len(text)]


def _insured_type(index: int) -> str:
    return ("employee", "employee", "retired", "resident")[index % 4]


def _birth_date(region: str, index: int, insured_type: str) -> dt.date:
    first_year, years = {"employee": (1966, 38), "retired": (1940, 24)}.get(insured_type, (1950, 72))
    n = _number(region, index, "birth")
    return dt.date(first_year + n % years, 1 + (n >> 8) % 12, 1 + (n >> 16) % 28)


def _balances_fen(region: str, index: int, insured_type: str) -> tuple[int, int]:
    """Whole yuan, as an account statement shows them; residents hold no personal account."""
    if insured_type == "resident":
        return 0, 0
    current_cap, historical_cap = (3_000, 15_000) if insured_type == "employee" else (5_000, 25_000)
    current = _number(region, index, "current") % current_cap
    historical = _number(region, index, "historical") % historical_cap
    if index % 10 == 1:  # a few young employees whose account is nearly empty: their visits show cash
        current, historical = current % 50, 0
    return current * 100, historical * 100


def _card_status(index: int) -> str:
    if index % LOST_EVERY == LOST_AT:
        return "lost"
    if index % BLOCKED_EVERY == BLOCKED_AT:
        return "blocked"
    return "active"


def rows() -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for region, (letter, districts) in REGIONS.items():
        for index in range(PERSONS_PER_REGION):
            insured_type = _insured_type(index)
            district = districts[_number(region, index, "district") % len(districts)]
            birth = _birth_date(region, index, insured_type)
            sequence = FIRST_SEQUENCE_CODE + index  # odd: male, even: female (GB 11643)
            name = _pick(SURNAMES, region, index, "surname") + _pick(GIVEN, region, index, "given")
            if _number(region, index, "name-length") % 3:
                name += _pick(GIVEN, region, index, "given-2")
            current_fen, historical_fen = _balances_fen(region, index, insured_type)
            found.append(
                {
                    "person_number": f"{region}00000000{100_001 + index}",
                    "name": name,
                    "insured_type": insured_type,
                    "region": region,
                    "citizen_id": with_check_character(f"{district}{birth:%Y%m%d}{sequence:03d}"),
                    "card_number": f"{letter}{region[:4]}1{index + 1:04d}",
                    "card_status": _card_status(index),
                    "key_reference": KEY_REFERENCE,
                    "current_year_fen": str(current_fen),
                    "historical_fen": str(historical_fen),
                }
            )
    return found


def render() -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows())
    return buffer.getvalue()


def main() -> None:
    OUTPUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUTPUT} ({PERSONS_PER_REGION * len(REGIONS)} persons)\n")


if __name__ == "__main__":
    main()
