"""Policy and catalogue TOML files → ``RegionPolicy``, validated on load (format: docs/policies.md).

Owns: reading a policy folder, checking every key's type and range, and refusing overlapping or gapped
date ranges. Every error names the file, the key and what is wrong. Must never guess a missing value:
a policy that loads is a policy an analyst wrote down in full.
"""

from __future__ import annotations

import datetime as dt
import itertools
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from settlement.domain import (
    AccountScope,
    Catalogue,
    CatalogueItem,
    Category,
    InsuredType,
    Model,
    NationalRule,
    Part,
    PolicyVersion,
    Ratio,
    RegionPolicy,
    Rule,
    RuleKey,
    SegmentedRule,
    UnitPrice,
    VisitType,
)
from settlement.domain.money import ZERO_RATIO
from settlement.domain.policy import CURRENT_YEAR_PARTS, HISTORICAL_PARTS
from settlement.errors import InvalidInput

POLICY_FILE_NAME = "policy.toml"
_Choice = TypeVar("_Choice", Model, AccountScope, Category)
_Choices = TypeVar("_Choices", InsuredType, VisitType)
_Parsed_co = TypeVar("_Parsed_co", covariant=True)
HOSPITAL_LEVELS = (1, 2, 3)
_REGION_KEYS = {"region", "name", "model", "catalogue", "version"}
_ITEM_KEYS = {"code", "name", "category", "selfpay_ratio", "price_ceiling", "unit"}
_VERSION_KEYS = {
    "effective_from", "effective_to", "insured_types", "hospital_levels", "visit_types", "pool_ratio", "fund_cap_fen",
}  # fmt: skip
_MODEL_KEYS = {
    Model.NATIONAL: {"deductible_fen", "account_allowed", "account_scope"},
    Model.SEGMENTED: {"self_segment_fen", "current_covers", "historical_covers"},
}


class PolicyFileError(Exception):
    """A policy or catalogue file that cannot be used; names the file and the key."""

    def __init__(self, path: Path, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}")
        self.path = path
        self.key = key


def load_policies(folder: Path) -> dict[str, RegionPolicy]:
    """Every region under ``folder`` (one sub-folder each holding a policy.toml), by region code."""
    regions: dict[str, RegionPolicy] = {}
    files = sorted(folder.glob(f"*/{POLICY_FILE_NAME}"))
    if not files:
        raise PolicyFileError(folder, "(folder)", f"no */{POLICY_FILE_NAME} found")
    for path in files:
        policy = load_region(path)
        if policy.region in regions:
            raise PolicyFileError(path, "region", f"region {policy.region} is defined twice")
        regions[policy.region] = policy
    return regions


def load_region(path: Path) -> RegionPolicy:
    document = _read_toml(path)
    reader = _Reader(path)
    reader.only(document, _REGION_KEYS, "")
    region = reader.text(document, "region")
    model = reader.choice(document, "model", Model)
    catalogue_path = path.parent / reader.text(document, "catalogue")
    catalogue = load_catalogue(catalogue_path)
    raw_versions = document.get("version")
    if not isinstance(raw_versions, list) or not raw_versions:
        raise PolicyFileError(path, "version", "at least one [[version]] table is required")
    versions = tuple(
        _version(reader, entry, f"version[{n}]", model, path) for n, entry in enumerate(raw_versions)
    )
    _check_ranges(path, versions)
    return RegionPolicy(region, reader.text(document, "name"), model, versions, catalogue)


