#!/usr/bin/env bash
# Run the Windows test suites with Windows CPython under Wine (part of `make test`).
#
#   bash tools/windows/test.sh [3.10 3.13 ...]
#
# For each version: the whole test suite on the proactor (IOCP) loop, on the
# last version also on the select() loop (ASYNCIO_GUEST_TEST_LOOP=selector),
# both including tests/windows (the Win32 host), then the Win32 demo in --auto mode.
# Everything runs under one Xvfb, because message boxes and the window move
# loop need a display. Prepare first with tools/windows/setup.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(${WIN_PYTHONS:-3.10 3.11 3.12 3.13})

if [ -z "${DISPLAY:-}" ]; then
  command -v xvfb-run >/dev/null || { echo "error: xvfb-run not found (apt-get install xvfb xauth)" >&2; exit 1; }
  exec xvfb-run -n "${XVFB_FROM:-99}" -a -s "-screen 0 1280x1024x24" bash "$0" "${versions[@]}"
fi

source tools/windows/env.sh
# One wineserver (and so one Wine desktop) for the whole run, started here,
# under this display. A server still running from an earlier Wine program
# without a display (setup.sh) would be reused, and its desktop then makes no
# top-level windows at all (CreateWindowExW -> NULL, last error 0): kill it.
# The display tests must not skip here.
# Its services inherit the first Wine program's stdout/stderr and would hold
# the caller's pipe (a CI log) open: that first program writes nowhere.
wineserver -k 2>/dev/null || true
wineserver -p </dev/null >/dev/null 2>&1
trap 'wineserver -k 2>/dev/null || true' EXIT
wine ".win/cp${versions[0]/./}/python.exe" -c pass </dev/null >/dev/null 2>&1 || true
export ASYNCIO_GUEST_REQUIRE_DISPLAY=1
# The Win32 host harness of the scenario set must be there (tests/scenarios).
export ASYNCIO_GUEST_REQUIRE_HOSTS=win32
failed=()
if ! win_python "${versions[0]}" tools/windows/warm_up.py; then
  failed+=("display")
fi
# The line-by-line sweeps (tests/sampling.py) are the slowest tests under
# Wine: whole on the last version's proactor loop (Windows' default), 1 case in
# 3 on the other runs, each run with the next share.
last=${versions[${#versions[@]}-1]}
share=0
# The select() loop on the last version only: it is the same code on each
# version (the proactor, Windows' default, runs on all of them).
for v in "${versions[@]}"; do
  loops=(proactor)
  [ "$v" != "$last" ] || loops+=(selector)
  for loop in "${loops[@]}"; do
    sample=""
    if [ "$v" != "$last" ] || [ "$loop" != proactor ]; then
      sample="3/$share"; share=$(( (share + 1) % 3 ))
    fi
    echo
    echo "==================== Windows CPython $v under Wine, $loop loop (sweeps: ${sample:-whole}) ===================="
    if ASYNCIO_GUEST_SWEEP_SAMPLE=$sample ASYNCIO_GUEST_TEST_LOOP=$loop \
        win_python "$v" -m pytest -q -p no:cacheprovider tests; then
      echo "--- Windows $v $loop OK"
    else
      failed+=("$v/$loop")
    fi
  done
  echo "==================== Windows CPython $v: examples/win32_demo.py --auto"
  if win_python "$v" examples/win32_demo.py --auto; then
    echo "--- Windows $v demo OK"
  else
    failed+=("$v/demo")
  fi
done
echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "==================== Windows suites FAILED: ${failed[*]}"
  exit 1
fi
echo "==================== Windows suites passed: ${versions[*]} (proactor, selector, demo)"
