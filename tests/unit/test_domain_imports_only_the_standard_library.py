"""The domain is pure: importing it pulls in nothing but the standard library and its own modules."""

import ast
import subprocess
import sys
from pathlib import Path

DOMAIN_MODULES = [
    *sorted((Path(__file__).parents[2] / "settlement" / "domain").glob("*.py")),
    Path(__file__).parents[2] / "settlement" / "errors.py",
    Path(__file__).parents[2] / "settlement" / "limits.py",
]
ALLOWED_OWN = ("settlement.domain", "settlement.errors", "settlement.limits", "settlement")


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_domain_module_imports_only_the_standard_library_or_the_domain() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in DOMAIN_MODULES
        for name in _imported_modules(path)
        if name.split(".")[0] not in sys.stdlib_module_names and not name.startswith(ALLOWED_OWN)
    }
    assert not offenders
    own = {name for path in DOMAIN_MODULES for name in _imported_modules(path) if name.startswith("settlement")}
    assert all(name in ALLOWED_OWN or name.startswith("settlement.domain") for name in own), own


def test_importing_the_domain_loads_no_adapter_library() -> None:
    probe = (
        "import sys, settlement.domain, settlement.errors;"
        "bad = [m for m in ('sqlalchemy', 'grpc', 'smartcard', 'prometheus_client', 'google.protobuf')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    finished = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
