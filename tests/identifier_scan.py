"""The session-wide identifier scan: every record the engine's own loggers emit while the tests run is
searched for a full citizen ID or card number, and the session fails (exit status 1, with a report of
each record: test, logger, file and line of the logging call) if any is found.

Registered from tests/conftest.py (``pytest_plugins``); ``pytest_configure`` below adds the scan itself.
Scope and choices, each for a reason:

- The engine's loggers ``settlement``, ``cardio``, ``hospital_adapters`` and ``grpc`` (and their children)
  are what production writes; test code's own output is not a log. The handler sits on those four
  loggers rather than on the root: ``configure_logging()`` (``settlement serve`` and friends, which some
  tests run in-process) replaces the root's handlers, and the scan must survive that.
- Those loggers are set to DEBUG for the session, so a record is scanned even where no test asked for it
  (the per-RPC line is INFO, APDU traces are DEBUG, the root logger passes only WARNING).
- What is scanned is the raw record (message with its arguments, the arguments' reprs, exception and
  stack text), not the masked line the production formatter writes: masking in the formatter is the last
  line of defence, and this scan checks the first one, the engine never logging an identifier at all.
- Tests in tests/server plant a citizen ID to prove the formatter's last line of defence masks it
  (``PLANTED``); a hit of exactly that value in exactly those tests is expected, and not counted.
- Records logged by subprocesses (``settlement serve`` started by a test) are not seen here; the tests that
  start them scan what those processes wrote with ``identifiers_in``.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest

PLUGIN_NAME = "identifier-scan"
SCANNED_LOGGERS = ("settlement", "cardio", "hospital_adapters", "grpc")
OUTSIDE_TESTS = "(outside any test: collection, session start or end)"

# GB 11643's shape: 17 digits and a check character, standing alone (a 20-digit person number is not one).
# No birth-date check: the test worlds' made-up IDs (3201021980010…) have impossible dates.
CITIZEN_ID_LIKE = re.compile(r"(?<![0-9A-Za-z.])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
# The card numbers the seeds and fixtures use: CARD0001 (service world), A33010001 / B32010001 (demo),
# A12345678 (card tests), C00000001 (batch imports), and UnionPay-style 16-19 digit numbers starting 62.
CARD_NUMBER_LIKE = re.compile(r"(?<![0-9A-Za-z.])(?:CARD[0-9]{4}|[ABC][0-9]{8}|62[0-9]{14,17})(?![0-9A-Za-z])")

# Identifiers a test plants on purpose to prove the log formatter masks them: (value, tests it may appear in).
PLANTED: dict[str, tuple[str, ...]] = {
    # tests/server/server_fakes.py CITIZEN_ID: the fake's P-BUG raises InvariantViolated with it in its text
    # (logged with its traceback by settlement.server.status in test_errors_on_the_wire.py and
    # test_metrics_and_logs.py), and test_caller_identity_and_status.py logs it to settlement.test; they
    # check that what the formatter writes, or the caller sees, shows only its last 4 characters.
    "330106199001011234": ("tests/server/",),
}


@dataclass(frozen=True)
class Hit:
    test: str
    logger: str
    level: str
    where: str  # the logging call's file and line
    kind: str
    masked: str
    context: str


def identifiers_in(text: str) -> Iterator[tuple[str, str]]:
    """``(kind, value)`` for every citizen-ID-like and card-number-like string in ``text``."""
    for match in CITIZEN_ID_LIKE.finditer(text):
        yield "citizen ID", match[0]
    for match in CARD_NUMBER_LIKE.finditer(text):
        yield "card number", match[0]


def masked(value: str) -> str:
    return "*" * (len(value) - 4) + value[-4:]


def record_text(record: logging.LogRecord) -> str:
    """Everything a record can carry to a log file: message, arguments, exception and stack."""
    parts: list[str] = []
    try:
        parts.append(record.getMessage())
    except Exception:  # a broken format string: scan its pieces instead
        parts.append(str(record.msg))
    if record.args:
        parts.append(repr(record.args))
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


class _ScanningHandler(logging.Handler):
    def __init__(self, scan: IdentifierScan) -> None:
        super().__init__(logging.DEBUG)
        self._scan = scan

    def emit(self, record: logging.LogRecord) -> None:
        self._scan.inspect(record)


class IdentifierScan:
    """The pytest plugin: installs the handler at session start, reports and fails at session end."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.records_seen: Counter[str] = Counter()
        self.current_test = OUTSIDE_TESTS
        self._lock = threading.Lock()
        self._handler = _ScanningHandler(self)
        self._saved_levels: dict[str, int] = {}

    # --- capture -----------------------------------------------------------------------------------

    def inspect(self, record: logging.LogRecord) -> None:
        text = record_text(record)
        test = self.current_test
        found = [
            Hit(test, record.name, record.levelname, f"{record.pathname}:{record.lineno}", kind, masked(value),
                _context(text, value))
            for kind, value in dict.fromkeys(identifiers_in(text))  # once per record, in order
            if not _planted(value, test)
        ]
        with self._lock:
            self.records_seen[record.name] += 1
            self.hits.extend(found)

    def install(self) -> None:
        for name in SCANNED_LOGGERS:
            logger = logging.getLogger(name)
            self._saved_levels[name] = logger.level
            logger.setLevel(logging.DEBUG)
            logger.addHandler(self._handler)

    def uninstall(self) -> None:
        for name, level in self._saved_levels.items():
            logger = logging.getLogger(name)
            logger.removeHandler(self._handler)
            logger.setLevel(level)

    # --- pytest hooks --------------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.install()

    def pytest_runtest_logstart(self, nodeid: str, location: object) -> None:
        self.current_test = nodeid

    def pytest_runtest_logfinish(self, nodeid: str, location: object) -> None:
        self.current_test = OUTSIDE_TESTS

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.uninstall()
        if self.hits and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        seen = sum(self.records_seen.values())
        if not self.hits:
            by_logger = ", ".join(f"{name} {count}" for name, count in sorted(self.records_seen.items()))
            terminalreporter.write_line(f"identifier scan: 0 hits in {seen} log records ({by_logger or 'none'})")
            return
        terminalreporter.section("identifier scan: full citizen IDs or card numbers were logged", sep="=", red=True)
        for line in report_lines(self.hits):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"{len(self.hits)} hits in {seen} records: the session fails", red=True)


def report_lines(hits: Iterable[Hit]) -> list[str]:
    lines = []
    for hit in hits:
        lines.append(f"{hit.test}")
        lines.append(f"    {hit.kind} {hit.masked} logged by {hit.logger} ({hit.level}) at {hit.where}")
        lines.append(f"    … {hit.context} …")
    return lines


def _planted(value: str, test: str) -> bool:
    return any(test.startswith(prefix) for prefix in PLANTED.get(value, ()))


def _context(text: str, value: str, width: int = 60) -> str:
    """The text around the identifier, every identifier in it masked, on one line."""
    at = text.find(value)
    piece = text[max(0, at - width) : at + len(value) + width]
    for pattern in (CITIZEN_ID_LIKE, CARD_NUMBER_LIKE):
        piece = pattern.sub(lambda match: masked(match[0]), piece)
    return piece.replace("\n", " | ")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(IdentifierScan(), PLUGIN_NAME)


def scan_of(config: pytest.Config) -> IdentifierScan:
    """The running session's scan (for tests that check it is live)."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    assert isinstance(plugin, IdentifierScan), "tests/conftest.py must register tests/identifier_scan.py"
    return plugin
