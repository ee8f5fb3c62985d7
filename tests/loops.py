"""Which event loop the tests' guest runs use, and what the machine can do.

``ASYNCIO_GUEST_TEST_LOOP`` chooses the loop of every test that does not ask
for a particular one:

* ``default`` (or unset): the library's own default (``loop_factory=None``):
  the proactor (IOCP) loop on Windows, the selector loop elsewhere;
* ``selector``: ``GuestSelectorEventLoop`` (select() on Windows);
* ``proactor``: ``GuestProactorEventLoop``; Windows only, and asking for it
  elsewhere is an error, not a skip (a misconfigured CI job must not go green).

``test_loop_factory()`` gives the ``loop_factory`` to pass (None for the
default). The test hosts (``tests/hosts.py``) pass it whenever a test gives
no ``loop_factory`` of its own.
"""

from __future__ import annotations

import asyncio
import functools
import os
import selectors
import sys
import threading
import time
from asyncio import proactor_events
from collections.abc import Callable

import pytest

import asyncio_guest
from asyncio_guest._core import guest_loop
from asyncio_guest._core.backend import WAITING

ENV = "ASYNCIO_GUEST_TEST_LOOP"
KINDS = ("default", "selector", "proactor")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

NO_READINESS = "proactor loops have no add_reader/add_writer (asyncio on Windows)"
"""Skip reason of tests that need readiness APIs, when the test loop is a proactor."""

NO_SUBPROCESS = "selector loops cannot run subprocesses on Windows (asyncio on Windows)"
"""Skip reason of subprocess tests, when the test loop is a selector loop on Windows."""


class LoopChoiceError(RuntimeError):
    """ASYNCIO_GUEST_TEST_LOOP names a loop that does not exist here."""


HAS_POLLABLE_SELECTOR = hasattr(selectors, "EpollSelector") or hasattr(selectors, "KqueueSelector")
"""Whether a selector here is one pollable fd (epoll, kqueue): the zero-thread
wait and lingering need one; select() and poll() selectors are not."""


WORKER_WAKE_KINDS = ["eventfd", "pipe"] if hasattr(os, "eventfd") else ["pipe"]
"""The kinds of worker wake fd this OS can make (_core/worker_wake.py)."""


def pollable_loop() -> asyncio.AbstractEventLoop:
    """A guest selector loop whose selector is one pollable fd (where HAS_POLLABLE_SELECTOR)."""
    return asyncio_guest.GuestSelectorEventLoop()  # DefaultSelector: epoll or kqueue


def requested_kind() -> str:
    """The value of ASYNCIO_GUEST_TEST_LOOP, checked (``default`` when unset or empty)."""
    value = os.environ.get(ENV, "").strip().lower() or "default"
    if value not in KINDS:
        raise LoopChoiceError(f"{ENV}={value!r}: expected one of {', '.join(KINDS)}")
    if value == "proactor" and sys.platform != "win32":
        raise LoopChoiceError(
            f"{ENV}=proactor: proactor (IOCP) loops exist only on Windows, not on {sys.platform}"
        )
    return value


def test_loop_factory() -> LoopFactory | None:
    """The ``loop_factory`` for guest runs: None means the library's default."""
    kind = requested_kind()
    if kind == "default":
        return None
    if kind == "selector":
        return asyncio_guest.GuestSelectorEventLoop
    factory: LoopFactory = asyncio_guest.GuestProactorEventLoop  # type: ignore[attr-defined,unused-ignore]
    return factory


test_loop_factory.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def resolved_factory() -> LoopFactory:
    """What a guest run calls to make its loop (the default factory made explicit)."""
    return test_loop_factory() or guest_loop.default_loop_factory


def new_test_loop() -> asyncio.AbstractEventLoop:
    """A new guest loop of the test loop's kind (for ``run_until_complete`` style tests)."""
    return asyncio_guest.as_guest_loop(resolved_factory()())


@functools.cache
def loop_class() -> type:
    """The class of the loops guest runs get (one made and closed off the main thread).

    Made in a worker thread so that a proactor loop's constructor does not
    touch the process's signal wakeup fd.
    """
    box: list[type] = []

    def make() -> None:
        loop = resolved_factory()()
        try:
            box.append(type(loop))
        finally:
            loop.close()

    thread = threading.Thread(target=make, name="tests.loops.loop_class")
    thread.start()
    thread.join()
    if not box:
        raise LoopChoiceError(f"could not make a test loop ({ENV}={requested_kind()})")
    return box[0]


def is_proactor() -> bool:
    """Is the test loop a proactor (IOCP) loop?"""
    return issubclass(loop_class(), proactor_events.BaseProactorEventLoop)


def has_subprocesses() -> bool:
    """Can the test loop run subprocesses? (Not a selector loop on Windows.)"""
    return sys.platform != "win32" or is_proactor()


def describe() -> str:
    """One line for the pytest header."""
    cls = loop_class()
    kind = "proactor" if is_proactor() else "selector"
    return f"{ENV}={requested_kind()}: guest runs use {cls.__name__} ({kind} loop)"


@functools.cache
def wine_version() -> str | None:
    """Wine's version when this is Windows Python under Wine, else None.

    Wine's ntdll exports ``wine_get_version``; Windows' does not.
    """
    if sys.platform != "win32":
        return None
    import ctypes

    ntdll = ctypes.WinDLL("ntdll")
    try:
        get_version = ntdll.wine_get_version
    except AttributeError:
        return None
    get_version.argtypes = []
    get_version.restype = ctypes.c_char_p
    raw: bytes | None = get_version()
    return (raw or b"?").decode("ascii", "replace")


def until_handed_over(loop: asyncio.AbstractEventLoop, bound: float = 10.0) -> None:
    """Any thread: return once the guest run of ``loop`` has handed its wait over
    (to the backend thread or the host's fd watch), or after ``bound`` seconds.

    The channel's state, read from this thread: WAITING is set once the wait is
    handed over. Under load the host thread may take long to get there (its
    tick preempted); a test that needs an idle guest waits here, not a fixed time.
    """
    engine = guest_loop.engine_of(loop)
    if engine is None:
        return
    give_up = time.monotonic() + bound
    while engine._ch.state is not WAITING and time.monotonic() < give_up:
        time.sleep(0.001)


async def backend_wait(delay: float = 0.005, result: object = None) -> object:
    """Wait in the backend thread for certain, then return ``result``.

    ``asyncio.sleep(0.001)`` is no such wait: asyncio runs a timer that is due
    within the clock's resolution at once, and that resolution is 15.6 ms on
    Windows (and under Wine); under load a short sleep may also be due before
    the first hand-over. Here the loop has nothing to do until a timer
    *thread* wakes it, so it must hand the wait over.
    """
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def wake() -> None:
        # Wake the loop only once it waits, however late the hand-over comes.
        until_handed_over(loop)
        if not loop.is_closed():
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(result))

    timer = threading.Timer(delay, wake)
    timer.daemon = True
    timer.start()
    try:
        return await done
    finally:
        timer.cancel()
        timer.join()


needs_eager_tasks = pytest.mark.skipif(
    not hasattr(asyncio, "eager_task_factory"), reason="eager task factories are new in 3.12"
)
"""For tests of eager tasks (``asyncio.eager_task_factory``), which Python 3.10-3.11 lack."""
