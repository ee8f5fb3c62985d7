"""Socket I/O in the guest, over every selector, with registrations changed by host code.

Each test runs on the test loop (``default``: see tests/loops.py; a proactor on
Windows unless ASYNCIO_GUEST_TEST_LOOP=selector) and on every selector loop of
the platform. Tests marked ``needs_readiness`` use add_reader/add_writer, which
proactor loops do not have: they skip on the test loop only when it is one.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import queue
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable

import outcome
import pytest

from . import loops
from .hosts import LONG, QueueHost, wait_long

LoopFactory = Callable[[], asyncio.AbstractEventLoop] | None


def _selector_loop(kind: str) -> LoopFactory:
    cls = getattr(selectors, kind)

    def factory() -> asyncio.AbstractEventLoop:
        return asyncio.SelectorEventLoop(cls())

    return factory


def _selector_param(kind: str) -> object:
    present = hasattr(selectors, kind)
    return pytest.param(
        _selector_loop(kind) if present else None,
        id=kind,
        marks=pytest.mark.skipif(
            not present, reason=f"selectors.{kind} does not exist on {sys.platform}"
        ),
    )


_TEST_LOOP = "test loop"  # stands for loops.test_loop_factory(), resolved per test

SELECTORS = [
    pytest.param(_TEST_LOOP, id="default"),
    _selector_param("EpollSelector"),
    _selector_param("PollSelector"),
    _selector_param("SelectSelector"),
    _selector_param("KqueueSelector"),
]


@pytest.fixture(params=SELECTORS)
def loop_factory(request: pytest.FixtureRequest) -> LoopFactory:
    if request.param is _TEST_LOOP:
        if request.node.get_closest_marker("needs_readiness") and loops.is_proactor():
            pytest.skip(f"{loops.NO_READINESS}: the test loop is {loops.loop_class().__name__}")
        return loops.test_loop_factory()
    factory: LoopFactory = request.param
    return factory


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def test_socketpair_recv(host: QueueHost, loop_factory: LoopFactory) -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            b.setblocking(False)
            reader = asyncio.create_task(loop.sock_recv(a, 1))
            await asyncio.sleep(0)  # the reader is registered; the backend waits on it
            await loop.sock_sendall(b, b"x")
            return await asyncio.wait_for(reader, LONG)

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value(b"x")


def test_stream_server_and_clients(host: QueueHost, loop_factory: LoopFactory) -> None:
    """A TCP echo server and several concurrent clients, with a large payload each."""

    async def client(port: int, n: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = bytes([n]) * 300_000  # more than a socket buffer: needs writer readiness
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        got = await reader.read()
        writer.close()
        await writer.wait_closed()
        assert got == payload
        return got[:1]

    async def main() -> list[bytes]:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            results = await asyncio.wait_for(
                asyncio.gather(*(client(port, n) for n in range(5))), LONG
            )
        return list(results)

    out = host.guest_run(main, loop_factory=loop_factory)
    assert out == outcome.Value([bytes([n]) for n in range(5)])


def test_many_round_trips(host: QueueHost, loop_factory: LoopFactory) -> None:
    async def main() -> int:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for i in range(300):
                writer.write(b"ping %d\n" % i)
                assert await asyncio.wait_for(reader.readline(), LONG) == b"ping %d\n" % i
            writer.close()
            await writer.wait_closed()
        return 300

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value(300)


def test_blocking_peer_in_thread(host: QueueHost, loop_factory: LoopFactory) -> None:
    """Data arrives from a plain thread while the backend waits with a long timeout."""

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            go = threading.Event()

            def peer() -> None:
                go.wait(LONG)
                b.sendall(b"from thread")

            thread = threading.Thread(target=peer)
            thread.start()
            try:
                recv = asyncio.ensure_future(loop.sock_recv(a, 100))
                loop.call_soon(go.set)
                return await asyncio.wait_for(recv, LONG)
            finally:
                await asyncio.to_thread(thread.join)

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value(b"from thread")


def test_io_arriving_during_ready_only_ticks(host: QueueHost, loop_factory: LoopFactory) -> None:
    """Ready-only ticks (posted by workers) and backend returns interleave: no event is lost.

    A worker's ``call_soon_threadsafe`` posts a tick that runs only ready
    callbacks while the backend keeps its wait. Here that callback writes the
    data the guest waits for, so the backend returns while such a tick runs or
    just after it. No guest timer exists that could rescue a lost hand-over,
    so a lost one fails the safety timeout.
    """
    rounds = 200

    async def main() -> int:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
            pokes = 0

            def poke() -> None:
                nonlocal pokes
                pokes += 1

            def worker() -> None:
                while (data := requests.get()) is not None:
                    loop.call_soon_threadsafe(poke)
                    loop.call_soon_threadsafe(b.sendall, data)
                    loop.call_soon_threadsafe(poke)

            thread = threading.Thread(target=worker)
            thread.start()
            try:
                for i in range(rounds):
                    want = b"%d;" % i
                    requests.put(want)
                    got = b""
                    while len(got) < len(want):
                        got += await wait_long(loop.sock_recv(a, 100))
                    assert got == want
            finally:
                requests.put(None)
                await asyncio.to_thread(thread.join)
            return pokes

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value(2 * rounds)


@pytest.mark.needs_readiness
def test_host_registers_reader_while_backend_waits(
    host: QueueHost, loop_factory: LoopFactory
) -> None:
    """Host code adds a reader while the backend is in its wait; data then arrives.

    With select()/poll() the running wait does not see the new fd, so the backend
    must be woken to re-poll; with epoll/kqueue the kernel sees it.
    """

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            got: asyncio.Future[bytes] = loop.create_future()
            writer_thread: list[threading.Thread] = []

            def on_readable() -> None:
                loop.remove_reader(a)
                got.set_result(a.recv(100))

            def in_host() -> None:
                loop.add_reader(a, on_readable)
                # The data comes later, from outside, while the backend waits.
                thread = threading.Thread(target=b.sendall, args=(b"data",))
                writer_thread.append(thread)
                thread.start()

            host.in_host(in_host)
            try:
                return await asyncio.wait_for(got, LONG)
            finally:
                for thread in writer_thread:
                    thread.join()

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value(b"data")


@pytest.mark.needs_readiness
@pytest.mark.parametrize(
    "how",
    [
        "reader replaced",
        pytest.param(
            "fd number reused",
            marks=pytest.mark.skipif(
                sys.platform == "win32", reason="a socket's handle is not a small fd to reuse"
            ),
        ),
    ],
)
def test_a_reader_is_never_called_for_readiness_reported_before_it_was_added(
    host: QueueHost, loop_factory: LoopFactory, how: str
) -> None:
    """The backend reports fd X readable; before that tick runs, host code removes
    X's reader and reads the data itself (or closes X and registers a new socket
    that got X's number), then adds a new reader. Plain asyncio never calls the
    new reader for the old readiness (removing a reader cancels its handle);
    here the stale result was decoded against the new registration: the reader
    ran with nothing to read (on a blocking socket: a read that hung the host)."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        calls: list[str] = []
        loop.add_reader(a, lambda: calls.append("first reader"))
        await asyncio.sleep(0.05)  # nothing to do: the wait is handed over

        def in_host() -> None:
            nonlocal a, b
            b.send(b"x")
            time.sleep(0.1)  # the wait sees it and a tick is posted behind us
            loop.remove_reader(a)
            if how == "reader replaced":
                a.recv(1)
            else:
                old = a.fileno()
                a.close()
                b.close()
                a, b = socket.socketpair()
                if a.fileno() != old:  # (another thread took the number: no test)
                    os.dup2(a.fileno(), old)
                    a.close()
                    a = socket.socket(fileno=old)
                a.setblocking(False)

            def new_reader() -> None:
                try:
                    calls.append(f"new reader read {a.recv(1)!r}")
                except BlockingIOError:
                    calls.append("new reader called with nothing to read")

            loop.add_reader(a, new_reader)

        host.in_host(in_host)
        await asyncio.sleep(0.3)
        loop.remove_reader(a)
        a.close()
        b.close()
        return calls

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value([])


