"""Snapshots of the process's OS descriptors/handles, for the tests' leak checks.

* Linux: the fd numbers in ``/proc/self/fd`` (an exact set).
* Windows: the process's handles, an exact set of (handle value, object type)
  pairs, from ntdll ``NtQuerySystemInformation(SystemExtendedHandleInformation)``.
  kernel32 ``GetProcessHandleCount`` is the fallback where that list cannot be
  had. The list comes first because ``GetProcessHandleCount`` is a stub under
  Wine (8.0 here: it reports 0 handles, which no real process has) and because
  a count cannot leave out the handles that are not leaks (below).
* elsewhere: nothing (the check is a no-op).

Handles the Windows check leaves out, each for a stated reason:

* those behind C file descriptors 0-2: pytest's output capture ``dup2``s its
  files onto them around every test phase, and each ``dup2`` closes a handle
  and makes a new one;
* Semaphores, only where a ``threading.Lock`` is one (CPython 3.10's Windows
  locks are emulated with a kernel Semaphore each; 3.13's are not): then every
  live lock object, e.g. the test's ``QueueHost`` that pytest still holds when
  the check runs, would count as a handle. Detected at import, not assumed.

And handles of the process's shared services (the SSL certificate stores,
the thread pool's wait thread) are made before the first test and kept for
the session (``warm_up``), so they show up in no test's difference.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Callable

# Not on Windows: under Wine, "/proc/self/fd" names the Linux fds of the Wine process.
HAVE_PROC_FD = sys.platform != "win32" and os.path.isdir("/proc/self/fd")


def open_fds() -> set[int]:
    """The descriptors open in this process (empty where /proc/self/fd does not exist)."""
    if not HAVE_PROC_FD:
        return set()
    return {int(name) for name in os.listdir("/proc/self/fd")}


def _fd_target(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


if sys.platform == "win32":
    import ctypes
    from ctypes import wintypes

    _kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    _GetCurrentProcess = _kernel32.GetCurrentProcess
    _GetCurrentProcess.argtypes = []
    _GetCurrentProcess.restype = wintypes.HANDLE
    _GetProcessHandleCount = _kernel32.GetProcessHandleCount
    _GetProcessHandleCount.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD)]
    _GetProcessHandleCount.restype = wintypes.BOOL

    def process_handle_count() -> int:
        """kernel32 GetProcessHandleCount for this process."""
        count = wintypes.DWORD()
        if not _GetProcessHandleCount(_GetCurrentProcess(), ctypes.byref(count)):
            raise ctypes.WinError(ctypes.get_last_error())
        return int(count.value)

    class _HandleEntryEx(ctypes.Structure):
        _fields_ = [  # ctypes layout: SYSTEM_HANDLE_TABLE_ENTRY_INFO_EX
            ("Object", ctypes.c_void_p),
            ("UniqueProcessId", ctypes.c_size_t),
            ("HandleValue", ctypes.c_size_t),
            ("GrantedAccess", ctypes.c_ulong),
            ("CreatorBackTraceIndex", ctypes.c_ushort),
            ("ObjectTypeIndex", ctypes.c_ushort),
            ("HandleAttributes", ctypes.c_ulong),
            ("Reserved", ctypes.c_ulong),
        ]

    class _UnicodeString(ctypes.Structure):
        _fields_ = [  # ctypes layout: UNICODE_STRING
            ("Length", ctypes.c_ushort),
            ("MaximumLength", ctypes.c_ushort),
            ("Buffer", ctypes.c_void_p),
        ]

    _SystemExtendedHandleInformation = 64
    _ObjectTypeInformation = 2
    _STATUS_INFO_LENGTH_MISMATCH = 0xC0000004
    _ntdll = ctypes.WinDLL("ntdll")
    _NtQuerySystemInformation = _ntdll.NtQuerySystemInformation
    _NtQuerySystemInformation.argtypes = [
        ctypes.c_ulong,
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.POINTER(ctypes.c_ulong),
    ]
    _NtQuerySystemInformation.restype = ctypes.c_long  # NTSTATUS
    _NtQueryObject = _ntdll.NtQueryObject
    _NtQueryObject.argtypes = [
        wintypes.HANDLE,
        ctypes.c_ulong,
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.POINTER(ctypes.c_ulong),
    ]
    _NtQueryObject.restype = ctypes.c_long

    def _std_handles() -> set[int]:
        """The handles behind C file descriptors 0-2 now (see the module doc)."""
        import msvcrt

        out = set()
        for fd in (0, 1, 2):
            try:
                out.add(int(msvcrt.get_osfhandle(fd)))
            except OSError:
                pass
        return out

    def process_handles() -> set[tuple[int, int]]:
        """(handle value, object type index) of the handles this process holds.

        Without those of file descriptors 0-2 (see the module doc).
        """
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            needed = ctypes.c_ulong()
            status = _NtQuerySystemInformation(
                _SystemExtendedHandleInformation, buf, size, ctypes.byref(needed)
            )
            if status & 0xFFFFFFFF == _STATUS_INFO_LENGTH_MISMATCH:
                size = max(size * 2, needed.value + 4096)
                continue
            if status != 0:
                raise OSError(f"NtQuerySystemInformation: NTSTATUS {status & 0xFFFFFFFF:#x}")
            break
        # SYSTEM_HANDLE_INFORMATION_EX: a ULONG_PTR count, a reserved ULONG_PTR, entries.
        count = ctypes.c_size_t.from_buffer(buf).value
        entries = (_HandleEntryEx * count).from_buffer(buf, 2 * ctypes.sizeof(ctypes.c_size_t))
        pid = os.getpid()
        std = _std_handles()
        return {
            (int(e.HandleValue), int(e.ObjectTypeIndex))
            for e in entries
            if e.UniqueProcessId == pid and e.HandleValue not in std
        }

    def handle_type_name(handle: int) -> str:
        """The object type of a handle of this process ("Event", "File", ...), or "?"."""
        buf = ctypes.create_string_buffer(4096)
        needed = ctypes.c_ulong()
        if _NtQueryObject(handle, _ObjectTypeInformation, buf, len(buf), ctypes.byref(needed)):
            return "?"
        name = _UnicodeString.from_buffer(buf)  # OBJECT_TYPE_INFORMATION begins with it
        return ctypes.wstring_at(name.Buffer, name.Length // 2) if name.Buffer else "?"

    def warm_up() -> Callable[[], None]:
        """Make the handles Windows keeps for a process's shared services now.

        Found under Wine with the handle list, and not leaks of the test that
        happens to use the service first:

        * the first default SSL context opens the ``BaseNamedObjects``
          directory (certificate stores) for good;
        * ``RegisterWaitForSingleObject`` (asyncio's proactor waits on process
          handles with it) runs the waits on a thread-pool wait thread, which
          holds Events; that thread exits ~5 s after its last wait ends and a
          later wait starts a new one. One wait that never fires is kept
          registered for the session, so the wait thread lives throughout.

        Returns the clean-up for the end of the session.
        """
        import _overlapped  # type: ignore[import-not-found,unused-ignore]
        import _winapi
        import ssl

        ssl.create_default_context()
        port = _overlapped.CreateIoCompletionPort(_overlapped.INVALID_HANDLE_VALUE, 0, 0, 1)
        event = _overlapped.CreateEvent(None, True, False, None)  # never set
        ov = _overlapped.Overlapped(0)
        wait = _overlapped.RegisterWaitWithQueue(event, port, ov.address, 0xFFFFFFFF)

        def clean_up() -> None:
            _overlapped.UnregisterWait(wait)
            _winapi.CloseHandle(event)
            _winapi.CloseHandle(port)

        return clean_up

    def _choose_mode() -> tuple[str, frozenset[int], str]:
        """(mode, ignored type indexes, description) of the Windows handle check."""
        try:
            before = process_handles()
        except OSError as exc:
            list_error = str(exc)
        else:
            lock = threading.Lock()
            lock_types = frozenset(t for _, t in process_handles() - before)
            del lock
            if lock_types:
                return "list", lock_types, (
                    "ntdll handle list (Semaphores left out: threading locks are "
                    "Semaphores on this Python)"
                )
            return "list", frozenset(), "ntdll handle list (exact)"
        if process_handle_count() > 0:
            before_count = process_handle_count()
            lock = threading.Lock()
            lock_is_handle = process_handle_count() > before_count
            del lock
            if not lock_is_handle:
                return "count", frozenset(), f"GetProcessHandleCount (no handle list: {list_error})"
            return "none", frozenset(), (
                "none: no handle list here, and GetProcessHandleCount counts every "
                "threading lock on this Python"
            )
        return "none", frozenset(), f"none (no handle list: {list_error}; no handle count)"

    _MODE, _IGNORED_TYPES, DESCRIPTION = _choose_mode()
    if _MODE == "list":
        DESCRIPTION += "; GetProcessHandleCount " + (
            "works" if process_handle_count() > 0 else "is a stub reporting 0 here"
        )

elif HAVE_PROC_FD:
    _MODE = "fds"
    DESCRIPTION = "/proc/self/fd"
else:
    _MODE = "none"
    DESCRIPTION = f"none (no /proc/self/fd on {sys.platform})"

CAN_CHECK = _MODE != "none"


class Resources:
    """A snapshot of the process's OS descriptors/handles (see the module doc)."""

    def __init__(self) -> None:
        self.fds = open_fds()
        self.handle_count: int | None = None
        self.handles: set[tuple[int, int]] | None = None
        if sys.platform == "win32":
            if _MODE == "list":
                self.handles = {(h, t) for h, t in process_handles() if t not in _IGNORED_TYPES}
            elif _MODE == "count":
                self.handle_count = process_handle_count()

    def leaked_since(self, before: Resources) -> str:
        """What this snapshot holds beyond ``before`` ("" for nothing)."""
        problems = []
        new_fds = self.fds - before.fds
        if new_fds:
            details = {fd: _fd_target(fd) for fd in sorted(new_fds)}
            problems.append(f"descriptors left open: {details}")
        if self.handle_count is not None and before.handle_count is not None:
            if self.handle_count > before.handle_count:
                problems.append(
                    f"handles left open: GetProcessHandleCount went from "
                    f"{before.handle_count} to {self.handle_count}"
                )
        if self.handles is not None and before.handles is not None:
            new_handles = self.handles - before.handles
            if new_handles:
                listed = ", ".join(
                    f"{h:#x} ({_type_name(h)}, type index {t})" for h, t in sorted(new_handles)
                )
                problems.append(f"handles left open: {listed}")
        return "; ".join(problems)


def _type_name(handle: int) -> str:
    if sys.platform == "win32":
        return handle_type_name(handle)
    return "?"


def leaked_since(before: Resources, collections: int = 3) -> str:
    """What was opened since ``before`` and is still open, after garbage collection.

    Descriptors of objects in reference cycles are closed by the collector, so
    a leak is only reported if it survives a few collections.
    """
    leaked = Resources().leaked_since(before)
    for _ in range(collections):
        if not leaked:
            break
        gc.collect()
        leaked = Resources().leaked_since(before)
    return leaked


def warm_up_process() -> Callable[[], None]:
    """Before the first test: shared OS resources made now (see ``warm_up``); the clean-up."""
    if sys.platform == "win32":
        return warm_up()
    return lambda: None
