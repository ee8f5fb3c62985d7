"""asyncio as the guest of a Win32 message loop (ctypes only, no pywin32).

Three ways in, from the simplest:

* ``run(main)`` pumps ``GetMessageW``/``TranslateMessage``/``DispatchMessageW``
  on the calling thread until ``main`` is done, and returns its result or
  raises its exception. Windows the program creates on this thread (before or
  from inside ``main``) are served by the same loop.
* ``start_guest_run(main, done_callback=...)`` for a program that already runs
  its own message loop (a ctypes or win32gui GUI): it returns the main task at
  once; the guest runs inside that loop; ``done_callback`` gets the outcome.
* ``Win32Host.for_window(hwnd)`` for a framework that owns the window and
  its window procedure: wake-ups are posted to that window, and the window
  procedure hands them over with ``host.handle_message(msg, wparam, lparam)``.

How the host wakes up: callbacks go to a deque, and at most one registered
message is posted to a message-only window (``HWND_MESSAGE``) whose window
procedure drains the deque. A *window* message, not ``PostThreadMessageW``:
modal loops (a window being moved or resized, a menu, ``MessageBoxW``) run
their own ``GetMessage`` loop that dispatches window messages but drops thread
messages (https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-postthreadmessagew,
Remarks), so asyncio keeps running while the user drags the window.

Keeping the GUI smooth: ``GetMessage`` hands out sent messages, then posted
messages, then input, then ``WM_PAINT``, then ``WM_TIMER``; the last two are
made from flags only when nothing before them is there
(https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-getmessagew,
Remarks). A guest that always has work would, with one posted message per
tick, starve input and paint. Making its next tick a ``WM_TIMER`` is no
answer: a window that invalidates itself in ``WM_PAINT`` (a render loop)
keeps a paint pending, so the timer never comes, and while it is awaited the
backend's and workers' wake-ups are coalesced into it; and during a drag the
guest would get one tick per system timer tick (15.6 ms). The rule is rather
"one message of the GUI's, then one guest tick": when a tick leaves work and
the queue holds input, paint, timer or hotkey messages (``GetQueueStatus``),
nothing is posted; a thread ``WH_GETMESSAGE`` hook is armed instead
(https://learn.microsoft.com/windows/win32/winmsg/getmsgproc). When the next
message is taken off the queue, by whatever loop runs (ours, the program's,
a modal loop's), the hook posts our wake-up, which is then retrieved right
after that message is handled. We never take the GUI's messages off the
queue ourselves: modal loops, ``TranslateAccelerator`` and
``IsDialogMessage`` see all input as usual. A ``WM_TIMER`` of ours is the
safety net should the waiting messages go away unretrieved.

``WM_QUIT``: ``PostQuitMessage`` sets a flag, and ``GetMessage`` returns
``WM_QUIT`` only when no posted message is queued. So a tick that leaves work
first looks for it (``PeekMessageW`` filtered to ``WM_QUIT``, not removing
it: PeekMessage returns a pending quit whatever the filter, its Remarks); if
one is pending, the next tick is a ``WM_TIMER``, which comes after it, and
the loop that gets the ``WM_QUIT`` decides what it means.

A full queue: ``PostMessageW`` fails with ERROR_NOT_ENOUGH_QUOTA when the
thread's queue holds its limit of posted messages (10 000 by default, per
queue, shared with the program's own posts). The post is then retried, never
the queueing of the callback (which is done): on the host thread by a
``WM_TIMER`` (made from a flag, it needs no room), on other threads by posting
again with back-off while the host thread makes room.

COM: a thread in a single-threaded apartment (STA) that makes a synchronous
COM call into another apartment waits in a modal loop of COM's own
(https://learn.microsoft.com/windows/win32/api/objidl/nn-objidl-imessagefilter,
Remarks), which dispatches only a small set of special-cased messages
(https://learn.microsoft.com/windows/win32/api/combaseapi/ne-combaseapi-cwmo_flags);
our wake-up is not one of them. So the guest pauses for as long as such a
call, made from host code, takes (made from a coroutine, it blocks its own
loop anyway, as any blocking call does). Waits of the program's own can
dispatch everything with ``CoWaitForMultipleObjects`` and
``CWMO_DISPATCH_WINDOW_MESSAGES``.

Ctrl+C: see ``run``.

Thread rule: everything here runs on the thread that made the ``Win32Host``
(the *host thread*: its window procedure, its hook and its timer run there,
as Win32 calls them on the window's thread), except
``Win32Host.run_sync_soon_threadsafe`` and what it calls, ``_post_wake``,
which read only ``hwnd``, ``wake_message`` and ``_closed``.
"""

