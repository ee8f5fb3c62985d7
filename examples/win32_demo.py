"""A plain ctypes Win32 window whose button streams asyncio network results into it.

    python examples/win32_demo.py            # Windows (or Windows CPython under Wine)
    python examples/win32_demo.py --auto     # clicks the button itself, checks, exits

The window is an ordinary ``WS_OVERLAPPEDWINDOW`` with a push button and a
multi-line edit control, driven by the thread's own Win32 message loop
(``asyncio_guest.win32.run``). The program also starts a small TCP "feed"
server on 127.0.0.1; each click opens a connection to it with
``asyncio.open_connection`` and appends every line it sends to the text area
as it arrives. Drag the window or resize it while lines stream in: asyncio
keeps running inside the system's modal move/size loop.

Nothing here polls: between events, the GUI thread sleeps in ``GetMessageW``
and asyncio's backend thread sleeps in ``GetQueuedCompletionStatus``.
"""

from __future__ import annotations

import sys

if sys.platform != "win32":
    sys.exit("examples/win32_demo.py needs Windows (or Windows CPython under Wine)")

import argparse
import asyncio
import ctypes
import time
from ctypes import wintypes

from asyncio_guest import win32

user32 = ctypes.WinDLL("user32", use_last_error=True)
kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)

LRESULT = wintypes.LPARAM
H, U, W, L = wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM
WNDPROC = ctypes.WINFUNCTYPE(LRESULT, H, U, W, L)


class WNDCLASSEXW(ctypes.Structure):
    _fields_ = [
        ("cbSize", wintypes.UINT), ("style", wintypes.UINT), ("lpfnWndProc", WNDPROC),
        ("cbClsExtra", ctypes.c_int), ("cbWndExtra", ctypes.c_int),
        ("hInstance", wintypes.HINSTANCE), ("hIcon", wintypes.HICON),
        ("hCursor", wintypes.HANDLE), ("hbrBackground", wintypes.HBRUSH),
        ("lpszMenuName", wintypes.LPCWSTR), ("lpszClassName", wintypes.LPCWSTR),
        ("hIconSm", wintypes.HICON),
    ]  # fmt: skip


def declare(dll: ctypes.WinDLL, name: str, restype: object, *argtypes: object) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    fn = getattr(dll, name)
    fn.restype, fn.argtypes = restype, list(argtypes)
    return fn


RegisterClassExW = declare(user32, "RegisterClassExW", wintypes.ATOM, ctypes.POINTER(WNDCLASSEXW))
UnregisterClassW = declare(
    user32, "UnregisterClassW", wintypes.BOOL, wintypes.LPCWSTR, wintypes.HINSTANCE
)
CreateWindowExW = declare(
    user32, "CreateWindowExW", H, wintypes.DWORD, wintypes.LPCWSTR, wintypes.LPCWSTR,
    wintypes.DWORD, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
    H, wintypes.HMENU, wintypes.HINSTANCE, wintypes.LPVOID,
)  # fmt: skip
DefWindowProcW = declare(user32, "DefWindowProcW", LRESULT, H, U, W, L)
DestroyWindow = declare(user32, "DestroyWindow", wintypes.BOOL, H)
ShowWindow = declare(user32, "ShowWindow", wintypes.BOOL, H, ctypes.c_int)
MoveWindow = declare(
    user32, "MoveWindow", wintypes.BOOL, H, ctypes.c_int, ctypes.c_int, ctypes.c_int,
    ctypes.c_int, wintypes.BOOL,
)  # fmt: skip
SendMessageW = declare(user32, "SendMessageW", LRESULT, H, U, W, L)
PostMessageW = declare(user32, "PostMessageW", wintypes.BOOL, H, U, W, L)
EnableWindow = declare(user32, "EnableWindow", wintypes.BOOL, H, wintypes.BOOL)
GetWindowTextLengthW = declare(user32, "GetWindowTextLengthW", ctypes.c_int, H)
GetModuleHandleW = declare(kernel32, "GetModuleHandleW", wintypes.HMODULE, wintypes.LPCWSTR)
GetSysColorBrush = declare(user32, "GetSysColorBrush", wintypes.HBRUSH, ctypes.c_int)

WS_OVERLAPPEDWINDOW, WS_VISIBLE, WS_CHILD = 0x00CF0000, 0x10000000, 0x40000000
WS_VSCROLL, WS_BORDER = 0x00200000, 0x00800000
ES_MULTILINE, ES_AUTOVSCROLL, ES_READONLY = 0x0004, 0x0040, 0x0800
WM_DESTROY, WM_SIZE, WM_CLOSE, WM_COMMAND = 0x0002, 0x0005, 0x0010, 0x0111
EM_SETSEL, EM_REPLACESEL, BN_CLICKED = 0x00B1, 0x00C2, 0
CW_USEDEFAULT, SW_SHOW, COLOR_BTNFACE = -0x80000000, 5, 15
ID_BUTTON = 1001
LINES_PER_CLICK = 20


# ----------------------------------------------------------------- the server


