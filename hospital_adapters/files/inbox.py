"""A folder of charge files, each settled once: ``<file>.result.json`` is written next to it.

Owns: choosing which files to process (oldest first, bounded per pass; names ending in ``.tmp``,
``.part`` or starting with ``.`` are still being written), writing each result atomically (temporary
file, fsync, rename, fsync of the folder) and treating an existing result as the durable "done" marker.
A crash between the engine's answer and the result file only means the file is sent again: the same
``visit_id`` gives the same ``request_id``, so the engine returns its first answer and settles nothing
twice. Must never write a result when the engine's answer is unknown (it is retried on the next pass).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hospital_adapters import limits as adapter_limits
from hospital_adapters.charges import Problem, Rejected, SubmissionRefused
from hospital_adapters.config import ConfigError, HospitalConfig
from hospital_adapters.files.chargefile import parse_charge_file
from hospital_adapters.mapping import CodeTable
from hospital_adapters.pipeline import settle_visit
from hospital_adapters.port import EnginePort, Settled, derive_request_id
from hospital_adapters.reasons import message_zh

log = logging.getLogger(__name__)

RESULT_SUFFIX = ".result.json"
_CHARGE_SUFFIXES = (".csv", ".json")
_IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial")


@dataclass(frozen=True, slots=True)
class FilesSettings:
    """The ``[connection]`` table of a files hospital."""

    inbox: Path
    poll_interval_ms: int = adapter_limits.DEFAULT_POLL_INTERVAL_MS
    encoding: str = "utf-8-sig"  # Excel's UTF-8 has a BOM; set "gb18030" for GBK exports

    @classmethod
    def from_config(cls, config: HospitalConfig) -> FilesSettings:
        settings = cls(
            inbox=config.path_setting("inbox"),
            poll_interval_ms=config.setting("poll_interval_ms", int, adapter_limits.DEFAULT_POLL_INTERVAL_MS),
            encoding=config.setting("encoding", str, "utf-8-sig"),
        )
        if settings.poll_interval_ms < adapter_limits.MIN_POLL_INTERVAL_MS:
            raise ConfigError(f"hospital {config.hospital_id}: poll_interval_ms must be at least "
                              f"{adapter_limits.MIN_POLL_INTERVAL_MS}")
        return settings


def result_path(charge_file: Path) -> Path:
    return charge_file.with_name(charge_file.name + RESULT_SUFFIX)


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old state or the whole new file, never half of it, even across a power cut."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself must survive a crash
    finally:
        os.close(folder)


def pending_files(inbox: Path) -> list[Path]:
    """Charge files without a result, oldest first, at most ``MAX_FILES_PER_POLL``."""
    candidates = []
    for path in inbox.iterdir():
        name = path.name
        if (name.startswith(".") or name.endswith(RESULT_SUFFIX) or name.endswith(_IN_PROGRESS_SUFFIXES)
                or not name.lower().endswith(_CHARGE_SUFFIXES) or not path.is_file()):
            continue
        if not result_path(path).exists():
            candidates.append(path)
    candidates.sort(key=lambda path: (path.stat().st_mtime_ns, path.name))
    return candidates[: adapter_limits.MAX_FILES_PER_POLL]


class Inbox:
    """Processes one hospital's charge folder."""

    def __init__(self, config: HospitalConfig, table: CodeTable, engine: EnginePort,
                 settings: FilesSettings) -> None:
        self._config = config
        self._table = table
        self._engine = engine
        self.settings = settings

    def process_pending(self) -> list[Path]:
        """One pass over the folder; returns the result files written."""
        written = []
        for path in pending_files(self.settings.inbox):
            result = self.process(path)
            if result is not None:
                written.append(result)
        return written

    def process(self, path: Path) -> Path | None:
        """Settle one file and write its result; None when the engine's answer is unknown."""
        body = self._answer(path)
        if body is None:
            return None
        target = result_path(path)
        write_atomically(target, json.dumps(body, ensure_ascii=False, indent=2) + "\n")
        log.info("charge file %s: %s", path.name, body["status"])
        return target

    def _answer(self, path: Path) -> dict[str, object] | None:
        visit_id = None
        try:
            if path.stat().st_size > adapter_limits.MAX_CHARGE_FILE_BYTES:
                raise SubmissionRefused(Problem("INVALID_CHARGE_FILE", f"the file exceeds "
                                                f"{adapter_limits.MAX_CHARGE_FILE_BYTES} bytes"))
            try:
                text = path.read_text(encoding=self.settings.encoding)
            except UnicodeDecodeError:
                raise SubmissionRefused(Problem("INVALID_CHARGE_FILE",
                                                f"the file is not {self.settings.encoding} text")) from None
            charge = parse_charge_file(path.name, text, self._config)
            visit_id = charge.visit_id
            result = settle_visit(charge.visit, self._table, self._engine)
        except SubmissionRefused as refused:
            result = Rejected(refused.problems)
        body: dict[str, object] = {"file": path.name, "visit_id": visit_id}
        if visit_id is not None:
            body["request_id"] = derive_request_id(self._config.hospital_id, "files", visit_id)
        if isinstance(result, Settled):
            split = result.split
            body.update(status="settled", settlement_id=result.settlement_id, total_fen=split.total_fen,
                        fund_paid_fen=split.fund_paid_fen, account_paid_fen=split.account_paid_fen,
                        cash_fen=split.cash_fen, balance_after_fen=split.balance_after_fen,
                        fully_self_paid_fen=split.fully_self_paid_fen, over_ceiling_fen=split.over_ceiling_fen,
                        pre_self_paid_fen=split.pre_self_paid_fen, in_scope_fen=split.in_scope_fen,
                        deductible_paid_fen=split.deductible_paid_fen)
            return body
        if result.reason == "UNAVAILABLE":
            log.warning("charge file %s: engine unavailable, will retry", path.name)
            return None
        body.update(status="refused", problems=[
            {"reason": p.reason, "message": p.message, "message_zh": message_zh(p.reason),
             "line_id": p.line_id, "field": p.field}
            for p in result.problems
        ])
        return body