from __future__ import annotations

import sys

if sys.platform != "win32":
    raise ImportError(
        "asyncio_guest.win32 is the Win32 message-loop host and is only available on "
        f"Windows (this is {sys.platform}); use asyncio_guest.run or another host here"
    )

import _thread
import asyncio
import atexit
import ctypes
import itertools
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import outcome

from . import _win32_api as w
from ._core.entry import refuse_inside_a_running_loop, start_with_host
from ._core.errors import cleanup_twice
from ._core.handover import DEFAULT_TICK_BUDGET
from ._core.lifecycle import closes_main_if_it_never_ran
from ._core.lifecycle import start as _start
from ._core.wake_queue import CoalescingQueue

__all__ = ["Win32Host", "run", "start_guest_run"]

logger = logging.getLogger("asyncio_guest")

_WAKE_MESSAGE_NAME = "asyncio_guest.Win32Host.wake"
# Our WM_TIMER's id ("agst", unlikely to collide with a framework window's own
# timers): the wake-up when a busy tick yields to the GUI (the safety net) or
# to a WM_QUIT, and when the host thread finds its own queue full.
if TYPE_CHECKING:
    from ._core.main_args import MainArgs, Unpack

_T = TypeVar("_T")
_TIMER_ID = 0x61677374
# Messages of the GUI's that get their turn before a busy guest's next tick.
_GUI_FIRST = w.QS_INPUT | w.QS_PAINT | w.QS_TIMER | w.QS_HOTKEY
# Posting from another thread into a full queue: back-off, then give up.
_RETRY_FIRST_DELAY = 0.001
_RETRY_MAX_DELAY = 0.05
_RETRY_LIMIT = 60.0  # seconds; the host thread has not pumped for that long
_class_serial = itertools.count()
# Hosts whose window (or hook) exists. The window procedure is a ctypes thunk
# owned by the host: a host collected while its window lives would leave the
# system calling freed code, so an unclosed host stays alive (a leak, not a
# crash), and is forgotten only once its window is gone (see close()).
_live_hosts: set[Win32Host] = set()


