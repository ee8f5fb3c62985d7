"""The Win32 functions the Win32 host uses, declared for ctypes (Windows only).

Only what ``asyncio_guest.win32`` calls is here; the tests, the demo and
tools/windows declare what else they need themselves.

Every function gets ``argtypes`` and ``restype``: without them ctypes passes
and returns C ``int``, which truncates 64-bit handles and pointers. DLLs are
loaded with ``use_last_error=True`` so ``ctypes.get_last_error()`` reads the
error of *our* call (the interpreter may make other calls in between).
References are the Microsoft pages cited beside each group.
"""

from __future__ import annotations

import ctypes
import sys
from ctypes import wintypes
from typing import Any

if sys.platform != "win32":  # pragma: no cover - guarded by asyncio_guest.win32
    raise ImportError("asyncio_guest._win32_api is only available on Windows")

user32 = ctypes.WinDLL("user32", use_last_error=True)
kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)

LRESULT = wintypes.LPARAM  # LONG_PTR
# https://learn.microsoft.com/windows/win32/api/winuser/nc-winuser-wndproc
WNDPROC = ctypes.WINFUNCTYPE(
    LRESULT, wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM
)
# https://learn.microsoft.com/windows/win32/winmsg/getmsgproc (a WH_GETMESSAGE hook)
HOOKPROC = ctypes.WINFUNCTYPE(LRESULT, ctypes.c_int, wintypes.WPARAM, wintypes.LPARAM)

# https://learn.microsoft.com/windows/win32/winmsg/window-features#message-only-windows
HWND_MESSAGE = wintypes.HWND(-3)

WM_NCDESTROY = 0x0082
WM_QUIT = 0x0012
WM_TIMER = 0x0113

# https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-peekmessagew
PM_NOREMOVE = 0x0000
PM_REMOVE = 0x0001

# GetQueueStatus flags:
# https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-getqueuestatus
QS_KEY = 0x0001
QS_MOUSEMOVE = 0x0002
QS_MOUSEBUTTON = 0x0004
QS_TIMER = 0x0010
QS_PAINT = 0x0020
QS_HOTKEY = 0x0080
QS_RAWINPUT = 0x0400
QS_TOUCH = 0x0800  # Windows 8 and later, as QS_POINTER
QS_POINTER = 0x1000
QS_INPUT = QS_MOUSEMOVE | QS_MOUSEBUTTON | QS_KEY | QS_RAWINPUT | QS_TOUCH | QS_POINTER

# https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-settimer
USER_TIMER_MINIMUM = 0x0000000A

# https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-setwindowshookexw
WH_GETMESSAGE = 3

ERROR_NOT_ENOUGH_QUOTA = 1816


class WNDCLASSEXW(ctypes.Structure):
    """https://learn.microsoft.com/windows/win32/api/winuser/ns-winuser-wndclassexw"""

    _fields_ = [
        ("cbSize", wintypes.UINT),
        ("style", wintypes.UINT),
        ("lpfnWndProc", WNDPROC),
        ("cbClsExtra", ctypes.c_int),
        ("cbWndExtra", ctypes.c_int),
        ("hInstance", wintypes.HINSTANCE),
        ("hIcon", wintypes.HICON),
        ("hCursor", wintypes.HANDLE),  # HCURSOR
        ("hbrBackground", wintypes.HBRUSH),
        ("lpszMenuName", wintypes.LPCWSTR),
        ("lpszClassName", wintypes.LPCWSTR),
        ("hIconSm", wintypes.HICON),
    ]


MSG = wintypes.MSG
LPMSG = ctypes.POINTER(MSG)


def _declare(dll: Any, name: str, restype: Any, *argtypes: Any) -> Any:
    fn = getattr(dll, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


H, U, W, L = wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM

# --- windows and classes -----------------------------------------------------
RegisterClassExW = _declare(user32, "RegisterClassExW", wintypes.ATOM, ctypes.POINTER(WNDCLASSEXW))
UnregisterClassW = _declare(
    user32, "UnregisterClassW", wintypes.BOOL, wintypes.LPCWSTR, wintypes.HINSTANCE
)
CreateWindowExW = _declare(
    user32, "CreateWindowExW", H,
    wintypes.DWORD, wintypes.LPCWSTR, wintypes.LPCWSTR, wintypes.DWORD,
    ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
    H, wintypes.HMENU, wintypes.HINSTANCE, wintypes.LPVOID,
)  # fmt: skip
DestroyWindow = _declare(user32, "DestroyWindow", wintypes.BOOL, H)
IsWindow = _declare(user32, "IsWindow", wintypes.BOOL, H)
DefWindowProcW = _declare(user32, "DefWindowProcW", LRESULT, H, U, W, L)
GetModuleHandleW = _declare(kernel32, "GetModuleHandleW", wintypes.HMODULE, wintypes.LPCWSTR)
# https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-getwindowthreadprocessid
# (0 when the window does not exist)
GetWindowThreadProcessId = _declare(
    user32, "GetWindowThreadProcessId", wintypes.DWORD, H, ctypes.POINTER(wintypes.DWORD)
)
GetCurrentThreadId = _declare(kernel32, "GetCurrentThreadId", wintypes.DWORD)

# --- messages ------------------------------------------------------------------
# https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-registerwindowmessagew
RegisterWindowMessageW = _declare(user32, "RegisterWindowMessageW", wintypes.UINT, wintypes.LPCWSTR)
# https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-postmessagew
PostMessageW = _declare(user32, "PostMessageW", wintypes.BOOL, H, U, W, L)
# https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-getmessagew
# (returns -1 on error, 0 for WM_QUIT: BOOL, not a truth value)
GetMessageW = _declare(user32, "GetMessageW", wintypes.BOOL, LPMSG, H, U, U)
PeekMessageW = _declare(user32, "PeekMessageW", wintypes.BOOL, LPMSG, H, U, U, U)
TranslateMessage = _declare(user32, "TranslateMessage", wintypes.BOOL, LPMSG)
DispatchMessageW = _declare(user32, "DispatchMessageW", LRESULT, LPMSG)
PostQuitMessage = _declare(user32, "PostQuitMessage", None, ctypes.c_int)
GetQueueStatus = _declare(user32, "GetQueueStatus", wintypes.DWORD, U)
# https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-settimer
SetTimer = _declare(user32, "SetTimer", ctypes.c_size_t, H, ctypes.c_size_t, U, wintypes.LPVOID)
KillTimer = _declare(user32, "KillTimer", wintypes.BOOL, H, ctypes.c_size_t)

# --- hooks ---------------------------------------------------------------------
# https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-setwindowshookexw
SetWindowsHookExW = _declare(
    user32, "SetWindowsHookExW", wintypes.HHOOK, ctypes.c_int, HOOKPROC, wintypes.HINSTANCE,
    wintypes.DWORD,
)  # fmt: skip
UnhookWindowsHookEx = _declare(user32, "UnhookWindowsHookEx", wintypes.BOOL, wintypes.HHOOK)
CallNextHookEx = _declare(user32, "CallNextHookEx", LRESULT, wintypes.HHOOK, ctypes.c_int, W, L)


def last_error(what: str) -> OSError:
    """The error of the last Win32 call on this thread, as an ``OSError`` naming it."""
    code = ctypes.get_last_error()
    exc = ctypes.WinError(code)
    return OSError(exc.errno, f"{what} failed: {exc.strerror}", None, code)
