"""How a selector-based guest loop waits for I/O, split across the two threads.

A stock ``selectors`` selector does two things in ``select()``: it blocks in the
OS (``epoll_wait``, ``poll``, ``select``, ``kevent``) and then maps the raw
result to ``SelectorKey`` objects through its Python-level registration map.
Guest mode needs those two halves on different threads:

* the *blocking call* runs in the backend thread and touches only the OS
  object (or, for select(), a snapshot of the fd lists taken by the host);
* the *decoding* (raw fds -> keys) runs on the host thread, which is the only
  thread that reads or writes the registration map.

So a key is looked up when the host processes the events, never in the backend.
An fd that was unregistered while the backend waited simply has no key and is
skipped; one whose registration changed meanwhile (a reader replaced, the fd
number reused by a new socket) is dropped by the loop before its callbacks are
looked up (``GuestLoopMixin._guest_drop_stale``): readiness reported before a
reader was added never calls it, as in plain asyncio. The selectors are
level-triggered, so such an fd, if still ready, is reported by the next poll.

``kernel_tracks_registrations`` tells whether registrations the host makes while
the backend waits are seen by that wait (epoll, kqueue: yes, the kernel object
is shared) or whether the backend must be woken to re-poll (poll, select).
"""

from __future__ import annotations

import functools
import math
import select
import selectors
import sys
from collections.abc import Callable
from typing import Any

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_WINDOWS = sys.platform == "win32"

Events = list[tuple[selectors.SelectorKey, int]]


class SelectorIO:
    """Generic strategy: any selector, the backend calls its ``select()``.

    Used for selector classes we do not know (subclasses, test doubles). The
    backend thread then reads the selector's Python-level map, so registration
    changes by the host must wake it (``kernel_tracks_registrations`` is False)
    and decoded keys are re-validated on the host.
    """

    kernel_tracks_registrations = False

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector

    def blocking_call(self, timeout: float | None) -> Callable[[], Any]:
        """Host thread: build the call the backend thread will make."""
        return functools.partial(self.selector.select, timeout)

    def decode(self, raw: Any) -> Events:
        """Host thread: keep only keys that are still the current registration."""
        mapping = self.selector.get_map()
        out: Events = []
        for key, events in raw:
            current = mapping.get(key.fileobj)
            if current is not None and current is key:
                out.append((current, events))
        return out

    def poll_raw(self) -> Any:
        """Host thread, only while the backend is parked: non-blocking poll.

        Returns the same kind of raw result as the blocking call (for ``decode``).
        """
        return self.selector.select(0)


class _FdMapIO(SelectorIO):
    """Shared decoding helpers for the stdlib selectors that keep ``_fd_to_key``."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        super().__init__(selector)
        self._fd_to_key: dict[int, selectors.SelectorKey] = selector._fd_to_key  # type: ignore[attr-defined]


class EpollIO(_FdMapIO):
    """epoll: the backend calls ``epoll.poll`` on the selector's own epoll object."""

    kernel_tracks_registrations = True

    def __init__(self, selector: selectors.BaseSelector) -> None:
        super().__init__(selector)
        self._epoll = selector._selector  # type: ignore[attr-defined]
        self._not_in = ~select.EPOLLIN  # type: ignore[attr-defined,unused-ignore]
        self._not_out = ~select.EPOLLOUT  # type: ignore[attr-defined,unused-ignore]

    def blocking_call(self, timeout: float | None) -> Callable[[], Any]:
        if timeout is None:
            ms_timeout = -1.0
        elif timeout <= 0:
            ms_timeout = 0.0
        else:
            # epoll_wait() counts milliseconds: round up so we never wake early.
            ms_timeout = math.ceil(timeout * 1e3) * 1e-3
        return functools.partial(self._epoll.poll, ms_timeout, max(len(self._fd_to_key), 1))

    def decode(self, raw: Any) -> Events:
        fd_to_key = self._fd_to_key
        not_in = self._not_in
        not_out = self._not_out
        out: Events = []
        for fd, ev in raw:
            key = fd_to_key.get(fd)
            if key is not None:
                events = 0
                if ev & not_in:
                    events |= _WRITE
                if ev & not_out:
                    events |= _READ
                out.append((key, events & key.events))
        return out

    def poll_raw(self) -> Any:
        return self._epoll.poll(0, len(self._fd_to_key) or 1)


class PollIO(_FdMapIO):
    """poll(): the backend calls the selector's ``select.poll`` object.

    A ``poll`` object copies its fd array when a call begins, so registrations
    made by the host during the wait are not seen: the host wakes the backend.
    """

    def __init__(self, selector: selectors.BaseSelector) -> None:
        super().__init__(selector)
        self._poll = selector._selector  # type: ignore[attr-defined]

    def blocking_call(self, timeout: float | None) -> Callable[[], Any]:
        if timeout is None:
            ms: int | None = None
        elif timeout <= 0:
            ms = 0
        else:
            ms = math.ceil(timeout * 1e3)
        return functools.partial(self._poll.poll, ms)

    def decode(self, raw: Any) -> Events:
        fd_to_key = self._fd_to_key
        out: Events = []
        for fd, ev in raw:
            key = fd_to_key.get(fd)
            if key is not None:
                events = 0
                if ev & ~select.POLLIN:  # type: ignore[attr-defined,unused-ignore]
                    events |= _WRITE
                if ev & ~select.POLLOUT:  # type: ignore[attr-defined,unused-ignore]
                    events |= _READ
                out.append((key, events & key.events))
        return out

    def poll_raw(self) -> Any:
        return self._poll.poll(0)