class Win32Host:
    """Runs callbacks on the thread that made it, through its message loop.

    Make it on the GUI thread (the thread whose message loop will run). Thread
    rule: ``run_sync_soon_threadsafe`` from any thread; everything else on that
    thread. ``close()`` destroys the window and unregisters its class.

    The wake-up invariant (host thread; see ``CoalescingQueue``): while the
    queue's wake-up is pending, one of these is in flight and leads to a
    drain: our posted message, our timer (``_timer_set``), or the armed hook
    (``_yielding``: it posts the message at the next retrieval, and the timer
    is set as well). ``handle_message`` disarms the others before it drains
    (a WM_TIMER generated just before may still cost one empty drain).
    """

    def __init__(self, *, _hwnd: int | None = None) -> None:
        self.thread_id = threading.get_ident()
        self._closed = False
        self._errors: list[BaseException] = []
        self._pumping = 0
        self._close_when_idle = False
        self._in_window_proc = 0
        # Host thread only: how deep we are in our entry points (handle_message
        # for our messages, the hook), and a KeyboardInterrupt owed to the
        # program's code once we have left them (_owe_interrupt).
        self._entered = 0
        self._interrupt_owed: threading.Event | None = None
        # Host thread only: how the next tick is awaited (see the class doc).
        self._timer_set = False
        self._hook: int | None = None  # our WH_GETMESSAGE hook while it is installed
        self._yielding = False  # the hook posts our wake-up at the next retrieval
        self._hook_failure_logged = False
        self._msg = w.MSG()  # scratch for PeekMessageW
        wake = w.RegisterWindowMessageW(_WAKE_MESSAGE_NAME)
        if not wake:
            raise w.last_error("RegisterWindowMessageW")
        self.wake_message: int = wake
        self._hinstance = w.GetModuleHandleW(None)
        self._class_name: str | None = None
        # The WNDPROC and HOOKPROC thunks must outlive the window and the hook:
        # ctypes frees the code with them.
        self._wndproc = w.WNDPROC(self._window_proc)
        self._hookproc = w.HOOKPROC(self._get_message_hook)
        if _hwnd is None:
            self.hwnd: int = self._create_window()
            self._owns_window = True
        else:
            self.hwnd = _hwnd
            self._owns_window = False
        self._queue = CoalescingQueue(self._post_wake, self._post_busy_wake)
        _live_hosts.add(self)

    @classmethod
    def for_window(cls, hwnd: int) -> Win32Host:
        """Use an existing window (of this thread) instead of our own.

        Its window procedure must call ``handle_message(msg, wparam, lparam)``
        first and return 0 when that returns True. The window must belong to
        the calling thread (whose message loop serves it): RuntimeError if not.
        """
        owner = w.GetWindowThreadProcessId(hwnd, None)
        if not owner:
            raise w.last_error("GetWindowThreadProcessId")
        if owner != w.GetCurrentThreadId():
            raise RuntimeError(
                "Win32Host.for_window(hwnd): the window belongs to another thread; make "
                "the host on the window's thread, whose message loop serves it"
            )
        return cls(_hwnd=hwnd)

    def _create_window(self) -> int:
        """Our message-only window (of our class, registered at the first call)."""
        name = self._class_name
        if name is None:
            name = f"asyncio_guest.Win32Host.{os.getpid()}.{next(_class_serial)}"
            wc = w.WNDCLASSEXW()
            wc.cbSize = ctypes.sizeof(w.WNDCLASSEXW)
            wc.lpfnWndProc = self._wndproc
            wc.hInstance = self._hinstance
            wc.lpszClassName = name
            if not w.RegisterClassExW(ctypes.byref(wc)):
                raise w.last_error("RegisterClassExW")
            self._class_name = name
        # https://learn.microsoft.com/windows/win32/winmsg/window-features#message-only-windows:
        # never visible, no z-order, not enumerated, but receives posted messages.
        hwnd = w.CreateWindowExW(
            0, name, "asyncio-guest", 0, 0, 0, 0, 0, w.HWND_MESSAGE, None, self._hinstance, None
        )
        if not hwnd:
            error = w.last_error("CreateWindowExW")
            if not w.UnregisterClassW(name, self._hinstance):
                logger.error(
                    "asyncio_guest.win32: %s", w.last_error("UnregisterClassW")
                )
            self._class_name = None
            raise error
        return int(hwnd)

    # ----------------------------------------------------------- primitives

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Any thread: run ``fn()`` on the host thread soon (order kept).

        From another thread, while the host thread's message queue is full,
        this waits (retrying with back-off, up to a minute) until the host
        thread has made room.
        """
        if self._closed:
            raise RuntimeError("this Win32Host is closed")
        self._queue.submit(fn)

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        """Host thread only: the same; from inside a callback it costs no message."""
        if self._closed:
            raise RuntimeError("this Win32Host is closed")
        self._queue.submit_local(fn)

    def _post_wake(self) -> None:
        """Any thread: post our wake-up message (the queue's ``post``).

        https://learn.microsoft.com/windows/win32/api/winuser/nf-winuser-postmessagew:
        fails with ERROR_NOT_ENOUGH_QUOTA when the thread's queue is full (see
        the module doc); then the host thread sets a timer instead and other
        threads post again, with back-off, until there is room.
        """
        if w.PostMessageW(self.hwnd, self.wake_message, 0, 0):
            return
        error = w.last_error("PostMessageW")
        if error.winerror != w.ERROR_NOT_ENOUGH_QUOTA:
            raise error
        if threading.get_ident() == self.thread_id:
            self._set_timer()
            return
        self._post_when_there_is_room(error)

    def _post_when_there_is_room(self, error: OSError) -> None:
        """Another thread, the host's queue full: post again until it fits (or give up)."""
        delay = _RETRY_FIRST_DELAY
        give_up = time.monotonic() + _RETRY_LIMIT
        while time.monotonic() < give_up:
            time.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_DELAY)
            if self._closed:
                raise RuntimeError("this Win32Host was closed while its message queue was full")
            if w.PostMessageW(self.hwnd, self.wake_message, 0, 0):
                return
            error = w.last_error("PostMessageW")
            if error.winerror != w.ERROR_NOT_ENOUGH_QUOTA:
                raise error
        raise error

    def _set_timer(self) -> None:
        """Host thread: our WM_TIMER will wake the host (as soon as the system's minimum allows).

        A WM_TIMER is made from a flag when nothing else is to be retrieved: it
        takes no room in the queue and comes after everything else.
        """
        if not w.SetTimer(self.hwnd, _TIMER_ID, w.USER_TIMER_MINIMUM, None):
            raise w.last_error("SetTimer")
        self._timer_set = True

    def _post_busy_wake(self) -> None:
        """Host thread, a drain left work: the next tick, after the GUI's turn (module doc).

        The timer is set first, because the WM_QUIT check is a PeekMessageW,
        which dispatches the messages other threads send to this one
        (SendMessage), and one of those may open a modal loop inside it. The
        queue's wake-up is pending from here on, so nothing else would send
        one: ours must already be in flight, for that modal loop to dispatch.
        A posted wake-up that wins the race makes ``handle_message`` kill it.
        """
        self._set_timer()
        if self._quit_pending():
            return  # the timer comes after the WM_QUIT
        ctypes.set_last_error(0)
        status = w.GetQueueStatus(_GUI_FIRST)
        if not status and ctypes.get_last_error():
            raise w.last_error("GetQueueStatus")
        if (status >> 16) & _GUI_FIRST:
            self._yield_to_gui()
            return
        self._post_wake()

    def _quit_pending(self) -> bool:
        """Host thread: is a WM_QUIT waiting (PostQuitMessage called, not yet retrieved)?"""
        msg = ctypes.byref(self._msg)
        return bool(w.PeekMessageW(msg, None, w.WM_QUIT, w.WM_QUIT, w.PM_NOREMOVE))

    def _yield_to_gui(self) -> None:
        """Host thread, our timer set (the safety net): post our wake-up when the
        next message is retrieved (module doc)."""
        if self._hook is None:
            hook = w.SetWindowsHookExW(
                w.WH_GETMESSAGE, self._hookproc, None, w.GetCurrentThreadId()
            )
            if not hook:
                # Not fatal: the timer wakes us, later (not at all while a
                # render loop keeps a paint pending).
                if not self._hook_failure_logged:
                    self._hook_failure_logged = True
                    logger.warning(
                        "asyncio_guest.win32: %s; a busy guest now waits for WM_TIMER",
                        w.last_error("SetWindowsHookExW"),
                    )
                return
            self._hook = hook
        self._yielding = True

    def _get_message_hook(self, code: int, wparam: int, lparam: int) -> int:
        """Host thread, inside any GetMessage/PeekMessage: a message was retrieved."""
        self._entered += 1
        try:
            if code >= 0 and wparam == w.PM_REMOVE and self._yielding:
                msg = w.MSG.from_address(lparam)
                if msg.hWnd != self.hwnd or not (
                    msg.message == self.wake_message
                    or (msg.message == w.WM_TIMER and msg.wParam == _TIMER_ID)
                ):
                    # The GUI's message: ours comes right after it.
                    if w.PostMessageW(self.hwnd, self.wake_message, 0, 0):
                        self._yielding = False
                    else:
                        error = w.last_error("PostMessageW")
                        if error.winerror != w.ERROR_NOT_ENOUGH_QUOTA:
                            raise error
                        # A full queue: the timer stands; the next retrieval tries again.
        except BaseException as exc:
            self._report(exc)
        finally:
            self._leave()
        return int(w.CallNextHookEx(None, code, wparam, lparam))

    def _unhook(self) -> OSError | None:
        """Host thread: remove our hook; the error, if that failed (it then stays)."""
        self._yielding = False
        hook = self._hook
        if hook is None:
            return None
        if not w.UnhookWindowsHookEx(hook):
            return w.last_error("UnhookWindowsHookEx")
        self._hook = None
        return None

    def _kill_timer(self) -> OSError | None:
        """Host thread: cancel our timer if it is set; the error, if that failed."""
        if not self._timer_set:
            return None
        self._timer_set = False
        if not w.KillTimer(self.hwnd, _TIMER_ID):
            return w.last_error("KillTimer")
        return None

    # ------------------------------------------------------ message handling

    def handle_message(self, msg: int, wparam: int, lparam: int) -> bool:
        """Host thread, from the window procedure: handle our messages; True if it was one."""
        if msg == self.wake_message:
            pass
        elif msg == w.WM_TIMER and wparam == _TIMER_ID:
            pass
        else:
            if msg == w.WM_NCDESTROY:  # the window's last message
                self._window_destroyed()
            return False
        self._entered += 1
        try:
            self._in_window_proc += 1
            try:
                # However we were woken, nothing else of ours is waiting now.
                self._yielding = False
                error = self._kill_timer()
                if error is not None:
                    self._report(error)
                self._queue.drain()
            except BaseException as exc:
                self._report(exc)
            finally:
                self._in_window_proc -= 1
            if self._hook is not None and not self._yielding:
                error = self._unhook()  # the drain did not yield again
                if error is not None:
                    self._report(error)
            if self._close_when_idle and not self._in_window_proc:
                self.close()
        finally:
            self._leave()
        return True

    def _window_destroyed(self) -> None:
        """Host thread: our window is being destroyed, and we did not close.

        A ``for_window`` window the program destroys (its main window, closed
        mid-run): what was posted to it is dropped with it, and our wake-up may
        be one of those, which would leave the queue's wake-up pending for
        ever (a silent hang). The host moves to a message-only window of its
        own and posts the wake-up again there, so the guest runs on (to its
        shutdown, say) wherever this thread's messages are pumped.
        """
        if self._closed:
            return
        try:
            self._timer_set = False  # a window's timers die with it
            self.hwnd = self._create_window()
            self._owns_window = True
            if self._queue.pending:
                self._post_wake()
        except BaseException as exc:
            self._report(exc)

    def _window_proc(self, hwnd: int, msg: int, wparam: int, lparam: int) -> int:
        # An exception must not reach ctypes: it would print it and return 0.
        try:
            if self.handle_message(msg, wparam, lparam):
                return 0
            return int(w.DefWindowProcW(hwnd, msg, wparam, lparam))
        except BaseException as exc:
            self._report(exc)
            return 0

    def _report(self, exc: BaseException) -> None:
        """A callback raised inside the window procedure (or our hook).

        Inside our own pump (``run``/``pump_until``) the pump re-raises it after
        ``DispatchMessageW`` returns. Under someone else's message loop a
        ``KeyboardInterrupt`` is raised again in the main thread once our
        callback has returned (``_owe_interrupt``), and anything else is logged.
        """
        if self._pumping:
            self._errors.append(exc)
        elif (
            isinstance(exc, KeyboardInterrupt)
            and threading.current_thread() is threading.main_thread()
        ):
            self._owe_interrupt()
        else:
            logger.error("asyncio_guest.win32: a host callback raised", exc_info=exc)

    def _owe_interrupt(self) -> None:
        """Host (main) thread: raise KeyboardInterrupt in the program's code, after ours.

        ``_thread.interrupt_main()`` makes the main thread raise it at its next
        bytecode check. Called here, that check is in our own frames, inside
        the window procedure: the rest of ``handle_message`` (unhook, close)
        would be skipped and ctypes would print and drop what its callback
        raised. So a helper thread calls it once the outermost of our entry
        points has left (``_leave``): this thread holds the GIL until it is
        back in C, and the next Python code it runs is the program's (its
        message loop after ``DispatchMessageW``, tkinter's event check, ...).
        """
        if self._interrupt_owed is None:
            left = threading.Event()
            self._interrupt_owed = left
            threading.Thread(
                target=_interrupt_main_once_set,
                args=(left,),
                name="asyncio-guest: KeyboardInterrupt for the main thread",
                daemon=True,
            ).start()
        if not self._entered:
            self._release_interrupt()  # reported from a window procedure's tail

    def _leave(self) -> None:
        """Host thread, last step of an entry point (nothing of ours may run after)."""
        self._entered -= 1
        if not self._entered:
            self._release_interrupt()

    def _release_interrupt(self) -> None:
        """Host thread: let the helper thread raise an owed KeyboardInterrupt.

        The Event orders the hand-over: the helper calls ``interrupt_main`` only
        after this ``set()``, and this thread then holds the GIL until it is back
        in C (the caller returns at once).
        """
        left = self._interrupt_owed
        if left is not None:
            self._interrupt_owed = None
            left.set()

    # ------------------------------------------------------------ the loop

    def pump_until(self, done: Callable[[], bool]) -> int | None:
        """Run the thread's message loop until ``done()`` is true.

        Returns None, or the exit code of a ``WM_QUIT`` that arrived first
        (``PostQuitMessage``); the caller decides what a quit means. An
        exception raised by a callback inside the loop propagates from here.
        """
        if threading.get_ident() != self.thread_id:
            raise RuntimeError("pump_until() must run on the thread that made the Win32Host")
        msg = w.MSG()
        pmsg = ctypes.byref(msg)
        self._pumping += 1
        try:
            while not done():
                got = w.GetMessageW(pmsg, None, 0, 0)
                if got == -1:
                    raise w.last_error("GetMessageW")
                if got == 0:
                    return int(msg.wParam)
                w.TranslateMessage(pmsg)
                w.DispatchMessageW(pmsg)
                if self._errors:
                    error = self._errors.pop(0)
                    raise error
            return None
        finally:
            self._pumping -= 1

    # ------------------------------------------------------------- ending

    def close(self) -> None:
        """Host thread: destroy our window and unregister its class (idempotent).

        Callbacks still queued are dropped. Called from inside one of our own
        callbacks, the close happens when that callback's drain returns. From
        another thread: RuntimeError, and the host stays as it was (Win32
        destroys a window only on its own thread).
        """
        if self._closed:
            return
        if threading.get_ident() != self.thread_id:
            raise RuntimeError(
                "Win32Host.close() must run on the thread that made the host: only that "
                "thread can destroy its window (use run_sync_soon_threadsafe(host.close))"
            )
        if self._in_window_proc:
            self._close_when_idle = True
            return
        self._closed = True
        self._queue.clear()
        errors = [e for e in (self._unhook(), self._kill_timer()) if e is not None]
        if self._owns_window:
            if not w.DestroyWindow(self.hwnd):
                errors.append(w.last_error("DestroyWindow"))
            if self._class_name is not None and not w.IsWindow(self.hwnd):
                if not w.UnregisterClassW(self._class_name, self._hinstance):
                    errors.append(w.last_error("UnregisterClassW"))
                self._class_name = None
        if self._hook is None and not (self._owns_window and w.IsWindow(self.hwnd)):
            # Neither our window procedure nor our hook can be called any more.
            _live_hosts.discard(self)
        if errors:
            raise errors[0]

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Win32Host:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _interrupt_main_once_set(left: threading.Event) -> None:
    """Helper thread of ``Win32Host._owe_interrupt``."""
    left.wait()
    _thread.interrupt_main()


