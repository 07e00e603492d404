"""Per-hospital configuration, read from one TOML file.

Owns: the typed form of a hospital's file (``HospitalConfig``) and its validation, including resolving
the code table path relative to the file. The ``[connection]`` table is kept as plain values: each
adapter kind validates its own settings, so a third-party adapter needs no change here. Must never hold
secrets in the file itself (certificates and keys are referenced by path).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hospital_adapters import limits as adapter_limits
from hospital_adapters.mapping import CodeTable
from hospital_adapters.port import VisitType

_TOP_LEVEL_KEYS = {"hospital_id", "name", "adapter", "code_table", "visit_type", "use_account", "connection"}


class ConfigError(Exception):
    """The configuration is wrong; the message says which file and which key."""


@dataclass(frozen=True)
class HospitalConfig:
    """One hospital's adapter: who it is, how its HIS connects, and how its codes map."""

    hospital_id: str  # the national fixed medical institution code (定点医药机构编号)
    name: str
    adapter: str  # adapter kind: "hl7", "fhir", "files", or a third-party entry point name
    code_table_path: Path
    visit_type: VisitType = VisitType.OUTPATIENT  # when the message does not say
    use_account: bool = True  # whether the personal account pays (the patient's choice at the desk)
    connection: Mapping[str, Any] = field(default_factory=dict)
    base_dir: Path = Path()

    def load_code_table(self) -> CodeTable:
        return CodeTable.load(self.code_table_path)

    def setting(self, key: str, kind: type, default: Any = None) -> Any:
        """A ``[connection]`` value of the given type, or ``default`` when absent and one is given."""
        if key not in self.connection:
            if default is None:
                raise ConfigError(f"hospital {self.hospital_id}: [connection] needs {key}")
            return default
        value = self.connection[key]
        # bool is an int in Python; a port of `true` is a typo, not 1.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"hospital {self.hospital_id}: [connection] {key} must be a {kind.__name__}")
        return value

    def path_setting(self, key: str) -> Path:
        """A ``[connection]`` path, relative to the configuration file."""
        return self.base_dir / str(self.setting(key, str))


def load_config(path: Path) -> HospitalConfig:
    """Read and validate one hospital's TOML file."""
    if path.stat().st_size > adapter_limits.MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {adapter_limits.MAX_CONFIG_BYTES} bytes")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from None
    return parse_config(raw, base_dir=path.parent, source=str(path))


def parse_config(raw: Mapping[str, Any], *, base_dir: Path, source: str = "config") -> HospitalConfig:
    unknown = set(raw) - _TOP_LEVEL_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown keys {', '.join(sorted(unknown))}")

    def text(key: str) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{source}: {key} must be a non-empty string")
        return value.strip()

    visit_type_text = raw.get("visit_type", VisitType.OUTPATIENT.value)
    if visit_type_text not in {v.value for v in VisitType}:
        raise ConfigError(f"{source}: visit_type must be one of {', '.join(v.value for v in VisitType)}")
    use_account = raw.get("use_account", True)
    if not isinstance(use_account, bool):
        raise ConfigError(f"{source}: use_account must be true or false")
    connection = raw.get("connection", {})
    if not isinstance(connection, dict):
        raise ConfigError(f"{source}: [connection] must be a table")
    return HospitalConfig(
        hospital_id=text("hospital_id"),
        name=text("name"),
        adapter=text("adapter"),
        code_table_path=base_dir / text("code_table"),
        visit_type=VisitType(visit_type_text),
        use_account=use_account,
        connection=connection,
        base_dir=base_dir,
    )
