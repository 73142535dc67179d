#!/usr/bin/env bash
# The two entry points of README.md:
#   scripts/dev.sh run    set up, build, run the main job (scripts/ghn_search.lua on Fashion-MNIST)
#   scripts/dev.sh test   set up, build with warnings as errors, run every test (CTest)
# Extra arguments after `run` go to `hypernas run` (e.g. --set candidates=50).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
mode="${1:-}"
shift || true
build="${HYPERNAS_BUILD_DIR:-build}"
jobs="$(nproc)"

bash scripts/setup.sh

configure() {
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
}

case "$mode" in
  run)
    configure
    cmake --build "$build" -j "$jobs"
    exec "$build/kernel/cli/hypernas" run scripts/ghn_search.lua "$@"
    ;;
  test)
    # The sources follow .clang-format; a file that does not fails the run before the build.
    bash scripts/format.sh check
    configure -DHYPERNAS_WERROR=ON -DHYPERNAS_BUILD_TESTS=ON
    start=$(date +%s)
    cmake --build "$build" -j "$jobs"
    echo "build: $(( $(date +%s) - start )) s"
    cd "$build"
    exec ctest --output-on-failure -j "$jobs" "$@"
    ;;
  *)
    echo "usage: scripts/dev.sh run|test [args...]" >&2
    exit 2
    ;;
esac