@atexit.register
def _close_main_thread_hosts() -> None:
    """Interpreter exit (main thread): close this thread's unclosed hosts.

    Otherwise the hosts, and with them the code of their window procedures,
    are freed during finalization while their windows still exist, and any
    message dispatched after that (by a later exit handler, say) would crash.
    Other threads' hosts cannot be closed from here; a thread's windows are
    destroyed by the system when the thread ends.
    """
    me = threading.get_ident()
    for host in list(_live_hosts):
        if host.thread_id == me:
            try:
                host.close()
            except Exception:
                logger.exception("asyncio_guest.win32: closing a Win32Host at exit failed")


@closes_main_if_it_never_ran
def start_guest_run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    done_callback: Callable[[outcome.Outcome[_T]], object],
    host: Win32Host | None = None,
    host_uses_signal_set_wakeup_fd: bool = False,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> asyncio.Task[_T]:
    """Start ``main`` as the guest of this thread's message loop (which the caller runs).

    Call on the GUI thread. ``done_callback(outcome)`` runs on it once the run
    has shut down. Without a ``host``, a Win32Host is made here and closed
    after ``done_callback`` returns; a ``host`` given must be this thread's
    (RuntimeError otherwise). Returns the main task.
    """
    if host is not None:
        if host.closed:
            raise RuntimeError("this Win32Host is closed")
        if host.thread_id != threading.get_ident():
            raise RuntimeError(
                "start_guest_run(host=...) must be called on the thread that made the host"
            )
    the_host = host if host is not None else Win32Host()
    return start_with_host(
        main,
        args,
        host=the_host,
        own_host=host is None,
        done_callback=done_callback,
        offers_wakeup_fd_choice=True,
        host_uses_signal_set_wakeup_fd=host_uses_signal_set_wakeup_fd,
        loop_factory=loop_factory,
        debug=debug,
        tick_budget=tick_budget,
    )


