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
  futures dropped from the cache.

Why the address of a packet the backend holds cannot be reused meanwhile: the
OVERLAPPED object stays in ``_cache`` (a strong reference) until the host
decodes its packet or drops it as unregistered, and both happen only in
``decode``/``poll_raw``, on the host, while the backend is parked.

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

import functools
import math
import sys
from collections.abc import Callable
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


def _dequeue(gqcs: Callable[[Any, int], Status | None], port: Any, ms: int) -> list[Status]:
    """Backend thread (or host, with ``ms == 0``): take queued packets off the port.

    Blocks at most ``ms`` for the first one, then takes what is already queued.
    Touches nothing but the port.
    """
    status = gqcs(port, ms)
    if status is None:
        return []
    out = [status]
    while len(out) < _MAX_PACKETS_PER_WAIT:
        status = gqcs(port, 0)
        if status is None:
            break
        out.append(status)
    return out


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
        self._gqcs: Callable[[Any, int], Status | None] = api.GetQueuedCompletionStatus
        self._pqcs = api.PostQueuedCompletionStatus
        self._invalid_handle: int = getattr(api, "INVALID_HANDLE_VALUE", (1 << 64) - 1)

    def blocking_call(self, timeout: float | None) -> Callable[[], Any]:
        """Host thread: the dequeue the backend thread will make."""
        return functools.partial(_dequeue, self._gqcs, self._port, _ms_timeout(timeout))

    def poll_raw(self) -> list[Status]:
        """Host thread, backend parked: dequeue without waiting."""
        statuses = _dequeue(self._gqcs, self._port, 0)
        if not statuses and self._proactor._unregistered:
            # Nothing to decode: drop cancelled operations now, as _poll would.
            self._drop_unregistered()
        return statuses

    def wake(self) -> None:
        """Host thread, signal-safe (one C call, no lock): end the backend's wait."""
        self._pqcs(self._port, 0, 0, WAKE_ADDRESS)

    def decode(self, raw: list[Status]) -> list[Any]:
        """Host thread, backend parked: finish the dequeued operations.

        The same steps, in the same order, as ``IocpProactor._poll`` after its
        dequeue, so asyncio's transports see exactly the stock behaviour.
        Returns the finished futures (the proactor loop's ``_process_events``
        ignores them, as it ignores ``select()``'s result).
        """
        proactor = self._proactor
        cache = proactor._cache
        done = []
        for err, transferred, key, address in raw:
            if address == WAKE_ADDRESS and key == 0:
                continue  # our wake-up packet
            try:
                f, ov, obj, callback = cache.pop(address)
            except KeyError:
                self._unexpected(err, transferred, key, address)
                continue
            if obj in proactor._stopped_serving:
                f.cancel()
            elif not f.done():
                # Not done: _register() did not finish it already and it was
                # not cancelled.
                try:
                    value = callback(transferred, key, ov)
                except OSError as exc:
                    f.set_exception(exc)
                else:
                    f.set_result(value)
                done.append(f)
            f = None  # break the cycle through a traceback, as _poll does
        if proactor._unregistered:
            self._drop_unregistered()
        return done

    def _drop_unregistered(self) -> None:
        proactor = self._proactor
        cache = proactor._cache
        for ov in proactor._unregistered:
            cache.pop(ov.address, None)
        proactor._unregistered.clear()

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
