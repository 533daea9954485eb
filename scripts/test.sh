#!/usr/bin/env bash
# Caisson's whole test suite, from a fresh machine:
#   1. installs what the tests need (C headers, Docker, the Compose v2 plugin, busybox, tmux, minisign,
#      age, sqlite3, GNU time),
#   2. starts a private Docker daemon (never the system one) and builds the tiny test images,
#   3. builds every product and runs `swift test` (unit, TOML conformance, the apply/rollback matrix,
#      the swarm, real-Docker conformance and end-to-end, CLI tests),
#   4. walks the console's flows in headless Chromium (Tests/Browser, Selenium from PyPI),
#   5. stops the daemon.
# Set CAISSON_TEST_NO_DOCKER=1 to run without Docker (real-Docker tests then skip with a notice).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)

log() { printf '\n== %s\n' "$*" >&2; }

need_pkgs=()
[ -f /usr/include/sqlite3.h ] || need_pkgs+=(libsqlite3-dev)
[ -f /usr/include/openssl/evp.h ] || need_pkgs+=(libssl-dev)
[ -f /usr/include/zlib.h ] || need_pkgs+=(zlib1g-dev)      # gzip-compressed image.tar (CZlib)
command -v gzip >/dev/null || need_pkgs+=(gzip)           # the gzip interop tests
command -v tmux >/dev/null || need_pkgs+=(tmux)
command -v minisign >/dev/null || need_pkgs+=(minisign)
command -v age >/dev/null || need_pkgs+=(age)            # age interop (issue 15): age, age-keygen
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v sqlite3 >/dev/null || need_pkgs+=(sqlite3)    # the hostile-corpus tests read the store with it
[ -x /usr/bin/time ] || need_pkgs+=(time)                # peak RSS of a child (GNU time's wait4 figure)
command -v chromium >/dev/null || need_pkgs+=(chromium)          # the console's real-browser tests
command -v chromedriver >/dev/null || need_pkgs+=(chromium-driver)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ "${CAISSON_TEST_NO_DOCKER:-0}" != 1 ]; then
    log "private Docker daemon"
    scripts/docker.sh install
    scripts/docker.sh start >/dev/null
    trap 'scripts/docker.sh stop >/dev/null 2>&1 || true' EXIT
    # shellcheck disable=SC1091
    source "${CAISSON_DOCKER_DIR:-$REPO/.docker-test}/env"
    export DOCKER_HOST
    export CAISSON_REQUIRE_DOCKER=1   # real-Docker tests must run, not skip
    if [ -x scripts/make-test-images ]; then
        log "test images"
        scripts/make-test-images >/dev/null
    fi
fi

log "build"
swift build --build-tests

log "swift test"
swift test --skip-build

# The console in a real browser: headless Chromium driven by Selenium (from PyPI, in a venv).
log "console in a real browser"
venv="$REPO/.browser-test/venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import selenium, PIL' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check selenium pillow
fi
browser_args=()
[ "${CAISSON_TEST_NO_DOCKER:-0}" != 1 ] && browser_args+=(--docker)
"$venv/bin/python" Tests/Browser/console_browser.py --caisson "$(swift build --show-bin-path)/caisson" "${browser_args[@]}"
