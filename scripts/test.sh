#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: install, lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test

# PostgreSQL is the production store and is tested for real; start the local cluster if it is down.
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    version=$(ls /etc/postgresql 2>/dev/null | head -n 1)
    [ -n "$version" ] && pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi

echo "== buf lint"; tools/node_modules/.bin/buf lint
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest "$@"
