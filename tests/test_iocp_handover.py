"""``IocpIO``: the proactor loop's wait, split between the backend thread and the host.

Runs on every platform: the completion port is a queue (``FakePort``) behind
the two ``_overlapped`` functions IocpIO takes, and the proactor is a stand-in
(``FakeProactor``) with the attributes ``IocpProactor._poll`` uses, each of which
records and raises if it is read on any other thread than the one that made it
(the host). Futures are real asyncio futures of a real (not running) loop. The
"backend" is a real thread; the tests synchronise with events, never sleeps.

On Windows, the tests taking ``any_port`` run on a real port too (through the
real ``_overlapped``), and two more use one directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from asyncio_guest._core.iocp_wait import _MAX_PACKETS_PER_WAIT, INFINITE, WAKE_ADDRESS, IocpIO

from .hosts import LONG

Status = tuple[int, int, int, int]  # (error, transferred, key, OVERLAPPED address)
ERROR_OPERATION_ABORTED = 995  # a cancelled operation's completion status


class FakePort:
    """A completion port as ``_overlapped`` shows it: a FIFO of status tuples.

    ``GetQueuedCompletionStatus`` blocks ``ms`` milliseconds at most (INFINITE:
    for ever) and returns None when nothing came. A packet posted with a NULL
    OVERLAPPED makes it raise ``OSError``, as the real one does (overlapped.c
    takes a NULL OVERLAPPED for "nothing dequeued" and raises the last error).
    """

    handle = object()  # what IocpIO must pass back as ``port``

    def __init__(self) -> None:
        self.packets: queue.Queue[Status] = queue.Queue()
        self.calls: list[tuple[str, int]] = []  # (thread name, ms) of each dequeue
        self.blocking = threading.Event()  # set when a dequeue with ms != 0 begins

    # the PortAPI IocpIO is given
    def GetQueuedCompletionStatus(self, port: object, ms: int) -> Status | None:
        assert port is self.handle, port
        self.calls.append((threading.current_thread().name, ms))
        try:
            if ms == 0:
                status = self.packets.get_nowait()
            else:
                self.blocking.set()
                status = self.packets.get(timeout=None if ms == INFINITE else ms / 1e3)
        except queue.Empty:
            return None
        if status[3] == 0:
            raise OSError(0, "GetQueuedCompletionStatus: NULL OVERLAPPED (as _overlapped)")
        return status

    def PostQueuedCompletionStatus(
        self, port: object, transferred: int, key: int, address: int
    ) -> None:
        assert port is self.handle, port
        self.packets.put((0, transferred, key, address))

    # what the kernel does when an operation completes
    def complete(self, address: int, transferred: int = 0, err: int = 0, key: int = 0) -> None:
        self.packets.put((err, transferred, key, address))


class RealPort:
    """A real completion port (Windows) behind the same interface as ``FakePort``."""

    def __init__(self) -> None:
        import _overlapped  # type: ignore[import-not-found,unused-ignore]

        self._ov = _overlapped
        self.handle = _overlapped.CreateIoCompletionPort(_overlapped.INVALID_HANDLE_VALUE, 0, 0, 1)

    def GetQueuedCompletionStatus(self, port: object, ms: int) -> Status | None:
        assert port == self.handle, port
        status: Status | None = self._ov.GetQueuedCompletionStatus(port, ms)
        return status

    def PostQueuedCompletionStatus(
        self, port: object, transferred: int, key: int, address: int
    ) -> None:
        self._ov.PostQueuedCompletionStatus(port, transferred, key, address)

    def complete(self, address: int, transferred: int = 0, err: int = 0, key: int = 0) -> None:
        # A posted packet always reads as a success (error 0).
        assert err == 0, "a real port cannot post an error status"
        self._ov.PostQueuedCompletionStatus(self.handle, transferred, key, address)

    def close(self) -> None:
        import _winapi

        _winapi.CloseHandle(self.handle)  # type: ignore[attr-defined,unused-ignore]


class FakeProactor:
    """The IocpProactor attributes IocpIO uses; reading one off the host thread fails."""

    def __init__(self, loop: asyncio.AbstractEventLoop, port: FakePort) -> None:
        object.__setattr__(self, "host", threading.current_thread())
        object.__setattr__(self, "off_thread", [])
        object.__setattr__(self, "_values", {
            "_iocp": port.handle,
            "_cache": {},  # address -> (future, ov, obj, callback)
            "_unregistered": [],  # ov objects (with .address) of cancelled operations
            "_stopped_serving": set(),
            "_loop": loop,
        })

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name not in values:
            raise AttributeError(name)
        thread = threading.current_thread()
        if thread is not object.__getattribute__(self, "host"):
            object.__getattribute__(self, "off_thread").append((name, thread.name))
            raise AssertionError(f"proactor.{name} read on {thread.name}, not the host thread")
        return values[name]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"IocpIO must not set proactor.{name}")


class Op:
    """One overlapped operation in the proactor's cache, with a recording callback."""

    def __init__(
        self,
        proactor: FakeProactor,
        address: int,
        result: object = "result",
        error: BaseException | None = None,
    ) -> None:
        self.address = address
        self.future: asyncio.Future[Any] = proactor._loop.create_future()
        self.ov = SimpleNamespace(address=address)
        self.obj = object()  # the handle/socket the operation is on
        self.calls: list[tuple[int, int, object, str]] = []
        self._result = result
        self._error = error
        proactor._cache[address] = (self.future, self.ov, self.obj, self.callback)

    def callback(self, transferred: int, key: int, ov: object) -> object:
        self.calls.append((transferred, key, ov, threading.current_thread().name))
        if self._error is not None:
            raise self._error
        return self._result


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    the_loop = asyncio.SelectorEventLoop()
    try:
        yield the_loop
    finally:
        the_loop.close()