def load_catalogue(path: Path) -> Catalogue:
    document = _read_toml(path)
    reader = _Reader(path)
    raw_items = document.get("item")
    if not isinstance(raw_items, list) or not raw_items:
        raise PolicyFileError(path, "item", "at least one [[item]] table is required")
    items: dict[str, CatalogueItem] = {}
    for n, entry in enumerate(raw_items):
        where = f"item[{n}]"
        table = reader.table(entry, where)
        reader.only(table, _ITEM_KEYS, where)
        code = reader.text(table, "code", where)
        if code in items:
            raise PolicyFileError(path, f"{where}.code", f"code {code!r} appears twice")
        ratio = ZERO_RATIO
        if "selfpay_ratio" in table:
            ratio = reader.parsed(table, "selfpay_ratio", where, Ratio.parse)
        ceiling = None
        if "price_ceiling" in table:
            ceiling = reader.parsed(table, "price_ceiling", where, UnitPrice.parse)
        items[code] = CatalogueItem(
            code=code,
            name=reader.text(table, "name", where),
            category=reader.choice(table, "category", Category, where),
            selfpay_ratio=ratio,
            price_ceiling=ceiling,
            unit=reader.text(table, "unit", where),
        )
    return Catalogue(items)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise PolicyFileError(path, "(file)", f"cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyFileError(path, "(syntax)", str(error)) from None


def _version(reader: _Reader, entry: object, where: str, model: Model, path: Path) -> PolicyVersion:
    table = reader.table(entry, where)
    reader.only(table, _VERSION_KEYS | _MODEL_KEYS[model], where)
    start = reader.date(table, "effective_from", where)
    end = reader.date(table, "effective_to", where) if "effective_to" in table else None
    if end is not None and end < start:
        raise PolicyFileError(path, f"{where}.effective_to", f"{end} is before effective_from {start}")
    insured = reader.choices(table, "insured_types", InsuredType, where)
    visits = reader.choices(table, "visit_types", VisitType, where)
    levels = reader.int_list(table, "hospital_levels", where, allowed=HOSPITAL_LEVELS)
    keys = frozenset(RuleKey(i, level, v) for i in insured for level in levels for v in visits)
    pool_ratio = reader.parsed(table, "pool_ratio", where, Ratio.parse)
    cap = reader.fen(table, "fund_cap_fen", where) if "fund_cap_fen" in table else None
    rule: Rule
    if model is Model.NATIONAL:
        rule = NationalRule(
            pool_ratio=pool_ratio,
            deductible_fen=reader.fen(table, "deductible_fen", where),
            fund_cap_fen=cap,
            account_allowed=reader.boolean(table, "account_allowed", where),
            account_scope=reader.choice(table, "account_scope", AccountScope, where),
        )
    else:
        rule = SegmentedRule(
            pool_ratio=pool_ratio,
            self_segment_fen=reader.fen(table, "self_segment_fen", where),
            fund_cap_fen=cap,
            current_covers=reader.parts(table, "current_covers", where, CURRENT_YEAR_PARTS),
            historical_covers=reader.parts(table, "historical_covers", where, HISTORICAL_PARTS),
        )
    return PolicyVersion(start, end, keys, rule, source=f"{path}:{where}")


def _check_ranges(path: Path, versions: tuple[PolicyVersion, ...]) -> None:
    """Per combination: no overlap, no gap, only the last open-ended; all combinations start together."""
    by_key: dict[RuleKey, list[tuple[int, PolicyVersion]]] = {}
    for n, version in enumerate(versions):
        for key in version.keys:
            by_key.setdefault(key, []).append((n, version))
    first_start = min(v.effective_from for v in versions)
    for key, found in by_key.items():
        found.sort(key=lambda item: item[1].effective_from)
        label = f"{key.insured_type}/level {key.hospital_level}/{key.visit_type}"
        n, first = found[0]
        if first.effective_from != first_start:
            raise PolicyFileError(
                path, f"version[{n}].effective_from",
                f"{label} starts on {first.effective_from}, after the policy's first day {first_start}: "
                f"a gap",
            )  # fmt: skip
        for (n_prev, prev), (n_next, nxt) in itertools.pairwise(found):
            if prev.effective_to is None or prev.effective_to >= nxt.effective_from:
                raise PolicyFileError(
                    path, f"version[{n_next}].effective_from",
                    f"{label} is covered twice: version[{n_prev}] and version[{n_next}] overlap",
                )  # fmt: skip
            if prev.effective_to + dt.timedelta(days=1) != nxt.effective_from:
                raise PolicyFileError(
                    path, f"version[{n_next}].effective_from",
                    f"{label} has a gap between {prev.effective_to} and {nxt.effective_from}",
                )  # fmt: skip


class _Reader:
    """Typed getters that name the file and key in every refusal."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _fail(self, where: str, key: str, problem: str) -> PolicyFileError:
        return PolicyFileError(self.path, f"{where}.{key}" if where else key, problem)

    def table(self, value: object, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise PolicyFileError(self.path, where, "must be a table")
        return value

    def only(self, table: Mapping[str, Any], allowed: set[str], where: str) -> None:
        """A misspelt key would silently mean "not set" (no cap, say): refuse it instead."""
        for key in table:
            if key not in allowed:
                raise self._fail(where, key, f"unknown key; expected one of {', '.join(sorted(allowed))}")

    def _get(self, table: Mapping[str, Any], key: str, where: str) -> object:
        if key not in table:
            raise self._fail(where, key, "is required")
        return table[key]

    def text(self, table: Mapping[str, Any], key: str, where: str = "") -> str:
        value = self._get(table, key, where)
        if not isinstance(value, str) or not value.strip():
            raise self._fail(where, key, f"must be a non-empty string, got {value!r}")
        return value

    def boolean(self, table: Mapping[str, Any], key: str, where: str) -> bool:
        value = self._get(table, key, where)
        if not isinstance(value, bool):
            raise self._fail(where, key, f"must be true or false, got {value!r}")
        return value

    def fen(self, table: Mapping[str, Any], key: str, where: str) -> int:
        value = self._get(table, key, where)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self._fail(where, key, f"must be a non-negative integer number of fen, got {value!r}")
        return value

    def date(self, table: Mapping[str, Any], key: str, where: str) -> dt.date:
        value = self._get(table, key, where)
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise self._fail(where, key, f"must be a TOML date such as 2026-01-01, got {value!r}")
        return value

    def choice(
        self, table: Mapping[str, Any], key: str, kind: type[_Choice], where: str = ""
    ) -> _Choice:
        value = self._get(table, key, where)
        try:
            return kind(str(value))
        except ValueError:
            names = ", ".join(repr(member.value) for member in kind)
            raise self._fail(where, key, f"must be one of {names}, got {value!r}") from None

    def choices(
        self, table: Mapping[str, Any], key: str, kind: type[_Choices], where: str
    ) -> list[_Choices]:
        values = self._get(table, key, where)
        if not isinstance(values, list) or not values:
            raise self._fail(where, key, "must be a non-empty list")
        chosen: list[_Choices] = []
        for value in values:
            try:
                chosen.append(kind(value))
            except ValueError:
                names = ", ".join(repr(member.value) for member in kind)
                raise self._fail(where, key, f"{value!r} is not one of {names}") from None
        if len(set(chosen)) != len(chosen):
            raise self._fail(where, key, "lists a value twice")
        return chosen

    def int_list(
        self, table: Mapping[str, Any], key: str, where: str, *, allowed: tuple[int, ...]
    ) -> list[int]:
        values = self._get(table, key, where)
        valid = [v for v in values if type(v) is int and v in allowed] if isinstance(values, list) else []
        if not isinstance(values, list) or not values or len(valid) != len(values) or len(set(valid)) != len(valid):
            raise self._fail(where, key, f"must be a non-empty list of {list(allowed)}, got {values!r}")
        return [int(v) for v in values]

    def parts(
        self, table: Mapping[str, Any], key: str, where: str, allowed: frozenset[Part]
    ) -> tuple[Part, ...]:
        values = self._get(table, key, where)
        names = sorted(p.value for p in allowed)
        if not isinstance(values, list):
            raise self._fail(where, key, f"must be a list drawn from {names}")
        parts: list[Part] = []
        for value in values:
            part = Part(value) if value in {p.value for p in allowed} else None
            if part is None or part in parts:
                raise self._fail(where, key, f"{value!r} is not one of {names} (each at most once)")
            parts.append(part)
        return tuple(parts)

    def parsed(
        self, table: Mapping[str, Any], key: str, where: str, parse: _Parse[_Parsed_co]
    ) -> _Parsed_co:
        value = self._get(table, key, where)
        try:
            return parse(value, field=key)
        except InvalidInput as error:
            raise self._fail(where, key, error.message.removeprefix(f"{key} ")) from None


class _Parse(Protocol[_Parsed_co]):
    def __call__(self, text: object, *, field: str) -> _Parsed_co: ...
