"""The committed gRPC code is exactly what ``scripts/gen_proto.sh`` makes from ``proto/``, and the
``.proto`` files pass ``buf lint`` and ``buf format``.

buf comes from npm (``scripts/install.sh --test`` installs ``@bufbuild/buf`` under ``tools/``). Without it
the buf tests skip locally; under ``CI=true`` a missing buf is a failure, so CI cannot go green unlinted.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "scripts" / "gen_proto.sh"
COMMITTED = REPO / "settlement" / "api" / "gen"
BUF = REPO / "tools" / "node_modules" / ".bin" / "buf"
GENERATED_PACKAGE = "settlement.api.gen.clinic.settlement.v1"


def _generate(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(GENERATOR), str(out)],
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def _buf_or_skip() -> Path:
    if BUF.exists():
        return BUF
    message = f"buf not installed at {BUF.relative_to(REPO)}; run scripts/install.sh --test"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: buf must run, not skip)")
    pytest.skip(message)


def test_committed_generated_code_matches_a_fresh_generation(tmp_path: Path) -> None:
    fresh = tmp_path / "gen"
    result = _generate(fresh)
    assert result.returncode == 0, result.stderr
    committed, regenerated = _tree(COMMITTED), _tree(fresh)
    stale = sorted(
        name
        for name in committed.keys() | regenerated.keys()
        if committed.get(name) != regenerated.get(name)
    )
    assert not stale, f"settlement/api/gen is stale in {stale}; run scripts/gen_proto.sh and commit"


def test_generation_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert _generate(first).returncode == 0
    assert _generate(second).returncode == 0
    assert _tree(first) == _tree(second)


def test_generator_refuses_to_replace_a_directory_it_did_not_write(tmp_path: Path) -> None:
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not generated", encoding="utf-8")
    result = _generate(foreign)
    assert result.returncode != 0
    assert "refusing" in result.stderr
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "not generated"


def test_generated_modules_import_inside_the_package_and_keep_the_proto_names() -> None:
    service_pb2 = importlib.import_module(f"{GENERATED_PACKAGE}.settlement_service_pb2")
    service_grpc = importlib.import_module(f"{GENERATED_PACKAGE}.settlement_service_pb2_grpc")
    settlement_pb2 = importlib.import_module(f"{GENERATED_PACKAGE}.settlement_pb2")

    service = service_pb2.DESCRIPTOR.services_by_name["SettlementService"]
    assert service.full_name == "clinic.settlement.v1.SettlementService"
    assert [method.name for method in service.methods] == [
        "Quote",
        "Settle",
        "CancelSettlement",
        "RefundLines",
        "GetSettlement",
        "ListSettlements",
        "GetAccount",
        "GetDailyLedger",
    ]
    assert settlement_pb2.Settlement.DESCRIPTOR.full_name == "clinic.settlement.v1.Settlement"
    assert settlement_pb2.Settlement.__module__ == f"{GENERATED_PACKAGE}.settlement_pb2"
    assert hasattr(service_grpc, "SettlementServiceStub")
    assert hasattr(service_grpc, "add_SettlementServiceServicer_to_server")


def test_every_mutating_request_carries_a_request_id() -> None:
    service_pb2 = importlib.import_module(f"{GENERATED_PACKAGE}.settlement_service_pb2")
    for name in ("SettleRequest", "CancelSettlementRequest", "RefundLinesRequest"):
        fields = service_pb2.DESCRIPTOR.message_types_by_name[name].fields_by_name
        assert fields["request_id"].number == 1, name


def test_money_fields_are_int64_fen() -> None:
    modules = ["settlement_pb2", "account_pb2", "daily_ledger_pb2", "charge_pb2", "settlement_service_pb2"]
    int64 = 3  # FieldDescriptor.TYPE_INT64
    seen = 0
    for module_name in modules:
        module = importlib.import_module(f"{GENERATED_PACKAGE}.{module_name}")
        for message in module.DESCRIPTOR.message_types_by_name.values():
            for field in message.fields:
                if field.name.endswith("_fen"):
                    seen += 1
                    assert field.type == int64, f"{message.full_name}.{field.name}"
    assert seen > 30


def test_proto_files_pass_buf_lint() -> None:
    buf = _buf_or_skip()
    result = subprocess.run(
        [str(buf), "lint"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_proto_files_are_buf_formatted() -> None:
    buf = _buf_or_skip()
    result = subprocess.run(
        [str(buf), "format", "--diff", "--exit-code"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, "run `tools/node_modules/.bin/buf format -w`:\n" + result.stdout