@pytest.mark.needs_readiness
def test_host_registers_reader_on_ready_fd(host: QueueHost, loop_factory: LoopFactory) -> None:
    """The fd is readable already when host code registers it: the reader must still fire."""

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            b.sendall(b"early")
            got: asyncio.Future[bytes] = loop.create_future()

            def on_readable() -> None:
                loop.remove_reader(a)
                got.set_result(a.recv(100))

            host.in_host(lambda: loop.add_reader(a, on_readable))
            return await asyncio.wait_for(got, LONG)

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value(b"early")


@pytest.mark.needs_readiness
def test_host_registers_writer_while_backend_waits(
    host: QueueHost, loop_factory: LoopFactory
) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            got: asyncio.Future[str] = loop.create_future()

            def on_writable() -> None:
                loop.remove_writer(a)
                got.set_result("writable")

            host.in_host(lambda: loop.add_writer(a, on_writable))
            return await asyncio.wait_for(got, LONG)

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value("writable")


@pytest.mark.needs_readiness
def test_host_removes_reader_while_backend_waits(
    host: QueueHost, loop_factory: LoopFactory
) -> None:
    """A reader removed by host code during the wait never fires, even when data comes."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        a1, b1 = socket.socketpair()
        a2, b2 = socket.socketpair()
        with a1, b1, a2, b2:
            fired: list[str] = []
            second: asyncio.Future[None] = loop.create_future()
            loop.add_reader(a1, fired.append, "removed reader")

            def on_second() -> None:
                loop.remove_reader(a2)
                fired.append("second reader")
                second.set_result(None)

            def in_host() -> None:
                loop.remove_reader(a1)
                loop.add_reader(a2, on_second)
                b1.sendall(b"x")
                b2.sendall(b"y")

            host.in_host(in_host)
            await asyncio.wait_for(second, LONG)
            await asyncio.sleep(0)
            return fired

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value(["second reader"])


@pytest.mark.needs_readiness
def test_reader_replaced_by_host_while_backend_waits(
    host: QueueHost, loop_factory: LoopFactory
) -> None:
    """Host code swaps the reader callback of a registered fd during the wait."""

    async def main() -> str:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            got: asyncio.Future[str] = loop.create_future()
            loop.add_reader(a, lambda: got.set_result("old reader"))

            def new_reader() -> None:
                loop.remove_reader(a)
                a.recv(10)
                got.set_result("new reader")

            def in_host() -> None:
                loop.add_reader(a, new_reader)
                b.sendall(b"z")

            host.in_host(in_host)
            return await asyncio.wait_for(got, LONG)

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value("new reader")


@pytest.mark.needs_readiness
def test_host_closes_unregistered_fd_while_backend_waits(
    host: QueueHost, loop_factory: LoopFactory
) -> None:
    """Host code unregisters an fd and closes it while the backend is handed its wait.

    That is what closing a connection from a button handler does. The wait the
    backend was given may still name the fd (a select()/poll() snapshot); the run
    must go on regardless. Whether the backend is already inside its wait when
    the fd goes is a race, so the scenario is repeated.
    """

    async def one_round(loop: asyncio.AbstractEventLoop) -> bytes:
        a, b = socket.socketpair()
        c, d = socket.socketpair()
        with c, d:
            c.setblocking(False)
            loop.add_reader(a, lambda: None)
            got: asyncio.Future[bytes] = loop.create_future()

            def on_c() -> None:
                loop.remove_reader(c)
                got.set_result(c.recv(100))

            loop.add_reader(c, on_c)

            def in_host() -> None:
                loop.remove_reader(a)
                a.close()
                b.close()

            def send() -> None:
                if d.fileno() != -1:
                    d.sendall(b"after close")

            host.in_host(in_host)
            host.in_host(send)
            result: bytes = await wait_long(got)
            return result

    async def main() -> set[bytes]:
        loop = asyncio.get_running_loop()
        return {await one_round(loop) for _ in range(30)}

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value({b"after close"})


@pytest.mark.needs_readiness
def test_closed_fd_reused_while_backend_waits(host: QueueHost, loop_factory: LoopFactory) -> None:
    """An fd unregistered and closed during the wait, its number reused: no stray callback."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        fired: list[str] = []
        loop.add_reader(a, fired.append, "stale reader")
        done: asyncio.Future[None] = loop.create_future()
        keep: list[socket.socket] = []

        def in_host() -> None:
            loop.remove_reader(a)
            a.close()
            b.close()
            c, d = socket.socketpair()  # likely gets the old numbers
            keep.extend((c, d))
            c.setblocking(False)

            def on_c() -> None:
                loop.remove_reader(c)
                fired.append("new reader")
                if not done.done():
                    done.set_result(None)

            loop.add_reader(c, on_c)
            d.sendall(b"q")

        host.in_host(in_host)
        try:
            await asyncio.wait_for(done, LONG)
            await asyncio.sleep(0)
        finally:
            for s in keep:
                s.close()
        return fired

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value(["new reader"])


