"""Win32 declarations only the tests use (the library's own are in ``asyncio_guest._win32_api``).

Same rules as the library's: every function gets ``argtypes`` and ``restype``,
and DLLs are loaded with ``use_last_error=True``. These are separate
``WinDLL`` objects, so nothing declared here changes the library's functions.
"""

from __future__ import annotations

import ctypes
import sys
from ctypes import wintypes
from typing import Any

assert sys.platform == "win32"  # tests/windows/conftest.py collects nothing elsewhere

user32 = ctypes.WinDLL("user32", use_last_error=True)
kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)

LRESULT = wintypes.LPARAM

WM_PAINT = 0x000F
WM_CLOSE = 0x0010
WM_COMMAND = 0x0111
WM_KEYDOWN = 0x0100
WM_SYSCOMMAND = 0x0112
WM_USER = 0x0400
SC_MOVE = 0xF010
VK_ESCAPE = 0x1B
WS_OVERLAPPEDWINDOW = 0x00CF0000
WS_VISIBLE = 0x10000000
WS_CHILD = 0x40000000
# https://learn.microsoft.com/windows/win32/controls/button-styles
BS_PUSHBUTTON = 0x00000000
# https://learn.microsoft.com/windows/win32/controls/bm-click,
# https://learn.microsoft.com/windows/win32/controls/bn-clicked (WM_COMMAND's HIWORD(wParam))
BM_CLICK = 0x00F5
BN_CLICKED = 0
MB_OK = 0x00000000
ERROR_CLASS_DOES_NOT_EXIST = 1411


class PAINTSTRUCT(ctypes.Structure):
    """https://learn.microsoft.com/windows/win32/api/winuser/ns-winuser-paintstruct"""

    _fields_ = [
        ("hdc", wintypes.HDC),
        ("fErase", wintypes.BOOL),
        ("rcPaint", wintypes.RECT),
        ("fRestore", wintypes.BOOL),
        ("fIncUpdate", wintypes.BOOL),
        ("rgbReserved", ctypes.c_byte * 32),
    ]


def _declare(dll: Any, name: str, restype: Any, *argtypes: Any) -> Any:
    fn = getattr(dll, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


H, U, W, L = wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM
SendMessageW = _declare(user32, "SendMessageW", LRESULT, H, U, W, L)
MessageBoxW = _declare(
    user32, "MessageBoxW", ctypes.c_int, H, wintypes.LPCWSTR, wintypes.LPCWSTR, U
)
FindWindowW = _declare(user32, "FindWindowW", H, wintypes.LPCWSTR, wintypes.LPCWSTR)
BeginPaint = _declare(user32, "BeginPaint", wintypes.HDC, H, ctypes.POINTER(PAINTSTRUCT))
EndPaint = _declare(user32, "EndPaint", wintypes.BOOL, H, ctypes.POINTER(PAINTSTRUCT))
# https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-enablewindow
EnableWindow = _declare(user32, "EnableWindow", wintypes.BOOL, H, wintypes.BOOL)
InvalidateRect = _declare(
    user32, "InvalidateRect", wintypes.BOOL, H, ctypes.c_void_p, wintypes.BOOL
)
