"""Bring Wine's desktop up before the Windows suites run (tools/windows/test.sh).

A wineserver whose desktop process started without a display (a Wine program
run before Xvfb, as setup.sh's are) makes no top-level windows at all, even
for programs that have a display: CreateWindowExW returns NULL with last error
0. test.sh therefore kills any running wineserver and starts its own under
Xvfb; this check then makes one top-level window (retrying for up to 30 s)
so that a display problem shows up once, by name, before the suites run.
"""

from __future__ import annotations

import ctypes
import sys
import time

from asyncio_guest import _win32_api as w


def main() -> int:
    deadline = time.monotonic() + 30
    attempts = 0
    while True:
        attempts += 1
        hwnd = w.CreateWindowExW(
            0, "STATIC", "asyncio-guest warm-up", w.WS_OVERLAPPEDWINDOW | w.WS_VISIBLE,
            0, 0, 100, 50, None, None, None, None,
        )  # fmt: skip
        if hwnd:
            w.DestroyWindow(hwnd)
            print(f"Wine desktop ready (top-level window made at attempt {attempts})")
            return 0
        error = ctypes.get_last_error()
        if time.monotonic() > deadline:
            print(f"no top-level window after {attempts} attempts (last error {error})")
            return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
