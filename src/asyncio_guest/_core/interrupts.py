"""Where a Ctrl+C may raise ``KeyboardInterrupt`` at once, and where it must wait.

A Python signal handler runs between any two bytecodes of whatever the main
thread is executing. A ``KeyboardInterrupt`` raised there in the middle of
asyncio-guest's own bookkeeping (a tick's prologue, the hand-over decision, a
queue being drained) could leave a flag set with nothing in flight, or drop a
result the backend thread already returned. So the run's SIGINT handler asks
``interrupt_lands_in_user_code(frame)`` first:

* walking outward from the interrupted frame, the first frame that belongs to
  this package (any module of ``asyncio_guest``) makes the answer *no*: the
  interrupt is deferred, and the engine delivers it at its next safe point
  (the start or end of a tick), exactly as if a callback had raised it;
* a *boundary* frame met first makes it *yes*: user code runs below it. The
  boundaries are asyncio's ``Handle._run`` (every callback, task step and
  protocol method the loop runs) and the trampolines this package calls user
  code through (``call_user``): ``done_callback``, a host's own callbacks;
* a toolkit's main loop, as a host module's ``run`` enters it (Tk
  ``mainloop``, Qt ``exec``, GLib, wx: ``run_host_loop``), is a boundary for
  the program's own callbacks, which that loop runs with no frame of ours in
  between: *yes* if a frame of the program's lies below it, *no* if only the
  toolkit's own Python code (or the standard library's) does (the loop idles
  in C, and the toolkit runs Python's signal handlers from there: that Ctrl+C
  is delivered by the engine, at its next safe point). A host loop of ours
  that runs the engine's callbacks and the program's alike (the reference
  host, the wake-up queue the pygame, Tk, GLib and wx hosts drain) calls each
  through ``run_host_callback``, the same kind of boundary: a stuck callback
  of the program's gets a second Ctrl+C at once, while one of the engine's
  (whose own frames lie below) defers it;
* no marked frame at all (the host's own code, with no asyncio-guest frame
  under it) is user code too.

Nothing is paid for this until a signal arrives: it is one walk up the stack
in the handler. The rule is the one Trio uses for its KI protection (deferred
delivery inside the run loop's own code), found by the code's location rather
than by markers set at run time.
"""

from __future__ import annotations

import functools
import os
import sysconfig
import types
from asyncio import events
from collections.abc import Callable
from typing import TypeVar

from . import PACKAGE_DIR

_T = TypeVar("_T")



def call_user(fn: Callable[[], _T]) -> _T:
    """Call user code: a Ctrl+C inside ``fn`` raises there, as in plain Python."""
    return fn()


def call_user_with(fn: Callable[[_T], object], arg: _T) -> object:
    """``call_user`` for a one-argument callback (``done_callback(outcome)``)."""
    return fn(arg)


def run_host_loop(fn: Callable[[], _T], toolkit: types.ModuleType) -> _T:
    """Run a toolkit's main loop, ``fn``: a boundary for the program's callbacks
    under it (see module doc). ``toolkit``: the binding's module (``tkinter``,
    ``gi``...), whose package's frames are the loop's own, not the program's."""
    _add_toolkit(toolkit)
    return fn()


def run_host_callback(fn: Callable[[], object]) -> None:
    """Call one callback a host loop of ours runs (see ``run_host_loop``)."""
    fn()


_BOUNDARIES: set[types.CodeType] = {call_user.__code__, call_user_with.__code__}
for _handle_class in (events.Handle, getattr(events, "_ThreadSafeHandle", None)):
    if _handle_class is not None and "_run" in vars(_handle_class):
        _BOUNDARIES.add(vars(_handle_class)["_run"].__code__)


_OWN, _TOOLKIT, _USER = "own", "toolkit", "user"
_TOOLKIT_DIRS: list[str] = []  # the packages of toolkits whose loops we entered
_KINDS: dict[str, str] = {}  # co_filename -> _OWN, _TOOLKIT or _USER (cache)


def _add_toolkit(module: types.ModuleType) -> None:
    where = os.path.dirname(os.path.abspath(module.__file__ or ""))
    if where not in _TOOLKIT_DIRS:
        _TOOLKIT_DIRS.append(where)
        _KINDS.clear()


@functools.cache
def _python_dirs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The standard library's directories, and the installed packages' (which
    may lie inside the former); looked up at the first signal, not at import.

    The standard library counts with the toolkit's code: a toolkit calls into
    it from C as it dispatches (PySide6 converts enums through enum.py), and a
    frame there is never the program's own callback (which lies below, if
    anywhere). Installed packages are the program's: its callbacks call them.
    """
    paths = sysconfig.get_paths()

    def dirs(*names: str) -> tuple[str, ...]:
        return tuple(sorted({os.path.abspath(paths[name]) + os.sep for name in names}))

    return dirs("stdlib", "platstdlib"), dirs("purelib", "platlib")


def _kind(filename: str) -> str:
    kind = _KINDS.get(filename)
    if kind is None:
        path = os.path.abspath(filename)
        if path.startswith(PACKAGE_DIR + os.sep):
            kind = _OWN
        elif any(path.startswith(where + os.sep) for where in _TOOLKIT_DIRS):
            kind = _TOOLKIT
        elif path.startswith(_python_dirs()[0]) and not path.startswith(_python_dirs()[1]):
            kind = _TOOLKIT
        else:
            kind = _USER
        _KINDS[filename] = kind
    return kind


def interrupt_lands_in_user_code(frame: types.FrameType | None) -> bool:
    """Main thread, in a signal handler: may ``KeyboardInterrupt`` be raised at ``frame``?"""
    program_below = False  # a frame of the program's lies below this one
    while frame is not None:
        code = frame.f_code
        if code in _BOUNDARIES:
            return True
        if code in _HOST_LOOPS:
            return program_below
        kind = _kind(code.co_filename)
        if kind is _OWN:
            return False
        if kind is _USER:
            program_below = True
        frame = frame.f_back
    return True


_HOST_LOOPS = frozenset({run_host_loop.__code__, run_host_callback.__code__})
