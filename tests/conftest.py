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

from .hosts import QueueHost, StrictHost

_HAVE_PROC_FD = os.path.isdir("/proc/self/fd")


def open_fds() -> set[int]:
    """The descriptors open in this process (empty where /proc/self/fd does not exist)."""
    if not _HAVE_PROC_FD:
        return set()
    return {int(name) for name in os.listdir("/proc/self/fd")}


def settle_threads(before: set[threading.Thread], timeout: float = 10.0) -> list[threading.Thread]:
    """Join threads started since ``before`` (up to ``timeout`` each); return survivors."""
    left = []
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout)
        if thread.is_alive():
            left.append(thread)
    return left


def _wakeup_fd() -> int:
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """Fail a test that leaves a thread, an fd, a running loop or a changed hook behind."""
    threads = set(threading.enumerate())
    fds = open_fds()
    hooks = sys.get_asyncgen_hooks()
    sigint = signal.getsignal(signal.SIGINT)
    wakeup = _wakeup_fd()
    yield
    left = settle_threads(threads)
    assert not left, f"threads left running: {left}"
    new_fds = open_fds() - fds
    if new_fds:
        # Descriptors of objects in reference cycles are closed by the collector.
        for _ in range(2):
            gc.collect()
        new_fds = open_fds() - fds
    details = {fd: _fd_target(fd) for fd in new_fds}
    assert not new_fds, f"descriptors left open: {details}"
    assert asyncio._get_running_loop() is None, "a running loop was left set on the thread"
    assert sys.get_asyncgen_hooks() == hooks, "async generator hooks were not restored"
    assert signal.getsignal(signal.SIGINT) is sigint, "the SIGINT handler was not restored"
    assert _wakeup_fd() == wakeup, "signal.set_wakeup_fd was not restored"


def _fd_target(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


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
