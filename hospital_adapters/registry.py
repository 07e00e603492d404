"""Which adapter serves which hospital: entry points first, built-in kinds as a fallback.

Owns: finding the factory for a configuration's ``adapter`` kind. A hospital's own adapter can be a
separate package that declares an entry point in the ``clinic_settlement.hospital_adapters`` group; the
built-in kinds also work from a source checkout that was never installed. Must never import an
adapter kind that the configuration does not ask for (each pulls in its own libraries).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import cast

from hospital_adapters.adapter import AdapterFactory, HospitalAdapter
from hospital_adapters.config import ConfigError, HospitalConfig
from hospital_adapters.port import EnginePort

ENTRY_POINT_GROUP = "clinic_settlement.hospital_adapters"

BUILT_IN_FACTORIES = {
    "hl7": "hospital_adapters.hl7.adapter:build",
    "fhir": "hospital_adapters.fhir.adapter:build",
    "files": "hospital_adapters.files.adapter:build",
}


def available_kinds() -> list[str]:
    """Every adapter kind this installation can build."""
    return sorted({*BUILT_IN_FACTORIES, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def find_factory(kind: str) -> AdapterFactory:
    """The factory for an adapter kind; an installed entry point wins over the built-in of that name."""
    for entry_point in entry_points(group=ENTRY_POINT_GROUP, name=kind):
        return cast(AdapterFactory, entry_point.load())
    target = BUILT_IN_FACTORIES.get(kind)
    if target is None:
        raise ConfigError(f"unknown adapter kind {kind!r}; available: {', '.join(available_kinds())}")
    module_name, _, attribute = target.partition(":")
    return cast(AdapterFactory, getattr(importlib.import_module(module_name), attribute))


def build_adapter(config: HospitalConfig, engine: EnginePort) -> HospitalAdapter:
    """The adapter for one hospital, built but not started."""
    adapter = find_factory(config.adapter)(config, engine)
    if not isinstance(adapter, HospitalAdapter):
        raise ConfigError(f"adapter kind {config.adapter!r} did not build a HospitalAdapter")
    return adapter