async def feed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The local server: answers "N\\n" with N timestamped lines, 50 ms apart."""
    try:
        count = int((await reader.readline()).strip() or b"0")
        for i in range(1, count + 1):
            writer.write(f"line {i:2}/{count} at {time.strftime('%H:%M:%S')}\r\n".encode())
            await writer.drain()
            await asyncio.sleep(0.05)
    finally:
        writer.close()


# ----------------------------------------------------------------- the window


class DemoWindow:
    """The main window; its procedure runs on the GUI thread, as do all coroutines."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.closed = asyncio.Event()  # set from the window procedure (host code)
        self.clicks = 0
        self.lines_shown = 0
        self.fetching: set[asyncio.Task[None]] = set()
        self._proc = WNDPROC(self.window_proc)  # kept alive as long as the window
        self.hinstance = GetModuleHandleW(None)
        self.class_name = "asyncio_guest.win32_demo"
        wc = WNDCLASSEXW()
        wc.cbSize = ctypes.sizeof(WNDCLASSEXW)
        wc.lpfnWndProc = self._proc
        wc.hInstance = self.hinstance
        wc.hbrBackground = GetSysColorBrush(COLOR_BTNFACE)
        wc.lpszClassName = self.class_name
        if not RegisterClassExW(ctypes.byref(wc)):
            raise ctypes.WinError(ctypes.get_last_error())
        self.hwnd = CreateWindowExW(
            0, self.class_name, "asyncio-guest: Win32 demo", WS_OVERLAPPEDWINDOW,
            CW_USEDEFAULT, CW_USEDEFAULT, 560, 420, None, None, self.hinstance, None,
        )  # fmt: skip
        if not self.hwnd:
            raise ctypes.WinError(ctypes.get_last_error())
        self.button = CreateWindowExW(
            0, "BUTTON", "Fetch 20 lines", WS_CHILD | WS_VISIBLE,
            10, 10, 160, 30, self.hwnd, ID_BUTTON, self.hinstance, None,
        )  # fmt: skip
        self.text = CreateWindowExW(
            0, "EDIT", "", WS_CHILD | WS_VISIBLE | WS_VSCROLL | WS_BORDER
            | ES_MULTILINE | ES_AUTOVSCROLL | ES_READONLY,
            10, 50, 520, 310, self.hwnd, None, self.hinstance, None,
        )  # fmt: skip
        ShowWindow(self.hwnd, SW_SHOW)
        self.append(f"feed server listening on 127.0.0.1:{port}; press the button.\r\n")

    def window_proc(self, hwnd: int, msg: int, wparam: int, lparam: int) -> int:
        if msg == WM_COMMAND and (wparam & 0xFFFF) == ID_BUTTON and (wparam >> 16) == BN_CLICKED:
            self.on_click()
            return 0
        if msg == WM_SIZE and self.text_ready():
            width, height = lparam & 0xFFFF, (lparam >> 16) & 0xFFFF
            MoveWindow(self.text, 10, 50, max(width - 20, 50), max(height - 60, 50), True)
            return 0
        if msg == WM_DESTROY:
            self.closed.set()  # host code waking the guest: no polling, no thread hop
            return 0
        return int(DefWindowProcW(hwnd, msg, wparam, lparam))

    def text_ready(self) -> bool:
        return bool(getattr(self, "text", None))

    def on_click(self) -> None:
        """Host code (a button handler) starting asyncio work directly."""
        self.clicks += 1
        task = asyncio.get_running_loop().create_task(self.fetch(self.clicks))
        self.fetching.add(task)
        task.add_done_callback(self.fetching.discard)

    async def fetch(self, n: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(f"{LINES_PER_CLICK}\n".encode())
            await writer.drain()
            while line := await reader.readline():
                self.append(f"[fetch {n}] {line.decode().rstrip()}\r\n")
                self.lines_shown += 1
        finally:
            writer.close()

    def append(self, text: str) -> None:
        end = GetWindowTextLengthW(self.text)
        SendMessageW(self.text, EM_SETSEL, end, end)
        buffer = ctypes.create_unicode_buffer(text)  # alive until SendMessageW returns
        SendMessageW(self.text, EM_REPLACESEL, 0, ctypes.addressof(buffer))

    def destroy(self) -> None:
        DestroyWindow(self.hwnd)
        UnregisterClassW(self.class_name, self.hinstance)


async def main(auto: bool) -> int:
    server = await asyncio.start_server(feed, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    window = DemoWindow(port)
    try:
        async with server:
            if auto:
                # Click twice, as a user would: two fetches stream side by side.
                for _ in range(2):
                    click = ID_BUTTON | (BN_CLICKED << 16)
                    PostMessageW(window.hwnd, WM_COMMAND, click, window.button)
                    await asyncio.sleep(0.1)
                while window.lines_shown < 2 * LINES_PER_CLICK:
                    await asyncio.sleep(0.05)
                PostMessageW(window.hwnd, WM_CLOSE, 0, 0)
            await window.closed.wait()
            for task in list(window.fetching):
                task.cancel()
    finally:
        if window.text_ready() and not window.closed.is_set():
            window.destroy()
        else:
            UnregisterClassW(window.class_name, window.hinstance)
    return window.lines_shown


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--auto", action="store_true", help="click, check the lines, close")
    args = parser.parse_args()
    shown = win32.run(main, args.auto)
    print(f"window closed; {shown} lines were streamed into it")
    if args.auto and shown < 2 * LINES_PER_CLICK:
        sys.exit(f"expected {2 * LINES_PER_CLICK} lines, got {shown}")
