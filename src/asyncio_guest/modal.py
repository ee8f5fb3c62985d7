"""``run_modal``: await a blocking host call (a modal dialog) with asyncio running.

A modal dialog (``QDialog.exec()``, ``QMessageBox.question``, Tk's
``wait_window`` or ``messagebox``, wx's ``ShowModal``, Win32's ``MessageBox``)
blocks its caller while it runs a nested host loop. Called from inside an
asyncio callback, that nested loop runs inside a tick, and a tick never runs
inside another: asyncio pauses until the dialog closes (it fails safe: nothing
crashes and the guest resumes afterwards; in debug mode the engine says so and
names this helper).

``await run_modal(fn, *args)`` instead hands ``fn`` to the host loop itself,
outside any tick: the nested loop the dialog runs then runs the guest's ticks
too, so sockets, timers and other tasks go on while the dialog is open, and
the awaiting coroutine resumes with ``fn``'s return value (or its exception).

Cancelling the awaiting task cannot close a dialog in general: its result is
then dropped when it returns. Host modules offer dialog-specific helpers that
also close the dialog on cancellation (``asyncio_guest.qt.exec_dialog``,
``asyncio_guest.wx.show_modal``) or nest no loop at all
(``asyncio_guest.glib.run_dialog``, ``asyncio_guest.tk.wait_window``).

For the same reason a run cannot end while such a call is out: the host's
own loop runs nested inside it. ``main``'s end, the main window closed and
Ctrl+C cancel what they cancel at once, and the run ends when the call
returns (the user answers the dialog); a second Ctrl+C meanwhile is kept and
raised then. Qt's host is the exception: the run's end exits every loop of
the thread (``QCoreApplication.exit``), the dialog's included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ._core.guest_loop import engine_of

__all__ = ["run_modal"]

if TYPE_CHECKING:
    from ._core.main_args import MainArgs, Unpack

_T = TypeVar("_T")


async def run_modal(fn: Callable[[Unpack[MainArgs]], _T], *args: Unpack[MainArgs]) -> _T:
    """Run ``fn(*args)`` from the host loop, outside the tick; await its result.

    Must be awaited in a guest run (``start_guest_run`` or a host module's
    ``run``). ``KeyboardInterrupt`` and ``SystemExit`` from ``fn`` propagate
    into the host loop, as from any host callback (the awaiting task is
    cancelled); any other exception is raised here. (Where the host loop is
    a program's own Win32 message loop, a ctypes window procedure lets no
    exception through: the Win32 host raises a ``KeyboardInterrupt`` again in
    the program's code and logs anything else; see ``asyncio_guest.win32``.)
    """
    loop = asyncio.get_running_loop()
    engine = engine_of(loop)
    if engine is None:
        raise RuntimeError(
            "run_modal() needs an asyncio-guest run: a plain asyncio loop cannot "
            "run a blocking call without blocking itself"
        )
    done: asyncio.Future[_T] = loop.create_future()

    def call_outside_tick() -> None:
        if done.done():
            return  # cancelled before the host got to it
        try:
            value = fn(*args)
        except Exception as exc:
            if not done.done():
                done.set_exception(exc)
        except BaseException:
            done.cancel()
            raise
        else:
            if not done.done():
                done.set_result(value)
        # The awaiting coroutine goes on now, before the host's next event,
        # as the code after a blocking call does (Engine.tick_now).
        engine.tick_now()

    engine.post_outside_tick(call_outside_tick)
    return await done
