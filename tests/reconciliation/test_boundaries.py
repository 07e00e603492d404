from __future__ import annotations

import subprocess
import sys


def test_the_reconciliation_package_imports_no_storage_rpc_or_metrics_library() -> None:
    probe = (
        "import sys, settlement.reconciliation, settlement.reconciliation.sample\n"
        "banned = ('sqlalchemy', 'grpc', 'psycopg', 'alembic', 'prometheus_client', 'smartcard')\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in banned))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
