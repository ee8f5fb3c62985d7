"""Shared fixtures: every test must leave no thread, descriptor or global hook behind."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
from collections.abc import Iterator

import pytest

from asyncio_guest._core import fd_watch

from . import loops, os_resources
from .hosts import QueueHost, StrictHost


def pytest_configure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started as a background job of a non-interactive shell (`make test &`),
        # which ignores SIGINT: Python then installs no Ctrl+C handler, the
        # children we start inherit the ignore, and every Ctrl+C test would
        # wait for an interrupt that never comes. Give the session (and, through
        # exec's reset of caught signals, its children) Python's default back.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers",
        "needs_readiness: uses loop.add_reader/add_writer; skipped when the test loop "
        "is a proactor (see tests/loops.py)",
    )
    try:
        loops.requested_kind()
    except loops.LoopChoiceError as exc:
        # A wrong choice fails the whole session, loudly: never a silent skip.
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [loops.describe()]
    lines.append(f"wait strategy: ASYNCIO_GUEST_WAIT={fd_watch.requested()}")
    wine = loops.wine_version()
    if wine is not None:
        lines.append(f"running under Wine {wine}")
    lines.append(f"leak check: {os_resources.DESCRIPTION}")
    return lines


# -------------------------------------------------------------- fixtures


def settle_threads(before: set[threading.Thread], timeout: float = 10.0) -> list[threading.Thread]:
    """Join threads started since ``before`` (up to ``timeout`` each); return survivors."""
    left = []
    for thread in set(threading.enumerate()) - before:
        if thread.ident is None:
            # Listed but never started (a Ctrl+C hit its start()): no OS
            # thread exists, and join() would raise.
            continue
        thread.join(timeout)
        if thread.is_alive():
            left.append(thread)
    return left


def _wakeup_fd() -> int:
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


@pytest.fixture(scope="session", autouse=True)
def _process_warmed_up() -> Iterator[None]:
    """Shared OS resources made before the first test (tests/os_resources.py)."""
    clean_up = os_resources.warm_up_process()
    _warm_up_tk()
    yield
    clean_up()


def _warm_up_tk() -> None:
    """Tcl's notifier makes a pipe and a thread of its own (C, not Python) for the
    process at its first use and keeps them until exit: made here, they are no
    test's leak. Only where a Tk window can be made (a display on X11)."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        return
    try:
        import tkinter

        root = tkinter.Tk()
    except Exception:
        return  # no tkinter or no display: the Tk tests are not generated either
    root.update()
    root.destroy()


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """Fail a test that leaves a thread, an fd, a running loop or a changed hook behind."""
    threads = set(threading.enumerate())
    resources = os_resources.Resources()
    hooks = sys.get_asyncgen_hooks()
    sigint = signal.getsignal(signal.SIGINT)
    wakeup = _wakeup_fd()
    yield
    # Garbage is collected here, on the main thread: a Tk object (widgets and
    # their master form cycles) collected by a later collection on another
    # thread deletes its Tcl interpreter there, and Tcl aborts the process.
    gc.collect()
    left = settle_threads(threads)
    assert not left, f"threads left running: {left}"
    leaked = os_resources.leaked_since(resources)
    assert not leaked, leaked
    assert asyncio._get_running_loop() is None, "a running loop was left set on the thread"
    assert sys.get_asyncgen_hooks() == hooks, "async generator hooks were not restored"
    assert signal.getsignal(signal.SIGINT) is sigint, "the SIGINT handler was not restored"
    assert _wakeup_fd() == wakeup, "signal.set_wakeup_fd was not restored"


@pytest.fixture
def thread_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test is about the backend thread: its runs (and child processes) use
    that wait strategy whatever ``ASYNCIO_GUEST_WAIT`` the session has."""
    monkeypatch.setenv("ASYNCIO_GUEST_WAIT", "thread")


@pytest.fixture
def host() -> QueueHost:
    return QueueHost()


@pytest.fixture
def strict_host() -> Iterator[StrictHost]:
    the_host = StrictHost()
    try:
        yield the_host
    finally:
        the_host.close()
    assert not the_host.violations, the_host.violations
    assert the_host.max_in_flight <= 1