def test_sock_connect_accept(host: QueueHost, loop_factory: LoopFactory) -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.setblocking(False)
            with socket.socket() as client:
                client.setblocking(False)
                accept = asyncio.ensure_future(loop.sock_accept(listener))
                await loop.sock_connect(client, listener.getsockname())
                conn, _ = await asyncio.wait_for(accept, LONG)
                with conn:
                    await loop.sock_sendall(conn, b"hello")
                    return await asyncio.wait_for(loop.sock_recv(client, 5), LONG)

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value(b"hello")


def test_datagram_endpoint(host: QueueHost, loop_factory: LoopFactory) -> None:
    class Proto(asyncio.DatagramProtocol):
        def __init__(self, fut: asyncio.Future[bytes]) -> None:
            self.fut = fut

        def datagram_received(self, data: bytes, addr: object) -> None:
            if not self.fut.done():
                self.fut.set_result(data)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        server, _ = await loop.create_datagram_endpoint(
            lambda: Proto(fut), local_addr=("127.0.0.1", 0)
        )
        addr = server.get_extra_info("sockname")
        client, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=addr)
        try:
            client.sendto(b"datagram")
            return await asyncio.wait_for(fut, LONG)
        finally:
            client.close()
            server.close()

    assert host.guest_run(main, loop_factory=loop_factory) == outcome.Value(b"datagram")


