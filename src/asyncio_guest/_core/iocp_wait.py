"""How a proactor (IOCP) guest loop waits for I/O, split across the two threads.

``IocpProactor.select()`` blocks in ``GetQueuedCompletionStatus`` and then, in
the same call, does the bookkeeping for every dequeued packet: it pops the
operation from the proactor's ``_cache`` by the OVERLAPPED address, runs the
operation's finishing callback and calls ``set_result``/``set_exception`` on
its future. All of that touches loop state, so running ``select()`` in another
thread races with the host (the cause of lost completions and hangs seen in
other libraries). Here it is split:

* the *backend thread* only dequeues: one blocking ``GetQueuedCompletionStatus``
  and then, with a zero timeout, whatever else is already queued. It gets back
  plain tuples ``(error, bytes transferred, key, OVERLAPPED address)`` and
  touches nothing else;
* the *host thread* does all the rest in ``decode``, in the stock order: every
  packet looked up and finished, then the operations unregistered by cancelled
  futures dropped from the cache (see below for which).

Why the address of a packet the backend holds cannot be reused meanwhile: the
OVERLAPPED object stays in ``_cache`` (a strong reference) until the host
decodes its packet or drops it as unregistered, and both happen only in
``decode``/``poll_raw``, on the host, while the backend is parked.

When an unregistered operation may be dropped. ``IocpProactor._unregister(ov)``
is called when the operation's packet is either in the port already or will
never come, and stock ``_poll`` drops the unregistered operations right after
a dequeue that found the port *empty*, in the same call: so their packets were
all taken and looked up first. Here the backend's drain and the host's decode
are apart in time (a tick can wait seconds, through a modal loop), and host
code may unregister an operation in between, whose packet then arrived after
the drain. Dropping it after that batch would free the OVERLAPPED while its
packet is still in the port; a new operation could get the same address and
the late packet would finish (or fail) the wrong future. So only a host poll
(``poll_raw``, zero timeout, backend parked) that ends with the port empty
drops anything, and only the operations unregistered before it began; the
drop happens after its packets were decoded (``decode`` right after, as the
guest loop always does), and a poll cut short by the batch limit drops
nothing. The backend's batches never drop.

No dequeued packet is ever lost: the port never delivers a packet twice, and
a lost one leaves its future pending for ever (and the proactor's ``close()``
waiting for it). So each packet goes into one queue (``undecoded``) on the
line that takes it from the port, and leaves it on the line that takes its
operation from the cache; whatever fails in between (the backend's next
dequeue, the hand-over, the tick, a decode cut short), the packet is still
there for the next decode, which the loop's detach makes at the latest. A
dequeue that raises an ``Exception`` after taking packets returns them and
raises at its next call (the order stock ``_poll`` gives, which finishes each
packet as it takes it); anything else is raised at once.

Waking the backend is ``PostQueuedCompletionStatus`` of a packet with key 0 and
OVERLAPPED "address" 1 (``WAKE_ADDRESS``). Why 1 and not NULL: the port hands
back whatever pointer was posted, but a NULL ``lpOverlapped`` is how
GetQueuedCompletionStatus says "no packet was dequeued" (its documentation,
Return value), so ``_overlapped.GetQueuedCompletionStatus`` raises
``OSError(0)`` for a dequeued NULL packet (seen under Wine). No real
OVERLAPPED lives at address 1 (heap objects are aligned), and key 0 means a
stock ``_poll`` (the proactor's ``close()``) ignores a leftover wake packet
instead of closing a handle. Documentation:
https://learn.microsoft.com/windows/win32/api/ioapiset/nf-ioapiset-getqueuedcompletionstatus
and .../nf-ioapiset-postqueuedcompletionstatus ("the system does not use or
validate" the posted values). A wake packet left in the port after its wait
returned for another reason costs one empty wake-up later.

The port functions are injected (``PortAPI``) so that this hand-over runs in
Linux unit tests with a queue standing in for the port.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any, Protocol

INFINITE = 0xFFFFFFFF
WAKE_ADDRESS = 1  # the OVERLAPPED "address" of our wake-up packets (see module doc)
_MAX_PACKETS_PER_WAIT = 1024  # then the host runs; the rest stay queued in the port

Status = tuple[int, int, int, int]  # (error, transferred, key, OVERLAPPED address)


class PortAPI(Protocol):
    """The two ``_overlapped`` functions the guest needs (see module doc)."""

    def GetQueuedCompletionStatus(self, port: Any, msecs: int) -> Status | None: ...

    def PostQueuedCompletionStatus(
        self, port: Any, transferred: int, key: int, address: int
    ) -> object: ...


def _ms_timeout(timeout: float | None) -> int:
    """Seconds to GetQueuedCompletionStatus milliseconds: rounded up, never INFINITE by accident."""
    if timeout is None:
        return INFINITE
    if timeout <= 0:
        return 0
    # 1 ms resolution: round up so that a timer is never woken early.
    return min(math.ceil(timeout * 1e3), INFINITE - 1)


class Taken(list[Status]):
    """Packets a dequeue took, returned as the wait's raw result.

    They are in the port's ``undecoded`` queue already (put there on the line
    that took each one), so ``decode`` does not queue them again: a list of
    this type only says "there is something to decode".
    """

    __slots__ = ()


class _Port:
    """The completion port and what one dequeue leaves for the next.

    Thread rule: used by the backend thread during its wait and by the host
    while the backend is parked; the hand-over (``backend.Channel``) orders
    the two. Holds no reference to the proactor or the loop.
    """

    __slots__ = ("error", "gqcs", "handle", "undecoded")

    def __init__(
        self,
        gqcs: Callable[[Any, int], Status | None],
        handle: Any,
        undecoded: collections.deque[Status],
    ) -> None:
        self.gqcs = gqcs
        self.handle = handle
        # Every packet taken goes here at once (deque appends are atomic; the
        # host pops only while this thread is parked). From here on it cannot
        # be lost, whatever fails before its decode: the port never delivers
        # a packet twice, and a lost one leaves its future pending for ever
        # (and the proactor's close() waiting for it).
        self.undecoded = undecoded
        self.error: Exception | None = None  # raised by the next dequeue

    def dequeue(self, ms: int) -> tuple[Taken, bool]:
        """Take queued packets: block at most ``ms`` for the first, then take
        what is already queued (at most ``_MAX_PACKETS_PER_WAIT``).

        Returns the packets (queued in ``undecoded`` too) and whether the port
        was seen empty at the end. Touches nothing but the port and that queue
        (see the module doc for failures).
        """
        error = self.error
        if error is not None:
            self.error = None
            raise error
        gqcs = self.gqcs
        handle = self.handle
        queue = self.undecoded
        start = len(queue)
        drained = False
        try:
            wait = ms
            while len(queue) - start < _MAX_PACKETS_PER_WAIT:
                before = len(queue)
                # One line: the packet is queued by the call that takes it.
                queue.extend(filter(None, (gqcs(handle, wait),)))
                if len(queue) == before:
                    drained = True
                    break
                wait = 0
        except Exception as exc:
            if len(queue) == start:
                raise
            self.error = exc  # the packets taken are decoded first
        return Taken(itertools.islice(queue, start, None)), drained

    def blocking_call(self, ms: int) -> Taken:
        """Backend thread: the wait."""
        return self.dequeue(ms)[0]


class IocpIO:
    """Wait strategy of a proactor loop: dequeue in the backend, finish on the host.

    ``kernel_tracks_registrations``: an operation started by the host while the
    backend waits was bound to the same port, so its completion ends that wait;
    no re-poll is needed.
    """

    kernel_tracks_registrations = True

    def __init__(self, proactor: Any, api: PortAPI | None = None) -> None:
        if api is None:
            import _overlapped  # type: ignore[import-not-found]  # Windows only

            api = _overlapped
        assert api is not None
        self._proactor = proactor
        self._port = proactor._iocp
        # Packets dequeued and not yet looked up, oldest first. The backend
        # appends (during its wait), the host pops (in decode). A decode cut
        # short (our own code failing mid-tick) leaves the rest here, and the
        # next decode (the loop's detach, at the latest) starts with them.
        self._undecoded: collections.deque[Status] = collections.deque()
        self._port_state = _Port(api.GetQueuedCompletionStatus, self._port, self._undecoded)
        self._pqcs = api.PostQueuedCompletionStatus
        self._invalid_handle: int = getattr(api, "INVALID_HANDLE_VALUE", (1 << 64) - 1)
        # Host only: unregistered operations the last host poll made droppable,
        # dropped by the decode of that poll's packets (see the module doc).
        self._droppable: list[Any] | None = None

    def blocking_call(self, timeout: float | None) -> Callable[[], Any]:
        """Host thread: the dequeue the backend thread will make."""
        return functools.partial(self._port_state.blocking_call, _ms_timeout(timeout))

    def poll_raw(self) -> Taken:
        """Host thread, backend parked: dequeue without waiting.

        Decode what it returns before polling again: the operations it makes
        droppable are dropped by that decode, after its packets are looked up.
        """
        unregistered = self._proactor._unregistered
        before = list(unregistered) if unregistered else None
        statuses, drained = self._port_state.dequeue(0)
        if before is not None and drained:
            if statuses:
                self._droppable = before
            else:
                self._drop(before)  # nothing to decode: drop now, as _poll would
        return statuses

    def wake(self) -> None:
        """Host thread, signal-safe (one C call, no lock): end the backend's wait."""
        self._pqcs(self._port, 0, 0, WAKE_ADDRESS)

    def decode(self, raw: Iterable[Status]) -> list[Any]:
        """Host thread, backend parked: finish the dequeued operations.

        The same steps, in the same order, as ``IocpProactor._poll`` after its
        dequeue, so asyncio's transports see exactly the stock behaviour.
        Returns the finished futures (the proactor loop's ``_process_events``
        ignores them, as it ignores ``select()``'s result).
        """
        proactor = self._proactor
        cache = proactor._cache
        undecoded = self._undecoded
        if not isinstance(raw, Taken):  # a dequeue's packets are queued already
            undecoded.extend(raw)
        done = []
        while undecoded:
            # One line, so no fault can fall between taking the packet and
            # taking its operation (one without the other is a lost completion).
            entry, (err, transferred, key, address) = (
                cache.pop(undecoded[0][3], None), undecoded.popleft())
            if entry is None:
                if not (address == WAKE_ADDRESS and key == 0):  # not our wake-up
                    self._unexpected(err, transferred, key, address)
                continue
            f, ov, obj, callback = entry
            try:
                if obj in proactor._stopped_serving:
                    f.cancel()
                elif not f.done():
                    # Not done: _register() did not finish it already and it
                    # was not cancelled.
                    try:
                        value = callback(transferred, key, ov)
                    except OSError as exc:
                        f.set_exception(exc)
                    else:
                        f.set_result(value)
                    done.append(f)
            except BaseException as exc:
                # Our own code failed with the operation taken: fail its future
                # rather than leave it (and the proactor's close) waiting.
                if not f.done():
                    f.set_exception(exc)
                raise
            f = None  # break the cycle through a traceback, as _poll does
        droppable = self._droppable
        if droppable is not None:
            self._droppable = None
            self._drop(droppable)
        return done

    def _drop(self, ovs: list[Any]) -> None:
        """Host thread: forget these unregistered operations (and only these).

        Their OVERLAPPED objects are still referenced by ``_unregistered``, so
        no other operation can hold one of their addresses in the cache.
        """
        proactor = self._proactor
        cache = proactor._cache
        for ov in ovs:
            cache.pop(ov.address, None)
        gone = {id(ov) for ov in ovs}
        proactor._unregistered[:] = [ov for ov in proactor._unregistered if id(ov) not in gone]

    def _unexpected(self, err: int, transferred: int, key: int, address: int) -> None:
        """A packet for no cached operation: what ``_poll`` does with it."""
        loop = self._proactor._loop
        if loop is not None and loop.get_debug():
            loop.call_exception_handler(
                {
                    "message": "GetQueuedCompletionStatus() returned an unexpected event",
                    "status": (
                        f"err={err} transferred={transferred} key={key:#x} address={address:#x}"
                    ),
                }
            )
        # The key is either 0 or a pipe handle that must be closed (see
        # IocpProactor._poll); INVALID_HANDLE_VALUE is never a handle to close.
        if key not in (0, self._invalid_handle) and sys.platform == "win32":
            import _winapi

            _winapi.CloseHandle(key)
