"""``open_x_display_first``: a work-around for wxGTK failing to start under Xvfb.

Under Xvfb here, Debian's wxPython 4.2.0 (wxGTK 3.2.2) fails to start in some
15% of processes: ``wx.App()`` raises "wxEntryStart failed ... Is DISPLAY set
properly?" and GTK aborts at exit. Never once an X connection is open already
(0 in 65 starts), so test processes open one (kept for the process) before
making the application. No side effect but that (no wx import here), so a
child process can use it before making its own ``wx.App``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_displays: list[int | None] = []


def open_x_display_first() -> None:
    """Open an X connection (kept for the process) before wx makes its own."""
    if not sys.platform.startswith("linux") or _displays:
        return
    try:
        libx11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    except OSError:
        return
    libx11.XOpenDisplay.restype = ctypes.c_void_p
    libx11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    _displays.append(libx11.XOpenDisplay(None))
