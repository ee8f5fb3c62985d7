"""Fd watches for a Qt host whose event loop is GLib's: GLib sources through ctypes.

On Linux the Qt libraries of every binding's wheels are built with GLib, and
the GUI thread's event dispatcher is a ``QEventDispatcherGlib``: Qt's loop is a
loop over GLib's default main context, and Qt's own ``QSocketNotifier`` is one
GLib source of Qt's, which wakes a C++ object, which emits a signal, which the
binding turns into a Python call with two converted arguments. A GLib unix fd
source of our own on that context is dispatched by the same loop (``exec()``,
``processEvents()``, a dialog's nested loop) with one call into Python. For a
worker's ``call_soon_threadsafe`` on the zero-thread wait (bench
``threadsafe``, PySide6 6.11, 3.13, a loaded machine): 8.4-9.1 us against
11.8-13.0 us through a notifier, plain asyncio 7.9-8.3 us.

GLib is reached through ``ctypes``, not PyGObject (which Qt programs rarely
have): ``g_unix_fd_add_full`` and ``g_source_remove``, both in GLib since
2.36, on the library Qt has loaded already. Used only where Qt's dispatcher
for the application's thread is ``QEventDispatcherGlib`` and that thread is
the main thread (whose dispatcher iterates the default context);
elsewhere (Windows, macOS, ``QT_NO_GLIB=1``, a Qt without GLib) the host
keeps its ``QSocketNotifier``.

Thread rule: everything here runs on the host thread (the main thread).

The C entry points: a GLib source calls ``GUnixFDSourceFunc(fd, condition,
user_data)``; each of ours is a ctypes thunk that takes no argument (the C
calling conventions of every platform GLib's Qt runs on let a callee ignore
its arguments, as GLib's own ``G_SOURCE_FUNC`` casts do), because ctypes
turning three arguments into Python objects cost 0.6 us of each call's 0.8.
So a thunk knows its watch by its slot: slot ``i``'s thunk calls what slot
``i`` holds now. Thunks are made as slots are first needed, one per watch
alive at once in the process (two per zero-thread run), and never freed: a
watch removed from inside its own callback returns through its thunk, which
must still exist, and a slot is reused only once its source is removed
(``g_source_remove`` on the context's own thread: never called again).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Callable
from typing import Any

_G_IO_IN, _G_IO_ERR, _G_IO_HUP = 1, 8, 16
_CONDITION = _G_IO_IN | _G_IO_HUP | _G_IO_ERR  # as GLibHost watches (readable, or closed)
_G_PRIORITY_DEFAULT = 0  # Qt's own socket notifier and posted-event sources' priority

_SourceFunc = ctypes.CFUNCTYPE(ctypes.c_int)  # gboolean (*)(...), arguments ignored

_slots: list[Callable[[], object] | None] = []  # slot -> its watch's callback (None: free)
_thunks: list[Any] = []  # slot -> its C entry point, never freed


def _thunk(slot: int) -> Any:
    def dispatch() -> int:
        callback = _slots[slot]
        if callback is None:
            return 0  # G_SOURCE_REMOVE (not reached: a slot is freed after its source)
        try:
            callback()
        except BaseException:  # the host's slot reports; a raise here would drop the source
            pass
        return 1  # G_SOURCE_CONTINUE: level-triggered, until removed

    return _SourceFunc(dispatch)


class GLibFdWatches:
    """Level-triggered fd watches as GLib sources on the default main context."""

    def __init__(self, lib: Any) -> None:
        self._add = lib.g_unix_fd_add_full
        self._add.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_uint,
            _SourceFunc,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self._add.restype = ctypes.c_uint
        self._remove = lib.g_source_remove
        self._remove.argtypes = [ctypes.c_uint]
        self._remove.restype = ctypes.c_int
        self._sources: dict[int, int] = {}  # slot -> GLib source id, this host's

    def add(self, fd: int, callback: Callable[[], object]) -> int:
        """Call ``callback()`` whenever ``fd`` is readable (it should not
        raise); returns the key ``remove`` takes."""
        try:
            slot = _slots.index(None)
        except ValueError:
            slot = len(_slots)
            _thunks.append(_thunk(slot))
            _slots.append(None)
        source_id = self._add(_G_PRIORITY_DEFAULT, fd, _CONDITION, _thunks[slot], None, None)
        if not source_id:
            raise OSError(f"g_unix_fd_add_full refused fd {fd}")
        _slots[slot] = callback
        self._sources[slot] = source_id
        return slot

    def remove(self, key: int) -> None:
        """Remove the watch (idempotent). Safe from inside its own callback: the C
        entry point it returns through is never freed."""
        source_id = self._sources.pop(key, None)
        if source_id is not None:
            self._remove(source_id)
            _slots[key] = None

    def close(self) -> None:
        """Remove every watch of this host still set (idempotent)."""
        for key in list(self._sources):
            self.remove(key)


def for_qt(binding: Any, app: Any) -> GLibFdWatches | None:
    """The GLib watches for a host on ``app``'s thread, or None where Qt's loop is not GLib's."""
    if sys.platform != "linux" and not sys.platform.startswith("freebsd"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None  # a dispatcher of another thread iterates a context of its own
    try:
        dispatcher = binding.QtCore.QAbstractEventDispatcher.instance(app.thread())
        # (QtGui's is a subclass: QPAEventDispatcherGlib.)
        if dispatcher is None or not dispatcher.inherits("QEventDispatcherGlib"):
            return None
        try:
            lib = ctypes.CDLL("libglib-2.0.so.0")  # Qt's, loaded already
        except OSError:
            lib = ctypes.CDLL(ctypes.util.find_library("glib-2.0") or "libglib-2.0.so")
        return GLibFdWatches(lib)
    except (AttributeError, OSError):
        return None