@pytest.fixture
def port() -> FakePort:
    return FakePort()


@pytest.fixture(params=["fake", "real"])
def any_port(request: pytest.FixtureRequest) -> Iterator[FakePort | RealPort]:
    """The fake port everywhere; on Windows also a real one (through ``_overlapped``)."""
    if request.param == "fake":
        yield FakePort()
        return
    if sys.platform != "win32":
        pytest.skip(f"a real completion port needs Windows (not {sys.platform})")
    real_port = RealPort()
    try:
        yield real_port
    finally:
        real_port.close()


@pytest.fixture
def proactor(loop: asyncio.AbstractEventLoop, port: FakePort) -> Iterator[FakeProactor]:
    the_proactor = FakeProactor(loop, port)
    yield the_proactor
    assert the_proactor.off_thread == [], "the backend read proactor state"


@pytest.fixture
def io(proactor: FakeProactor, port: FakePort) -> IocpIO:
    return IocpIO(proactor, port)


@pytest.fixture
def exception_contexts(loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
    """What reaches the loop's exception handler (debug mode on, as _poll needs for it)."""
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    loop.set_debug(True)
    return seen


class Backend:
    """A real thread running one ``blocking_call``, as the engine's backend does."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: concurrent.futures.Future[list[Status]] = concurrent.futures.Future()
        self.thread = threading.Thread(target=self._main, args=(call,), name="fake-backend")
        self.thread.start()

    def _main(self, call: Callable[[], Any]) -> None:
        try:
            self.result.set_result(call())
        except BaseException as exc:
            self.result.set_exception(exc)

    def get(self) -> list[Status]:
        try:
            return self.result.result(timeout=LONG)
        finally:
            self.thread.join(LONG)


def _backend_waits(port: FakePort, backend: Backend) -> None:
    """The backend thread is in (or entering) its blocking dequeue."""
    assert port.blocking.wait(LONG)
    assert not backend.result.done()


# ------------------------------------------------------- the backend's call


def test_blocking_call_runs_in_the_backend_and_only_touches_the_port(
    io: IocpIO, proactor: FakeProactor, port: FakePort
) -> None:
    op = Op(proactor, 0x1000, result=b"data")
    backend = Backend(io.blocking_call(None))
    _backend_waits(port, backend)
    port.complete(0x1000, transferred=4)  # the kernel, from no thread of ours
    raw = backend.get()
    assert raw == [(0, 4, 0, 0x1000)]
    assert [name for name, _ in port.calls] == ["fake-backend", "fake-backend"]
    # Nothing was finished off the host: the operation waits for decode.
    assert not op.future.done() and not op.calls
    assert 0x1000 in proactor._cache
    assert io.decode(raw) == [op.future]
    assert op.future.result() == b"data"
    assert op.calls == [(4, 0, op.ov, threading.current_thread().name)]
    assert 0x1000 not in proactor._cache


@pytest.mark.parametrize(
    ("timeout", "ms"),
    [
        (None, INFINITE),
        (0, 0),
        (-1.0, 0),
        (1e-7, 1),  # never rounded down to a busy zero-timeout poll
        (0.0001, 1),
        (0.001, 1),
        (0.0010001, 2),  # rounded up: a timer is never woken early
        (0.0015, 2),
        (0.25, 250),
        (86400.0, 86_400_000),
        (1e12, INFINITE - 1),  # huge, but still not INFINITE
    ],
)
def test_blocking_call_timeout_in_milliseconds(
    io: IocpIO, port: FakePort, timeout: float | None, ms: int
) -> None:
    port.complete(WAKE_ADDRESS)  # something queued: the call returns at once
    assert io.blocking_call(timeout)() == [(0, 0, 0, WAKE_ADDRESS)]
    assert port.calls[0][1] == ms
    assert [m for _, m in port.calls[1:]] == [0]  # then the zero-timeout drain


def test_blocking_call_blocks_until_a_packet(io: IocpIO, port: FakePort) -> None:
    backend = Backend(io.blocking_call(None))
    _backend_waits(port, backend)
    with pytest.raises(concurrent.futures.TimeoutError):
        backend.result.result(timeout=0.05)  # still blocked: nothing came
    port.complete(0x2000, transferred=1)
    assert backend.get() == [(0, 1, 0, 0x2000)]


def test_blocking_call_times_out_with_nothing(io: IocpIO, port: FakePort) -> None:
    t0 = time.monotonic()
    backend = Backend(io.blocking_call(0.05))
    assert backend.get() == []
    # Not early (by more than the 15.6 ms tick of Windows Python 3.10's clock).
    assert time.monotonic() - t0 >= 0.05 - 0.016
    assert port.calls == [("fake-backend", 50)]  # no drain after a timeout


def test_blocking_call_drains_what_is_already_queued(
    io: IocpIO, proactor: FakeProactor, port: FakePort
) -> None:
    for address in (0x10, 0x20, 0x30):
        port.complete(address, transferred=address)
    raw = Backend(io.blocking_call(None)).get()
    assert raw == [(0, 0x10, 0, 0x10), (0, 0x20, 0, 0x20), (0, 0x30, 0, 0x30)]
    assert [ms for _, ms in port.calls] == [INFINITE, 0, 0, 0]  # the last finds nothing


def test_one_wait_returns_at_most_a_bounded_batch(io: IocpIO, port: FakePort) -> None:
    extra = 5
    for _ in range(_MAX_PACKETS_PER_WAIT + extra):
        port.complete(WAKE_ADDRESS)
    assert len(Backend(io.blocking_call(None)).get()) == _MAX_PACKETS_PER_WAIT
    assert len(io.poll_raw()) == extra  # the rest stayed in the port, in order


# ------------------------------------------------------------------ wake()


def test_wake_ends_the_backend_wait_and_decode_drops_it(
    io: IocpIO,
    proactor: FakeProactor,
    port: FakePort,
    exception_contexts: list[dict[str, Any]],
) -> None:
    op = Op(proactor, 0x3000)
    backend = Backend(io.blocking_call(None))
    _backend_waits(port, backend)
    io.wake()  # host thread; a NULL address would make the backend's call raise
    raw = backend.get()
    assert raw == [(0, 0, 0, WAKE_ADDRESS)]
    assert io.decode(raw) == []
    assert exception_contexts == []  # not an "unexpected event"
    assert proactor._cache[0x3000][0] is op.future and not op.calls  # untouched


def test_wake_before_the_wait_is_not_lost(io: IocpIO, port: FakePort) -> None:
    io.wake()  # the host wakes before the backend even got to its wait
    assert Backend(io.blocking_call(None)).get() == [(0, 0, 0, WAKE_ADDRESS)]


def test_stale_wake_packet_costs_one_empty_decode(io: IocpIO, proactor: FakeProactor) -> None:
    op = Op(proactor, 0x3100)
    io.wake()
    raw = io.poll_raw()
    assert raw == [(0, 0, 0, WAKE_ADDRESS)]
    assert io.decode(raw) == []
    assert not op.future.done()


# ------------------------------------------------------------------ decode()


def test_decode_sets_the_callback_result(io: IocpIO, proactor: FakeProactor) -> None:
    op = Op(proactor, 0x4000, result=("value", 7))
    assert io.decode([(0, 7, 0, 0x4000)]) == [op.future]
    assert op.future.result() == ("value", 7)
    assert op.calls == [(7, 0, op.ov, threading.current_thread().name)]
    assert proactor._cache == {}


def test_decode_sets_the_callbacks_oserror(io: IocpIO, proactor: FakeProactor) -> None:
    error = ConnectionResetError(10054, "reset")
    op = Op(proactor, 0x4100, error=error)
    assert io.decode([(10054, 0, 0, 0x4100)]) == [op.future]
    assert op.future.exception() is error
    assert proactor._cache == {}


def test_decode_skips_an_operation_already_done(io: IocpIO, proactor: FakeProactor) -> None:
    cancelled = Op(proactor, 0x4200)
    cancelled.future.cancel()
    finished = Op(proactor, 0x4300)
    finished.future.set_result("by _register")  # finished before its packet came
    other = Op(proactor, 0x4400, result="other")
    raw = [(ERROR_OPERATION_ABORTED, 0, 0, 0x4200), (0, 0, 0, 0x4300), (0, 0, 0, 0x4400)]
    assert io.decode(raw) == [other.future]
    assert cancelled.calls == [] and finished.calls == []
    assert finished.future.result() == "by _register"
    assert proactor._cache == {}


def test_decode_cancels_operations_of_objects_no_longer_served(
    io: IocpIO, proactor: FakeProactor
) -> None:
    op = Op(proactor, 0x4500)
    proactor._stopped_serving.add(op.obj)
    assert io.decode([(0, 3, 0, 0x4500)]) == []
    assert op.future.cancelled()
    assert op.calls == []
    assert proactor._cache == {}


def test_unregistered_operation_completing_in_the_same_batch_is_expected(
    io: IocpIO,
    proactor: FakeProactor,
    port: FakePort,
    exception_contexts: list[dict[str, Any]],
) -> None:
    """The cache entry of a cancelled operation is dropped only after the lookups.

    Cancelling puts the operation on ``_unregistered``; its completion packet
    (ERROR_OPERATION_ABORTED, or success if it raced) may be in the very batch
    being decoded. It must find its entry, not be reported as unexpected.
    """
    gone = Op(proactor, 0x5000)
    gone.future.cancel()
    proactor._unregistered.append(gone.ov)
    live = Op(proactor, 0x5100, result="live")
    port.complete(0x5000, err=ERROR_OPERATION_ABORTED)
    port.complete(0x5100, transferred=1)
    raw = io.poll_raw()  # found the port empty at its end: ``gone`` may go after the lookups
    assert raw == [(ERROR_OPERATION_ABORTED, 0, 0, 0x5000), (0, 1, 0, 0x5100)]
    assert io.decode(raw) == [live.future]
    assert exception_contexts == []
    assert gone.calls == []
    assert proactor._cache == {}
    assert proactor._unregistered == []


def test_decode_of_a_host_poll_drops_unregistered_operations_after_the_batch(
    io: IocpIO, proactor: FakeProactor, port: FakePort
) -> None:
    gone = Op(proactor, 0x5200)  # cancelled, its packet never comes
    gone.future.cancel()
    proactor._unregistered.append(gone.ov)
    live = Op(proactor, 0x5300)
    port.complete(0x5300)
    assert io.decode(io.poll_raw()) == [live.future]
    assert proactor._cache == {} and proactor._unregistered == []


def test_decode_of_the_backends_batch_drops_nothing(
    io: IocpIO, proactor: FakeProactor, port: FakePort
) -> None:
    """The backend's drain may be long past: a packet may have come since."""
    gone = Op(proactor, 0x5400)
    gone.future.cancel()
    proactor._unregistered.append(gone.ov)
    live = Op(proactor, 0x5500)
    port.complete(0x5500)
    raw = Backend(io.blocking_call(None)).get()
    assert io.decode(raw) == [live.future]
    assert list(proactor._cache) == [0x5400] and proactor._unregistered == [gone.ov]
    assert io.poll_raw() == []  # the host's own poll, port empty: dropped now
    assert proactor._cache == {} and proactor._unregistered == []


@pytest.mark.parametrize("debug", [True, False])
def test_decode_of_an_unknown_address_is_reported_like_poll(
    io: IocpIO,
    loop: asyncio.AbstractEventLoop,
    proactor: FakeProactor,
    exception_contexts: list[dict[str, Any]],
    debug: bool,
) -> None:
    loop.set_debug(debug)
    op = Op(proactor, 0x6100, result="after the stray one")
    raw = [(0, 2, 0, 0x6000), (0, 0, 0, 0x6100)]
    assert io.decode(raw) == [op.future]  # the batch goes on
    assert op.future.result() == "after the stray one"
    if debug:
        assert [c["message"] for c in exception_contexts] == [
            "GetQueuedCompletionStatus() returned an unexpected event"
        ]
        assert exception_contexts[0]["status"] == (
            "err=0 transferred=2 key=0x0 address=0x6000"
        )
    else:
        assert exception_contexts == []


@pytest.mark.skipif(
    sys.platform != "win32", reason=f"a handle to close needs Windows (not {sys.platform})"
)
def test_unknown_address_with_a_handle_key(io: IocpIO) -> None:
    """As ``_poll``: the key of an unknown packet is a handle to close."""
    import _overlapped  # type: ignore[import-not-found,unused-ignore]

    event = _overlapped.CreateEvent(None, True, False, None)
    io.decode([(0, 0, event, 0x6200)])
    assert not _handle_is_open(event), "decode did not close the packet's handle"


# ------------------------------------------------------------------ poll_raw()


def test_poll_raw_with_nothing_queued_drops_unregistered_operations(
    io: IocpIO, proactor: FakeProactor, port: FakePort
) -> None:
    gone = Op(proactor, 0x7000)
    gone.future.cancel()
    proactor._unregistered.append(gone.ov)
    kept = Op(proactor, 0x7100)
    assert io.poll_raw() == []
    assert proactor._unregistered == []
    assert list(proactor._cache) == [0x7100] and not kept.future.done()
    assert [ms for _, ms in port.calls] == [0]  # never blocks


def test_poll_raw_with_packets_leaves_unregistered_to_decode(
    io: IocpIO, proactor: FakeProactor, port: FakePort
) -> None:
    gone = Op(proactor, 0x7200)
    gone.future.cancel()
    proactor._unregistered.append(gone.ov)
    port.complete(0x7200, err=ERROR_OPERATION_ABORTED)
    raw = io.poll_raw()
    assert raw == [(ERROR_OPERATION_ABORTED, 0, 0, 0x7200)]
    assert proactor._unregistered == [gone.ov]  # its packet is still to be looked up
    assert io.decode(raw) == []
    assert proactor._cache == {} and proactor._unregistered == []


# --------------------------------------------------- the whole hand-over


def test_host_changes_operations_while_the_backend_waits(
    io: IocpIO,
    proactor: FakeProactor,
    port: FakePort,
    exception_contexts: list[dict[str, Any]],
) -> None:
    """Host code starts one operation and cancels another during the backend's wait.

    Both complete (the cancelled one with ERROR_OPERATION_ABORTED) and end the
    wait; the host then finishes the new one and drops the cancelled one. The
    backend's batch is decoded before the host polls again: a ``poll_raw`` that
    finds nothing drops the unregistered operations, whose packets that batch
    may still hold.
    """
    old = Op(proactor, 0x8000)
    backend = Backend(io.blocking_call(None))
    _backend_waits(port, backend)
    # host thread, backend blocked:
    new = Op(proactor, 0x8100, result="new")
    old.future.cancel()
    proactor._unregistered.append(old.ov)
    port.complete(0x8000, err=ERROR_OPERATION_ABORTED)
    port.complete(0x8100, transferred=9)
    raw = backend.get()
    finished = io.decode(raw)  # decoded before any poll_raw, as the engine does
    late = io.poll_raw()  # whatever arrived after the backend's drain
    assert sorted(s[3] for s in raw + late) == [0x8000, 0x8100]
    finished += io.decode(late)
    assert finished == [new.future]
    assert new.future.result() == "new" and old.calls == []
    assert proactor._cache == {} and proactor._unregistered == []
    assert exception_contexts == []


# ----------------------------------------- cancelled operations: when to drop


def test_late_packet_of_an_operation_cancelled_after_the_backends_drain(
    loop: asyncio.AbstractEventLoop,
    any_port: FakePort | RealPort,
    exception_contexts: list[dict[str, Any]],
) -> None:
    """The backend drained the port, then (seconds later, say in a modal loop) the
    host cancels an operation and only then decodes the batch.

    The cancelled operation's packet came after that drain, so the batch does not
    hold it. Its cache entry must survive the batch: dropped there, the
    OVERLAPPED could be freed and its address reused by a new operation, which
    the late packet would then finish (or fail) in its place. Stock ``_poll``
    drops unregistered operations only after a dequeue that found the port
    empty, all in one call; here that is the host's next zero-timeout poll.
    """
    proactor = FakeProactor(loop, any_port)
    io = IocpIO(proactor, any_port)
    old = Op(proactor, 0xA000)
    other = Op(proactor, 0xA100, result="other")
    backend = Backend(io.blocking_call(None))
    any_port.complete(0xA100, transferred=1)
    raw = backend.get()  # the backend drained the port: [0xA100]
    assert [s[3] for s in raw] == [0xA100]
    # Host thread, before the tick that decodes the batch runs:
    old.future.cancel()
    proactor._unregistered.append(old.ov)
    any_port.complete(0xA000)  # the cancelled operation's packet, after the drain
    assert io.decode(raw) == [other.future]
    if 0xA000 in proactor._cache:
        new_address = 0xA200  # the old OVERLAPPED lives on: its address is taken
    else:
        new_address = 0xA000  # freed: the allocator may hand the address out again
    new = Op(proactor, new_address, result="new")
    late = io.poll_raw()
    assert [s[3] for s in late] == [0xA000]
    io.decode(late)
    assert not new.future.done() and new.calls == [], "the late packet finished the new operation"
    assert old.calls == []
    assert list(proactor._cache) == [new_address]
    assert proactor._unregistered == []  # that poll found the port empty: dropped now
    assert exception_contexts == []


def test_operations_cancelled_during_a_host_poll_wait_for_the_next_empty_poll(
    io: IocpIO, proactor: FakeProactor, port: FakePort
) -> None:
    """Only what was unregistered before a poll began is dropped after it."""
    first = Op(proactor, 0xB000)
    first.future.cancel()
    proactor._unregistered.append(first.ov)
    port.complete(0xB100)
    Op(proactor, 0xB100)
    raw = io.poll_raw()  # drained: ``first`` may be dropped once ``raw`` is decoded
    second = Op(proactor, 0xB200)  # cancelled by a callback before the decode
    second.future.cancel()
    proactor._unregistered.append(second.ov)
    io.decode(raw)
    assert proactor._unregistered == [second.ov]
    assert list(proactor._cache) == [0xB200]
    assert io.poll_raw() == []
    assert proactor._unregistered == [] and proactor._cache == {}


def test_a_poll_that_hit_the_batch_limit_drops_nothing(
    io: IocpIO, proactor: FakeProactor, port: FakePort
) -> None:
    gone = Op(proactor, 0xB300)
    gone.future.cancel()
    proactor._unregistered.append(gone.ov)
    for _ in range(_MAX_PACKETS_PER_WAIT):
        port.complete(WAKE_ADDRESS)
    port.complete(0xB300)  # beyond the limit: still in the port
    raw = io.poll_raw()
    assert len(raw) == _MAX_PACKETS_PER_WAIT
    io.decode(raw)
    assert proactor._unregistered == [gone.ov]  # the port was not seen empty
    late = io.poll_raw()
    assert [s[3] for s in late] == [0xB300]
    assert io.decode(late) == []
    assert proactor._cache == {} and proactor._unregistered == []


# --------------------------------------------------- a dequeue that fails


def test_a_dequeue_that_fails_midway_returns_what_it_took(
    loop: asyncio.AbstractEventLoop, any_port: FakePort | RealPort
) -> None:
    """Packets already taken off the port are not lost with the exception.

    The port will never deliver them again; lost, their futures would never
    finish (and the proactor's close() waits for them for ever). The error is
    raised by the next dequeue, after the packets were decoded, which is the
    order stock ``_poll`` gives (it finishes each packet as it takes it).
    """
    proactor = FakeProactor(loop, any_port)
    io = IocpIO(proactor, any_port)
    first = Op(proactor, 0xC000, result="first")
    after = Op(proactor, 0xC100, result="after")
    any_port.complete(0xC000)
    # A NULL OVERLAPPED (a stray post): _overlapped raises for it.
    any_port.PostQueuedCompletionStatus(any_port.handle, 0, 0, 0)
    any_port.complete(0xC100)
    raw = Backend(io.blocking_call(None)).get()
    assert raw == [(0, 0, 0, 0xC000)]
    assert io.decode(raw) == [first.future]
    assert first.future.result() == "first"
    with pytest.raises(OSError):
        io.poll_raw()
    assert io.decode(io.poll_raw()) == [after.future]  # then the port works on


def test_a_dequeue_interrupted_on_the_host_keeps_what_it_took(
    proactor: FakeProactor, port: FakePort
) -> None:
    """Ctrl+C (KeyboardInterrupt) in the middle of a host poll: raised at once,
    and the packets taken before it are decoded by the next decode."""
    calls = [0]

    class Interrupted:
        def GetQueuedCompletionStatus(self, handle: object, ms: int) -> Status | None:
            calls[0] += 1
            if calls[0] == 3:
                raise KeyboardInterrupt
            return port.GetQueuedCompletionStatus(handle, ms)

        PostQueuedCompletionStatus = port.PostQueuedCompletionStatus

    io = IocpIO(proactor, Interrupted())
    ops = [Op(proactor, address) for address in (0xC200, 0xC300, 0xC400)]
    for op in ops:
        port.complete(op.address)
    with pytest.raises(KeyboardInterrupt):
        io.poll_raw()
    raw = io.poll_raw()
    assert [s[3] for s in raw] == [0xC400]  # what this poll took
    assert io.decode(raw) == [op.future for op in ops]  # all of it, in order


def test_packets_a_failed_tick_dropped_are_decoded_next_time(
    io: IocpIO, proactor: FakeProactor, port: FakePort
) -> None:
    """The wait's result lost on its way to decode (our code failing in the
    tick): the packets are still queued, and the next decode finishes them."""
    ops = [Op(proactor, address) for address in (0xC500, 0xC600)]
    for op in ops:
        port.complete(op.address)
    raw = Backend(io.blocking_call(None)).get()
    assert len(raw) == 2
    del raw  # as a tick that failed before its decode
    assert io.decode(()) == [op.future for op in ops]


def test_a_decode_cut_short_fails_that_operation_and_keeps_the_rest(
    io: IocpIO, proactor: FakeProactor, port: FakePort
) -> None:
    """A finishing callback raising what is not an OSError (our own failure):
    its future fails with it rather than stay pending, the error propagates,
    and the packets after it wait for the next decode."""
    broken = Op(proactor, 0xC700, error=ZeroDivisionError())
    later = Op(proactor, 0xC800)
    port.complete(broken.address)
    port.complete(later.address)
    with pytest.raises(ZeroDivisionError):
        io.decode(io.poll_raw())
    assert isinstance(broken.future.exception(), ZeroDivisionError)
    assert not later.future.done()
    assert io.decode(()) == [later.future]


# ----------------------------------------------------------- a real port


def _handle_is_open(handle: int) -> bool:
    import ctypes
    from ctypes import wintypes

    get_info = ctypes.WinDLL("kernel32").GetHandleInformation  # type: ignore[attr-defined,unused-ignore]
    get_info.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD)]
    get_info.restype = wintypes.BOOL
    flags = wintypes.DWORD()
    return bool(get_info(handle, ctypes.byref(flags)))


