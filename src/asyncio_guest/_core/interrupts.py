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
* no marked frame at all (the host's own code, with no asyncio-guest frame
  under it) is user code too.

Nothing is paid for this until a signal arrives: it is one walk up the stack
in the handler. The rule is the one Trio uses for its KI protection (deferred
delivery inside the run loop's own code), found by the code's location rather
than by markers set at run time.
"""

from __future__ import annotations

import os
import types
from asyncio import events
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OWN_FILES: dict[str, bool] = {}  # co_filename -> inside the package (cache)


def call_user(fn: Callable[[], _T]) -> _T:
    """Call user code: a Ctrl+C inside ``fn`` raises there, as in plain Python."""
    return fn()


def call_user_with(fn: Callable[[_T], object], arg: _T) -> object:
    """``call_user`` for a one-argument callback (``done_callback(outcome)``)."""
    return fn(arg)


_BOUNDARIES: set[types.CodeType] = {call_user.__code__, call_user_with.__code__}
for _handle_class in (events.Handle, getattr(events, "_ThreadSafeHandle", None)):
    if _handle_class is not None and "_run" in vars(_handle_class):
        _BOUNDARIES.add(vars(_handle_class)["_run"].__code__)


def _is_own(filename: str) -> bool:
    own = _OWN_FILES.get(filename)
    if own is None:
        path = os.path.abspath(filename)
        own = _OWN_FILES[filename] = path.startswith(_PACKAGE_DIR + os.sep)
    return own


def interrupt_lands_in_user_code(frame: types.FrameType | None) -> bool:
    """Main thread, in a signal handler: may ``KeyboardInterrupt`` be raised at ``frame``?"""
    while frame is not None:
        code = frame.f_code
        if code in _BOUNDARIES:
            return True
        if _is_own(code.co_filename):
            return False
        frame = frame.f_back
    return True