if sys.platform == "win32":
    # Winsock's select() reports a closed socket as "not a socket" (WinError 10038).
    _CLOSED_FD_ERRNO = errno.WSAENOTSOCK  # type: ignore[attr-defined,unused-ignore]
else:
    _CLOSED_FD_ERRNO = errno.EBADF


# The emergency shutdown cannot run either (select() fails there too), so its
# coroutine is never started: expected in this user-error case.
@pytest.mark.filterwarnings("ignore:coroutine 'RunLifecycle._shutdown' was never awaited")
def test_fd_closed_while_still_registered_ends_select_run_with_error(host: QueueHost) -> None:
    """User error: a socket closed without remove_reader. select() cannot wait on it.

    The stock loop raises EBADF (Windows: WSAENOTSOCK) out of run_forever (and
    asyncio.run cannot clean up either); the guest run must end too, with that
    error in the chain, rather than hang or spin. Tasks left pending are the
    stock outcome here.
    """
    a, b = socket.socketpair()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(a, lambda: None)
        a.close()  # still registered
        await asyncio.sleep(LONG)

    try:
        task, done = host.start(main, loop_factory=_selector_loop("SelectSelector"))
        del task
        host.run_until(lambda: bool(done))
    finally:
        a.close()
        b.close()
    assert len(done) == 1
    out = done[0][0]
    assert isinstance(out, outcome.Error)
    chain: list[BaseException] = []
    exc: BaseException | None = out.error
    while exc is not None and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(e, OSError) and e.errno == _CLOSED_FD_ERRNO for e in chain), chain
    # The tasks asyncio could not finish are garbage now; let their "destroyed
    # but pending" log lines land in this test's captured log.
    del out, chain, exc
    done.clear()
    gc.collect()
