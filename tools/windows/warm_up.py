"""Bring Wine's desktop up before the Windows suites run (tools/windows/test.sh).

Under Wine the first top-level window of a fresh wineserver session sometimes
fails to be created (CreateWindowExW returns NULL right after WM_CREATE; seen
in about one run in five of examples/win32_demo.py when it was the first
program of the session), which is Wine starting its desktop process, not
something a program on Windows sees. This makes one top-level window, retrying
for up to 30 s, while test.sh keeps the wineserver (and so the desktop) alive
for the whole run.
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
