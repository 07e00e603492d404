#!/usr/bin/env bash
# One place for every install step, so the README, CI and a newcomer do exactly the same thing.
#   scripts/install.sh            the server and its tools (no C headers needed)
#   scripts/install.sh --test     also the PC/SC stack (pcscd, vsmartcard-vpcd, pyscard from source),
#                                 the test tools and buf, as the test suite needs them
set -euo pipefail
cd "$(dirname "$0")/.."

with_test=0
[ "${1:-}" = "--test" ] && with_test=1

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "install: apt packages ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip

if [ $with_test -eq 1 ]; then
    # pcscd + the virtual reader driver for the card tests; headers and a compiler for pyscard;
    # the PostgreSQL client tools for pgbench in bench/; gdb, which runs the card tests (scripts/test.sh).
    apt_install pcscd vsmartcard-vpcd libpcsclite-dev gcc pkg-config swig postgresql-client postgresql-contrib gdb
    # --no-binary: pyscard is built here against this machine's libpcsclite, never taken as a wheel.
    .venv/bin/python -m pip install -q --no-binary pyscard -e ".[dev,reader]"
    if command -v npm >/dev/null 2>&1; then
        # buf lints the proto files; the npm package ships its binary, so this needs only the registry.
        [ -x tools/node_modules/.bin/buf ] || npm install --silent --prefix tools @bufbuild/buf@1 >/dev/null
    fi
else
    .venv/bin/python -m pip install -q -e .
fi
echo "install: done (.venv ready)"
