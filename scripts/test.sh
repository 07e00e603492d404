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
# Two pytest sessions: everything but the card tests, then the card tests through the real pcscd.
# "No tests collected" (exit 5) is a failure unless arguments narrowed the run to one of the halves.
narrowed=$([ $# -gt 0 ] && echo 1 || echo 0)
session_ok() { [ "$1" -eq 0 ] || { [ "$1" -eq 5 ] && [ "$narrowed" -eq 1 ]; }; }

echo "== pytest (all but the real PC/SC stack)"
rc=0; .venv/bin/pytest -m "not pcsc" "$@" || rc=$?
session_ok $rc || exit $rc

# The card tests load pcsc-lite and pyscard (C) beside an in-process gRPC server. CI once saw that
# process die of SIGSEGV (exit 139) with the native frames lost; they run under gdb, so a crash prints
# every thread's native stack, and a crashed session (never a failed test) is run once more.
pcsc_session() {
    gdb -q -nx -batch -return-child-result \
        -ex "set pagination off" -ex "set print thread-events off" -ex "set auto-load safe-path /" \
        -ex "handle all nostop noprint pass" -ex "handle SIGSEGV SIGBUS SIGILL SIGFPE SIGABRT stop print" \
        -ex run -ex "thread apply all bt 40" \
        --args .venv/bin/python -m pytest -m pcsc "$@"
}
echo "== pytest (the real PC/SC stack)"
rc=0; pcsc_session "$@" || rc=$?
if [ $rc -ge 128 ]; then
    echo "!! the card-test session crashed (exit $rc; native stacks above): running it once more"
    rc=0; pcsc_session "$@" || rc=$?
fi
session_ok $rc || exit $rc
