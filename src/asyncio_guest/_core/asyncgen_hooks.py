"""Async generators of a guest run: the loop's if first iterated in its ticks, else the host's.

A generator takes the thread's hooks at its first iteration: ``firstiter`` is
called then, and the finalizer that will close it if it is dropped unfinished
is fixed then. A guest run shares its thread with the host's code, so for the
whole run it installs one pair of hooks that tells the two apart at that moment:

* first iterated by the loop's code: inside one of its ticks (its callbacks,
  and whatever they call), or inside one of its tasks run outside a tick (the
  first step of an eager task that host code created): the loop's own hooks,
  as in ``run_forever``. The loop's ``shutdown_asyncgens`` closes it; dropped
  unfinished, the loop closes it in a task;
* first iterated by other host code, outside ticks: marked as the host's in its
  frame, and given to the hooks the thread had when the run began. Dropped
  unfinished, it goes to that finalizer, or without one it is closed in
  place, as Python closes a generator on a thread without hooks.

Why a mark in the frame: by the time a finalizer runs, CPython has cleared the
generator's weak references, so no ``WeakSet`` of its owner holds it any more;
its frame's locals last until after the finalizer.

Why not install the loop's hooks at the start of every tick and the host's at
its end, which needs no mark: that is one read and two writes of the thread's
hooks per tick, and the read and a write lie on the path from every wake-up to
its first callback (bench ``threadsafe`` on 3.13: 0.5 us of 9.5).

Host code that replaces the thread's hooks during the run makes its own apply
to every generator first iterated from then on, the guest's too; the run's end
restores the earlier pair only over its own, never over such a replacement.

Thread rule: the run's host thread only (the thread whose hooks these are).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

_HOST_MARK = "@asyncio_guest.host_generator"
"""The frame local that marks a generator first iterated by host code (not a
valid identifier, so no generator's own local can have this name)."""


class RunAsyncgenHooks:
    """The async-generator hooks of one guest run (see module doc)."""

    __slots__ = ("_host", "_installed", "_loop", "_runs_loop_code")

    def __init__(self, loop: Any, runs_loop_code: Callable[[], bool]) -> None:
        self._loop = loop  # an asyncio BaseEventLoop: its _asyncgen_*_hook methods
        self._runs_loop_code = runs_loop_code
        self._host: Any = None  # the thread's hooks when the run began
        self._installed: tuple[Callable[[Any], None], Callable[[Any], None]] | None = None

    def install(self) -> None:
        """Set-up: the thread's hooks become this run's."""
        mine = (self._firstiter, self._finalizer)
        self._host = sys.get_asyncgen_hooks()
        self._installed = mine
        sys.set_asyncgen_hooks(*mine)

    def restore(self) -> None:
        """Teardown (idempotent; harmless before ``install``): the host's hooks come back,
        unless host code replaced ours meanwhile."""
        mine = self._installed
        if mine is None:
            return
        current = sys.get_asyncgen_hooks()
        if current.firstiter is mine[0] and current.finalizer is mine[1]:
            sys.set_asyncgen_hooks(*self._host)
        self._installed = None

    def _firstiter(self, agen: Any) -> None:
        if self._runs_loop_code():
            self._loop._asyncgen_firstiter_hook(agen)
            return
        agen.ag_frame.f_locals[_HOST_MARK] = True
        host_firstiter = self._host.firstiter
        if host_firstiter is not None:
            host_firstiter(agen)

    def _finalizer(self, agen: Any) -> None:
        # Called only for a generator dropped unfinished: its frame is still there.
        frame = agen.ag_frame
        if frame is None or _HOST_MARK not in frame.f_locals:
            self._loop._asyncgen_finalizer_hook(agen)
            return
        host_finalizer = self._host.finalizer
        if host_finalizer is not None:
            host_finalizer(agen)
        else:
            _close_in_place(agen)


def _close_in_place(agen: Any) -> None:
    """What CPython does with a generator dropped unfinished on a thread without
    hooks: throw ``GeneratorExit`` in, synchronously. What this raises, CPython
    reports as unraisable, as it reports the same failures of its own close."""
    closer = agen.aclose()
    try:
        closer.send(None)
    except StopIteration:
        return
    closer.close()
    raise RuntimeError("async generator ignored GeneratorExit")
