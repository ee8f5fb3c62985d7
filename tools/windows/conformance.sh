#!/usr/bin/env bash
# The conformance gate (tools/conformance.py) on Windows CPython under Wine:
# CPython's own test_asyncio, plain and in guest mode, where every proactor
# (IOCP, the default on Windows) and selector loop the tests create is a guest
# loop. Part of `make conformance-windows`.
#
#   bash tools/windows/conformance.sh [3.10 3.13 ...]
#   CONFORMANCE_ARGS="--modules test_tasks --keep-logs Z:\\tmp\\c" bash tools/windows/conformance.sh 3.13
#
# --test-timeout is 30 s here (120 s by default): under Wine a few tests hang
# in both modes (UDP to a port nobody listens on never gets its ICMP error as
# ConnectionResetError; one SSL shutdown test), and each hang costs the whole
# timeout twice. The slowest test that does finish takes about 10 s here.
# CONFORMANCE_ARGS come after, so they can override it.
#
# Prepare first with tools/windows/setup.sh: it also copies the pyenv CPython's
# test package (test/support, test/test_asyncio) next to each embeddable one.
# Every version runs, even after a failure; the exit status is 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(${WIN_PYTHONS:-3.10 3.11 3.12 3.13})
read -r -a extra <<< "${CONFORMANCE_ARGS:-}"

source tools/windows/env.sh
for v in "${versions[@]}"; do
  tag=cp${v/./}
  if [ ! -f ".win/$tag/.ready" ] || [ ! -f ".win/testpkg-$tag/test/.ready" ]; then
    echo "error: Windows CPython $v or its test package is not prepared: bash tools/windows/setup.sh $v" >&2
    exit 1
  fi
done

# One persistent wineserver for the whole run, its output going nowhere, and
# stopped at the end. Wine's services (services.exe, winedevice, plugplay,
# ...) are started by the first Wine program of a server and inherit its
# stdout/stderr; with a persistent server they live until it stops. So the
# first program here writes nowhere either: otherwise the services would hold
# the caller's pipe (a CI log) open and the caller would wait for ever. (No
# display is needed: test_asyncio makes no windows.) A server left running by
# an earlier Wine program, with whatever output, is stopped first.
wineserver -k 2>/dev/null || true
wineserver -p </dev/null >/dev/null 2>&1
trap 'wineserver -k 2>/dev/null || true' EXIT
wine ".win/cp${versions[0]/./}/python.exe" -c pass </dev/null >/dev/null 2>&1 || true

failed=()
for v in "${versions[@]}"; do
  echo
  echo "==================== conformance: Windows CPython $v under Wine ===================="
  t0=$SECONDS
  if win_python "$v" tools/conformance.py --test-timeout 30 "${extra[@]}"; then
    echo "--- conformance: Windows $v OK ($((SECONDS - t0))s)"
  else
    echo "!!! conformance: Windows $v FAILED ($((SECONDS - t0))s)"
    failed+=("$v")
  fi
done
echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "==================== conformance (Windows) FAILED on: ${failed[*]}"
  exit 1
fi
echo "==================== conformance (Windows) passed on: ${versions[*]}"
