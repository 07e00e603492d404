"""``settlement adapter`` as hospital IT runs it: a separate process talking to the real server."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from e2e_helpers import HL7_HOSPITAL, HL7_TERMINAL, REPOSITORY, Engine, MllpClient, sample_dft, segments

from hospital_adapters import derive_request_id
from hospital_adapters.files.inbox import result_path
from hospital_adapters.samples import CHARGE_FILES_DIR, HL7_HOSPITAL_CONFIG
from settlement.server import pki

START_SECONDS = 30.0
_SERVING = re.compile(r"adapter serving mllp://127\.0\.0\.1:(\d+)")


def settlement_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "settlement.cli", "adapter", *arguments]


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(settlement_command(*arguments), cwd=REPOSITORY, capture_output=True, text=True,
                          timeout=START_SECONDS, check=False, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def hospital_file(folder: Path, *, adapter: str = "hl7", connection: str = "port = 0") -> Path:
    """The sample HL7 hospital's file with its code table by absolute path, another kind or connection."""
    text = HL7_HOSPITAL_CONFIG.read_text(encoding="utf-8")
    text = text.replace('code_table = "codes.csv"', f'code_table = "{HL7_HOSPITAL_CONFIG.parent / "codes.csv"}"')
    text = text.replace('adapter = "hl7"', f'adapter = "{adapter}"')
    text = text.split("[connection]")[0] + f"[connection]\n{connection}\n"
    path = folder / f"{adapter}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def tls_options(engine: Engine, hospital_id: str = HL7_HOSPITAL, terminal_id: str = HL7_TERMINAL) -> list[str]:
    tls = engine.tls(hospital_id, terminal_id)
    return ["--tls-ca", str(tls.ca_file), "--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file)]


def test_once_settles_the_folder_over_mtls_and_a_second_run_finds_nothing_to_do(
        engine: Engine, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("visit-0001.csv", "visit-0002.json"):
        shutil.copy(CHARGE_FILES_DIR / name, inbox / name)
    config = hospital_file(tmp_path, adapter="files", connection=f'inbox = "{inbox}"')

    first = run("--config", str(config), "--target", engine.target, *tls_options(engine), "--once")
    second = run("--config", str(config), "--target", engine.target, *tls_options(engine), "--once")

    assert first.returncode == 0, first.stderr
    assert sorted(first.stdout.split()) == sorted(str(result_path(inbox / n)) for n in ("visit-0001.csv",
                                                                                          "visit-0002.json"))
    assert (second.returncode, second.stdout) == (0, "")
    assert engine.settlement_rows() == 2


def test_the_hl7_listener_serves_a_dev_mode_engine_until_sigterm(engine: Engine, tmp_path: Path) -> None:
    listener = engine.dev_listener()
    process = subprocess.Popen(
        settlement_command("--config", str(hospital_file(tmp_path)), "--target", f"127.0.0.1:{listener.port}",
                           "--dev-terminal", HL7_TERMINAL, "--operator", "his-gateway-1"),
        cwd=REPOSITORY, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log = StderrLog(process)
    try:
        client = MllpClient(log.wait_for(_SERVING))
        try:
            ack = client.exchange(sample_dft("MSG-CLI"))
        finally:
            client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=START_SECONDS) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()

    assert segments(ack, "MSA") == [["MSA", "AA", "MSG-CLI"]]
    request_id = derive_request_id(HL7_HOSPITAL, "hl7", f"HIS|{HL7_HOSPITAL}|MSG-CLI")
    stored = engine.inspector(HL7_HOSPITAL).settlement(request_id)
    assert stored is not None
    assert (stored.terminal_id, stored.operator_id) == (HL7_TERMINAL, "his-gateway-1")
    assert "engine at 127.0.0.1" in log.text
    assert "SERVING" in log.text
    assert "stopped" in log.text.splitlines()[-1]


class StderrLog:
    """A child's stderr read line by line on a thread, so the test can wait for one line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self._stream = process.stderr
        self._lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self._lines.put(line)

    def wait_for(self, pattern: re.Pattern[str]) -> int:
        """The first group of the first line matching ``pattern`` (the listener's port)."""
        while True:
            try:
                line = self._lines.get(timeout=START_SECONDS)
            except queue.Empty:
                pytest.fail(f"no line matching {pattern.pattern} within {START_SECONDS} s: {self.seen}")
            self.seen.append(line)
            found = pattern.search(line)
            if found:
                return int(found.group(1))

    @property
    def text(self) -> str:
        while not self._lines.empty():
            self.seen.append(self._lines.get())
        return "".join(self.seen)

    def close(self) -> None:
        """After the process ended: read to the end, then close the pipe."""
        self._thread.join(timeout=START_SECONDS)
        self._stream.close()


@pytest.mark.parametrize(("options", "complaint"), [
    ([], "no identity"),
    (["--dev-terminal", HL7_TERMINAL, "--tls-ca", "ca.crt"], "not both"),
    (["--dev-terminal", HL7_TERMINAL, "--dev-hospital", "H33010800045"], "not the configured hospital"),
    (["--dev-terminal", HL7_TERMINAL, "--once"], "--once is for the files adapter"),
    (["--dev-terminal", HL7_TERMINAL, "--operator", "王 医生"], "--operator"),
])
def test_a_mistake_in_the_options_stops_the_start_with_a_message(
        tmp_path: Path, options: list[str], complaint: str) -> None:
    done = run("--config", str(hospital_file(tmp_path)), "--target", "127.0.0.1:1", *options)

    assert done.returncode == 2
    assert complaint in done.stderr


def test_a_certificate_of_another_hospital_stops_the_start(tmp_path: Path) -> None:
    pki.init_authority(tmp_path)
    cert, key = pki.issue_terminal(tmp_path, "H33010800045", "H33010800045-FHIR")

    done = run("--config", str(hospital_file(tmp_path)), "--target", "localhost:1",
               "--tls-ca", str(tmp_path / pki.CA_CERT), "--tls-cert", str(cert), "--tls-key", str(key))

    assert done.returncode == 2
    assert "not of the configured hospital H33010600123" in done.stderr
