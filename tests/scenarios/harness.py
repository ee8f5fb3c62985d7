"""What the shared host scenarios (``tests/scenarios/test_scenarios.py``) need of a host.

One scenario set, written once, runs on every host module (Tk, Qt, Trio, and
later GLib, wx, pygame) and on both wait strategies (the backend thread and,
where the host can watch a file descriptor, the zero-thread path). Each host
gives a ``Harness``: its one-call entry, a real widget to click, the host's
own repeating timer, a modal dialog, and "the user closes the window". A host
without widgets (Trio) says so in ``capabilities`` and the scenarios that need
them are not generated for it (no skip is counted as a pass).

Harnesses live in ``tests/scenarios/harness_<host>.py``; each module defines
``HARNESSES: list[Harness]`` (empty when the toolkit does not import here; the
scenario module then reports that the toolkit is missing, which CI turns into a
failure with ``ASYNCIO_GUEST_REQUIRE_HOSTS=tk,qt,...``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

_T = TypeVar("_T")

WIDGETS = "widgets"  # make_button/click/modal/close_window work
SIGINT = "sigint"  # Ctrl+C while the host idles can be tested in a subprocess
# call_soon_in_host's callback is dispatched as the program's own callbacks are:
# by the toolkit's main loop (C code), or by a host loop of ours through its
# Ctrl+C boundary (the reference host, the pygame host's pump).
TOOLKIT_LOOP = "toolkit loop"

# The contract every host module's one-call entry keeps (the scenarios check it):
#
# * ``main`` returns: the host loop returns and ``run`` returns ``main``'s value.
# * ``main`` (or a task it awaits) raises: ``run`` raises that exception, after
#   the shutdown, with its traceback.
# * The user closes the main window (or quits the application) mid-run:
#   ``main`` is cancelled; the host loop keeps running until the guest has shut
#   down (``main``'s ``finally`` blocks and cancelled tasks still run, with the
#   window alive); then ``run`` raises ``asyncio.CancelledError``, or returns
#   ``main``'s value if ``main`` handled the cancellation and returned one. No
#   thread, descriptor or warning is left behind.
# * Ctrl+C while the host idles (blocked in its own C code): the first cancels
#   ``main`` and ``run`` raises ``KeyboardInterrupt`` after the shutdown,
#   promptly (well under a second here), as ``asyncio.run`` does.
# * Ctrl+C while a callback of the program's, run by the toolkit's loop, is stuck
#   in Python code: the first cancels ``main``, a second raises in that
#   callback at once (``TOOLKIT_LOOP`` harnesses).
# * For a ``SIGINT`` harness, a child process can rebuild it by ``name`` from
#   ``tests.scenarios.test_scenarios.HARNESSES`` (the subprocess test does).


class Harness(Protocol):
    """One host (and one wait strategy): everything a scenario does through it.

    All methods are called on the host thread (the test's main thread), from
    inside ``run``'s ``main`` or from host callbacks, except ``run`` itself.
    """

    name: str  # e.g. "tk", "qt-pyside6", "trio"; with the strategy: "tk[fd]"
    capabilities: frozenset[str]

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        """The host module's one-call entry: run ``main`` with the host's main
        loop in charge (a window exists); return its result or raise."""
        ...

    def make_button(self, command: Callable[[], object]) -> Any:
        """A real button in the window whose activation calls ``command()``."""
        ...

    def click(self, button: Any) -> None:
        """Activate the button through the toolkit (``invoke()``, ``click()``,
        ``event_generate``), from a host callback, as a user click would."""
        ...

    def call_every(self, interval: float, fn: Callable[[], object]) -> Callable[[], None]:
        """The host's own repeating timer (``after``, ``QTimer``...); returns a stop
        function. Every harness has one (called from inside ``run``'s ``main``)."""
        ...

    def call_soon_in_host(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` as a host event (outside any asyncio tick), soon. Every harness."""
        ...

    def open_modal(self, on_open: Callable[[Callable[[Any], None]], object]) -> Any:
        """Block in a modal dialog (its nested loop) until it is closed; return
        what it was closed with. ``on_open(close)`` is called once the dialog
        runs; ``close(value)`` closes it with ``value``."""
        ...

    def close_window(self) -> None:
        """What the user closing the main window (or quitting the app) does."""
        ...


def describe(harnesses: list[Harness]) -> list[str]:
    return [h.name for h in harnesses]


def required_hosts() -> list[str]:
    """Hosts CI installed (``ASYNCIO_GUEST_REQUIRE_HOSTS=tk,qt,trio``): for them
    a missing toolkit or display is a failure, not a skip."""
    import os

    return [h for h in os.environ.get("ASYNCIO_GUEST_REQUIRE_HOSTS", "").split(",") if h]


def unavailable(host: str, reason: str) -> None:
    """A host-specific test module cannot run here: skip it, unless CI requires it."""
    import pytest

    if host in required_hosts():
        pytest.fail(f"{host} is required here (ASYNCIO_GUEST_REQUIRE_HOSTS) but {reason}")
    pytest.skip(reason, allow_module_level=True)


WAIT_ENV = "ASYNCIO_GUEST_WAIT"


def wait_strategies() -> list[str]:
    """The wait strategies every harness runs under here.

    ``thread`` (the backend thread) everywhere; ``fd`` (zero-thread: the host
    watches the loop's epoll/kqueue fd) where the default loop has such an fd,
    that is everywhere but Windows.
    """
    return ["thread"] if sys.platform == "win32" else ["thread", "fd"]


def _backend_threads(loop: asyncio.AbstractEventLoop) -> list[str]:
    """The loop's backend thread, if it was started (the loop keeps it between runs)."""
    backend = getattr(getattr(loop, "_guest", None), "backend", None)
    thread = getattr(backend, "thread", None)
    return [] if thread is None else [thread.name]


class WaitHarness:
    """A harness run under one wait strategy (``ASYNCIO_GUEST_WAIT``), checked.

    Its ``run`` sets the variable for the run only, and checks from inside
    ``main`` that the strategy was really used: with ``fd``, no backend thread
    exists for the loop; with ``thread``, one does once the loop has waited.
    Everything else is the wrapped harness's.
    """

    def __init__(self, inner: Harness, wait: str) -> None:
        self.inner = inner
        self.wait = wait
        self.name = f"{inner.name}[{wait}]"
        self.capabilities = inner.capabilities

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        wait = self.wait

        async def checked() -> _T:
            # Checked when main returns (a scenario whose main raises, or is
            # cancelled, is about that exception: nothing may mask it).
            loop = asyncio.get_running_loop()
            result = await main()
            if wait == "fd":
                threads = _backend_threads(loop)
                assert not threads, f"zero-thread wait, yet a backend thread: {threads}"
            elif not _backend_threads(loop):
                # One real wait at least: longer than Windows' 15.6 ms clock
                # resolution, within which asyncio runs a timer without waiting.
                await asyncio.sleep(0.05)
                assert _backend_threads(loop), "backend-thread wait, yet no backend thread"
            return result

        before = os.environ.get(WAIT_ENV)
        os.environ[WAIT_ENV] = wait
        try:
            return self.inner.run(checked)
        finally:
            if before is None:
                del os.environ[WAIT_ENV]
            else:
                os.environ[WAIT_ENV] = before