@closes_main_if_it_never_ran
def run(
    main: Coroutine[Any, Any, _T] | Callable[[Unpack[MainArgs]], Awaitable[_T]],
    *args: Unpack[MainArgs],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    tick_budget: float = DEFAULT_TICK_BUDGET,
) -> _T:
    """Run ``main`` inside a Win32 message loop on this thread; return its result.

    The loop is ``GetMessageW``/``TranslateMessage``/``DispatchMessageW``, so
    the program's windows on this thread work as usual while ``main`` runs.

    * ``WM_QUIT`` (``PostQuitMessage``, e.g. from the main window's
      ``WM_DESTROY``) cancels ``main``, a CPU-busy one too (see the module
      doc); ``run`` keeps pumping until the guest has shut down (a later
      ``WM_QUIT`` only updates the exit code, as ``PostQuitMessage`` does),
      then returns ``main``'s result if it still produced one, else raises
      ``asyncio.CancelledError``; the ``WM_QUIT`` is posted again so that an
      enclosing message loop ends too.
    * Ctrl+C in a console (``CTRL_C_EVENT``, delivered as SIGINT by the C
      runtime): the first one cancels ``main`` and ``run`` raises
      ``KeyboardInterrupt`` after the shutdown, as ``asyncio.run`` does; the
      signal wakeup fd wakes the guest even while the thread sleeps in
      ``GetMessageW``. A second one ends the run with ``KeyboardInterrupt``
      at once (raised where it lands in user code; deferred to the engine's
      next safe point when it lands in asyncio-guest's own code).
    * An exception from ``main`` propagates from ``run`` after the shutdown.
    """
    refuse_inside_a_running_loop(main, "asyncio_guest.win32.run")
    host = Win32Host()
    result: list[outcome.Outcome[_T]] = []
    quit_code: int | None = None
    lifecycle = None

    def done() -> bool:
        return bool(result)

    try:
        lifecycle = _start(
            main,
            *args,
            run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
            run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
            done_callback=result.append,
            loop_factory=loop_factory,
            debug=debug,
            tick_budget=tick_budget,
        )
        lifecycle.keep_sigint = True  # until our own clean-up is done, below
        # While the pump runs, a run abandoned under it is ended there.
        lifecycle.end_abandoned_through = host.run_sync_soon_threadsafe
        task = lifecycle.main_task
        assert task is not None
        # Until the guest has shut down, whatever arrives meanwhile: the host
        # must not be closed under a running guest.
        while not result:
            code = host.pump_until(done)
            if code is not None:
                if quit_code is None and not result:
                    task.cancel()
                # A later WM_QUIT only updates the code, as PostQuitMessage does.
                quit_code = code
        del task
    except BaseException as exc:
        if lifecycle is not None and not result:
            # The message loop itself raised (a window procedure, a second
            # Ctrl+C in host code): the guest is shut down here, at once.
            lifecycle.end_now(exc)
        raise
    finally:
        # Clean-up that may not be cut short: each step is retried once.
        errors: list[BaseException] = []
        if lifecycle is not None:
            lifecycle.end_abandoned_through = None  # the pump is done
        cleanup_twice(host.close, errors)
        if lifecycle is not None:
            cleanup_twice(lifecycle.release_sigint, errors)
        if quit_code is not None:
            w.PostQuitMessage(quit_code)
        if errors:
            raise errors[0]
    return result[0].unwrap()
