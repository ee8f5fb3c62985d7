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
from ctypes import wintypes

user32 = ctypes.WinDLL("user32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
CreateWindowExW = user32.CreateWindowExW
CreateWindowExW.restype = wintypes.HWND
CreateWindowExW.argtypes = [
    wintypes.DWORD, wintypes.LPCWSTR, wintypes.LPCWSTR, wintypes.DWORD,
    ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
    wintypes.HWND, wintypes.HMENU, wintypes.HINSTANCE, wintypes.LPVOID,
]  # fmt: skip
DestroyWindow = user32.DestroyWindow
DestroyWindow.restype = wintypes.BOOL
DestroyWindow.argtypes = [wintypes.HWND]
WS_OVERLAPPEDWINDOW = 0x00CF0000
WS_VISIBLE = 0x10000000


def main() -> int:
    deadline = time.monotonic() + 30
    attempts = 0
    while True:
        attempts += 1
        hwnd = CreateWindowExW(
            0, "STATIC", "asyncio-guest warm-up", WS_OVERLAPPEDWINDOW | WS_VISIBLE,
            0, 0, 100, 50, None, None, None, None,
        )  # fmt: skip
        if hwnd:
            DestroyWindow(hwnd)
            print(f"Wine desktop ready (top-level window made at attempt {attempts})")
            return 0
        error = ctypes.get_last_error()
        if time.monotonic() > deadline:
            print(f"no top-level window after {attempts} attempts (last error {error})")
            return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