class _SelectFailed:
    """The backend's select() failed on its snapshot (raw result for ``decode``)."""

    __slots__ = ("error", "readers", "writers")

    def __init__(self, error: OSError | ValueError, readers: list[int], writers: list[int]) -> None:
        self.error = error
        self.readers = readers
        self.writers = writers


def _select_snapshot(readers: list[int], writers: list[int], timeout: float | None) -> Any:
    """Backend thread: select() on fd lists the host copied before the hand-over.

    The host may close a socket (after unregistering it) between taking the
    snapshot and this call; select() then fails with EBADF. That is not this
    thread's to judge: the failure goes back to the host (see ``SelectIO.decode``).
    """
    if not readers and not writers:
        # select() with no fds is an error on Windows; the self-pipe is always
        # registered in a loop, so this only guards odd test doubles.
        return [], [], []
    try:
        if _WINDOWS:
            # Winsock reports a failed connect() only in the "except" set.
            return select.select(readers, writers, writers, timeout)
        return select.select(readers, writers, [], timeout)
    except (OSError, ValueError) as exc:
        return _SelectFailed(exc, readers, writers)


class SelectIO(_FdMapIO):
    """select(): the host snapshots the fd sets, the backend selects on the copy."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        super().__init__(selector)
        self._readers: set[int] = selector._readers  # type: ignore[attr-defined]
        self._writers: set[int] = selector._writers  # type: ignore[attr-defined]
        self._failed: tuple[list[int], list[int]] | None = None

    def blocking_call(self, timeout: float | None) -> Callable[[], Any]:
        if timeout is not None and timeout < 0:
            timeout = 0
        return functools.partial(
            _select_snapshot, list(self._readers), list(self._writers), timeout
        )

    def decode(self, raw: Any) -> Events:
        if isinstance(raw, _SelectFailed):
            # A snapshot the host has changed since: wait again on a fresh one.
            # The same snapshot failing twice is a real error (an fd closed
            # while still registered): raise it, as the stock loop would.
            snapshot = (sorted(raw.readers), sorted(raw.writers))
            if snapshot == self._failed:
                raise raw.error
            self._failed = snapshot
            return []
        self._failed = None
        r, w, x = raw
        readable = set(r)
        writable = set(w)
        writable.update(x)
        fd_to_key = self._fd_to_key
        out: Events = []
        for fd in readable | writable:
            key = fd_to_key.get(fd)
            if key is not None:
                events = (_READ if fd in readable else 0) | (_WRITE if fd in writable else 0)
                out.append((key, events & key.events))
        return out

    def poll_raw(self) -> Any:
        return self.blocking_call(0)()


class KqueueIO(_FdMapIO):
    """kqueue: the backend calls ``kqueue.control`` on the selector's kqueue."""

    kernel_tracks_registrations = True

    def __init__(self, selector: selectors.BaseSelector) -> None:
        super().__init__(selector)
        self._kq = selector._selector  # type: ignore[attr-defined]

    def blocking_call(self, timeout: float | None) -> Callable[[], Any]:
        if timeout is not None and timeout < 0:
            timeout = 0
        max_ev = max(2 * len(self._fd_to_key), 1)
        return functools.partial(self._kq.control, None, max_ev, timeout)

    def decode(self, raw: Any) -> Events:
        fd_to_key = self._fd_to_key
        out: Events = []
        for kev in raw:
            key = fd_to_key.get(kev.ident)
            if key is not None:
                events = 0
                if kev.filter == select.KQ_FILTER_READ:  # type: ignore[attr-defined,unused-ignore]
                    events |= _READ
                if kev.filter == select.KQ_FILTER_WRITE:  # type: ignore[attr-defined,unused-ignore]
                    events |= _WRITE
                out.append((key, events & key.events))
        return out

    def poll_raw(self) -> Any:
        return self.blocking_call(0)()


def io_for(selector: selectors.BaseSelector) -> SelectorIO:
    """Pick the strategy for exactly this selector class (subclasses get the generic one)."""
    kind = type(selector)
    if kind is getattr(selectors, "EpollSelector", None):
        return EpollIO(selector)
    if kind is getattr(selectors, "KqueueSelector", None):
        return KqueueIO(selector)
    if kind is getattr(selectors, "PollSelector", None):
        return PollIO(selector)
    if kind is selectors.SelectSelector:
        return SelectIO(selector)
    return SelectorIO(selector)
