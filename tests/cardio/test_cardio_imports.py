"""pyscard stays optional: only cardio.pcsc may import it, so the server installs without C headers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def test_importing_cardio_and_the_crypto_never_loads_pyscard() -> None:
    script = (
        "import sys\n"
        "import cardio, cardio.card_crypto, cardio.apdu, cardio.protocol, cardio.applet\n"
        "import cardio.virtual_card, cardio.fake_reader, cardio.citizen_card\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'smartcard'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_server_side_crypto_needs_only_the_standard_library_and_cryptography() -> None:
    script = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import cardio.card_crypto\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True, text=True, timeout=60, check=True
    )
    # cryptography's compiled bindings show up under their own top-level names.
    assert set(ast.literal_eval(result.stdout)) <= {"cardio", "cryptography", "_cffi_backend", "_openssl", "_rust"}
