"""The worker wake: how a worker thread wakes a host that watches fds itself.

In the zero-thread strategy (``fd_watch.py``) the host watches the loop's
selector fd. A worker's ``call_soon_threadsafe`` could wake it the way plain
asyncio wakes its loop, with a byte on the self-pipe, which the selector holds.
But then the host learns of it one level removed: the byte makes the self-pipe
readable, which makes the epoll (or kqueue) fd readable, which ends the host's
own ``poll()``: a socket send, then the socket's wake-up, then the epoll fd's
(``ep_poll_safewake``, a second wake-up in the kernel). Measured on GLib (3.13,
bench ``threadsafe``): 8.8-9.4 us from the call to the callback, 1.35x plain
asyncio's; Qt 11 us. A socketpair the host watched directly measured slower
still (11-12 us on GLib): the socket send costs more than an eventfd write.

So on such a host (``FdWatcher.worker_wakes_by_fd``) each loop has one more
fd, watched by the host directly and kept out of the selector: an ``eventfd``
on Linux (one counter, the cheapest thing to write and to poll), a pipe where
there is none (macOS). The same calls took 7.3-7.6 us on GLib and 9.3-10 us on
Qt (through a ``QSocketNotifier``; Qt's watches on Linux are GLib sources now,
``_qt_glib_fds.py``). The self-pipe keeps every other job: the signal wakeup fd, host code's
wake-ups outside ticks (``Engine.host_wake``), the backend thread's wait.

Invariant (which thread touches what):

* ``write`` is for worker threads (``call_soon_threadsafe``), at any time
  while the loop is open. It is the write end's own ``write`` method, not a
  function of an fd number: once ``close()`` has run it raises ``ValueError``
  instead of writing to whatever file reused the number. A full pipe's write
  returns None: a wake-up is pending already.
* ``drain``, ``fd`` and ``close`` are the host thread's. ``drain`` raises
  ``BlockingIOError`` when nothing was written since the last one. What orders
  a worker's callback before its wake-up: the worker queues the callback, then
  writes; once the host has drained, every callback whose write it took is
  queued, and the host runs what is queued after its drain (the watch runs
  its tick first, then drains, then looks again: ``FdWaits.worker_woke``). A
  write after the drain keeps the fd readable, and the host's level-triggered
  watch fires again.
"""

from __future__ import annotations

import functools
import io
import os
import sys
from collections.abc import Callable

_ONE = (1).to_bytes(8, sys.byteorder)  # an eventfd counts 8-byte integers


class WorkerWake:
    """One loop's worker wake fd: made at its first run that uses one, closed with it."""

    __slots__ = ("_files", "drain", "fd", "write")

    fd: int  # host thread: the end the host watches and drains
    write: Callable[[], object]  # worker threads: one wake-up
    drain: Callable[[], object]  # host thread: take the wake-ups written so far
    _files: tuple[io.FileIO, ...]  # what close() closes

    def __init__(self, kind: str | None = None) -> None:
        """``kind``: "eventfd" or "pipe"; None picks eventfd where the OS has it."""
        if sys.platform == "win32":  # no zero-thread wait there (IOCP, select)
            raise OSError("a worker wake fd is a Unix thing")
        if kind is None:
            kind = "eventfd" if hasattr(os, "eventfd") else "pipe"
        if kind == "eventfd":
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            writer = io.FileIO(fd, "wb", closefd=True)
            self._files = (writer,)
            self.fd = fd
            self.write = functools.partial(writer.write, _ONE)
            self.drain = functools.partial(os.eventfd_read, fd)
        elif kind == "pipe":
            rfd, wfd = os.pipe()
            for end in (rfd, wfd):
                os.set_blocking(end, False)
            reader = io.FileIO(rfd, "rb", closefd=True)
            writer = io.FileIO(wfd, "wb", closefd=True)
            self._files = (reader, writer)
            self.fd = rfd
            self.write = functools.partial(writer.write, b"\0")
            # One read may leave bytes behind (more than 4 KiB of wake-ups
            # since the last drain): the fd stays readable and the watch fires
            # again. A pipe's empty read raises BlockingIOError, as os.read does.
            self.drain = functools.partial(os.read, rfd, 4096)
        else:
            raise ValueError(f"unknown worker wake kind {kind!r}")

    def close(self) -> None:
        """Host thread, no run watching ``fd``: release it (idempotent)."""
        for file in self._files:
            file.close()