windows_only = pytest.mark.skipif(
    sys.platform != "win32", reason=f"a real completion port needs Windows (not {sys.platform})"
)


@pytest.fixture
def real_port() -> Iterator[int]:
    import _overlapped  # type: ignore[import-not-found,unused-ignore]
    import _winapi

    handle = _overlapped.CreateIoCompletionPort(_overlapped.INVALID_HANDLE_VALUE, 0, 0, 1)
    try:
        yield handle
    finally:
        _winapi.CloseHandle(handle)  # type: ignore[attr-defined,unused-ignore]


@windows_only
def test_real_port_wake_ends_a_wait(loop: asyncio.AbstractEventLoop, real_port: int) -> None:
    proactor = SimpleNamespace(
        _iocp=real_port, _cache={}, _unregistered=[], _stopped_serving=set(), _loop=loop
    )
    io = IocpIO(proactor)  # the real _overlapped functions
    t0 = time.monotonic()
    backend = Backend(io.blocking_call(None))
    with pytest.raises(concurrent.futures.TimeoutError):
        backend.result.result(timeout=0.05)  # INFINITE: still waiting
    io.wake()
    raw = backend.get()
    assert raw == [(0, 0, 0, WAKE_ADDRESS)]
    assert io.decode(raw) == []
    assert time.monotonic() - t0 < LONG
    assert io.blocking_call(0.001)() == []  # nothing left: the timeout, in ms


@windows_only
def test_real_port_null_overlapped_is_an_error(real_port: int) -> None:
    """Why the wake packet's address is 1, not NULL: _overlapped raises for NULL."""
    import _overlapped  # type: ignore[import-not-found,unused-ignore]

    _overlapped.PostQueuedCompletionStatus(real_port, 0, 0, 0)
    with pytest.raises(OSError):
        _overlapped.GetQueuedCompletionStatus(real_port, 0)
    assert _overlapped.GetQueuedCompletionStatus(real_port, 0) is None  # it was dequeued
