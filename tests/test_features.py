"""asyncio features in guest mode: subprocesses, SSL, threads, TaskGroup, timeouts, tick budget."""

from __future__ import annotations

import asyncio
import contextvars
import os
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any

import outcome
import pytest

import asyncio_guest

from . import loops
from .hosts import LONG, QueueHost, join_all, wait_long

try:
    import trustme
except ImportError as exc:  # e.g. Windows Python under Wine: cryptography's DLL does not load
    trustme = None  # type: ignore[assignment]
    _TRUSTME_ERROR: ImportError | None = exc
else:
    _TRUSTME_ERROR = None

CERTS_ENV = "ASYNCIO_GUEST_TEST_CERTS"
"""Without trustme: a folder of PEM files (tools/windows/setup.sh makes them).

``ca.pem`` (a CA certificate), and ``server.pem``/``server.key``, a certificate
the CA issued for ``localhost`` and 127.0.0.1, and its key.
"""

_PY = sys.version.split()[0]
needs_311 = pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason=f"asyncio.TaskGroup/asyncio.timeout need Python 3.11+ (running {_PY})",
)


# -------------------------------------------------------------- subprocess

needs_subprocesses = pytest.mark.skipif(
    not loops.has_subprocesses(),
    reason=f"{loops.NO_SUBPROCESS}: the test loop is {loops.loop_class().__name__}",
)


@needs_subprocesses
def test_subprocess_exec_with_pipes(host: QueueHost) -> None:
    code = "import sys; data = sys.stdin.read(); sys.stdout.write(data.upper()); sys.exit(3)"

    async def main() -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await wait_long(proc.communicate(b"hello from the guest"))
        return out, await proc.wait()

    assert host.guest_run(main) == outcome.Value((b"HELLO FROM THE GUEST", 3))


@needs_subprocesses
def test_subprocess_streaming_lines(host: QueueHost) -> None:
    code = "import sys\nfor line in sys.stdin:\n    print(line.strip()[::-1], flush=True)\n"

    async def main() -> list[bytes]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-u",
            "-c",
            code,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        got = []
        for word in (b"abc", b"guest", b"mode"):
            proc.stdin.write(word + b"\n")
            await proc.stdin.drain()
            got.append((await wait_long(proc.stdout.readline())).strip())
        proc.stdin.close()
        assert await wait_long(proc.wait()) == 0
        return got

    assert host.guest_run(main) == outcome.Value([b"cba", b"tseug", b"edom"])


@needs_subprocesses
def test_subprocess_shell_and_stderr(host: QueueHost) -> None:
    async def main() -> tuple[bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; print('out'); print('err', file=sys.stderr)",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await wait_long(proc.communicate())
        return out.strip(), err.strip()

    assert host.guest_run(main) == outcome.Value((b"out", b"err"))


# -------------------------------------------------------------------- SSL


def _server_context_and_trust() -> tuple[ssl.SSLContext, Callable[[ssl.SSLContext], None]]:
    """A server context for "localhost"/127.0.0.1, and how to make a client trust it.

    From trustme if it imports, else from the PEM files in $ASYNCIO_GUEST_TEST_CERTS.
    With neither the test fails: an SSL test that cannot run is not a pass.
    """
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if trustme is not None:
        ca = trustme.CA()
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
        return server_ctx, ca.configure_trust
    folder = os.environ.get(CERTS_ENV)
    if not folder:
        pytest.fail(
            f"trustme cannot be imported ({_TRUSTME_ERROR}) and {CERTS_ENV} is not set "
            "(tools/windows/setup.sh makes the certificates, tools/windows/env.sh sets it)"
        )
    server_ctx.load_cert_chain(
        os.path.join(folder, "server.pem"), os.path.join(folder, "server.key")
    )
    ca_file = os.path.join(folder, "ca.pem")

    def trust(ctx: ssl.SSLContext) -> None:
        ctx.load_verify_locations(cafile=ca_file)

    return server_ctx, trust


def test_ssl_server_and_client(host: QueueHost) -> None:
    server_ctx, trust = _server_context_and_trust()
    client_ctx = ssl.create_default_context()
    trust(client_ctx)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(b"tls:" + line)
            await writer.drain()
        writer.close()

    async def main() -> list[bytes]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx, limit=1 << 20)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost", limit=1 << 20
            )
            assert writer.get_extra_info("peercert") is not None
            got = []
            for i in range(20):
                writer.write(b"line %d\n" % i)
                got.append(await wait_long(reader.readline()))
            big = b"x" * 200_000 + b"\n"
            writer.write(big)
            got.append(await wait_long(reader.readuntil(b"\n")))
            writer.close()
            await writer.wait_closed()
        return got

    out = host.guest_run(main).unwrap()
    assert out[:20] == [b"tls:line %d\n" % i for i in range(20)]
    assert out[20] == b"tls:" + b"x" * 200_000 + b"\n"


def test_ssl_handshake_failure_is_an_ordinary_error(host: QueueHost) -> None:
    server_ctx, _ = _server_context_and_trust()
    untrusting = ssl.create_default_context()  # does not trust the test CA

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await wait_long(
                asyncio.open_connection(
                    "127.0.0.1", port, ssl=untrusting, server_hostname="localhost"
                )
            )

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, ssl.SSLError)


# ---------------------------------------------------------------- threads


def test_to_thread_runs_elsewhere_and_keeps_context(host: QueueHost) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> tuple[bool, str]:
        var.set("guest value")
        me = threading.get_ident()

        def work() -> tuple[bool, str]:
            return threading.get_ident() != me, var.get()

        return await asyncio.to_thread(work)

    assert host.guest_run(main) == outcome.Value((True, "guest value"))


def test_run_in_executor_default_and_custom(host: QueueHost) -> None:
    import concurrent.futures

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        a = await loop.run_in_executor(None, sum, range(100))
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            b = await loop.run_in_executor(pool, max, [3, 9, 4])
        return a, b

    assert host.guest_run(main) == outcome.Value((4950, 9))


def test_run_coroutine_threadsafe_from_worker(host: QueueHost) -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()

        def worker() -> list[int]:
            return [
                asyncio.run_coroutine_threadsafe(double(i), loop).result(LONG) for i in range(10)
            ]

        return await asyncio.to_thread(worker)

    assert host.guest_run(main) == outcome.Value([2 * i for i in range(10)])


def test_call_soon_threadsafe_from_many_threads_keeps_per_thread_order(host: QueueHost) -> None:
    n_threads, per_thread = 8, 1000

    async def main() -> dict[int, list[int]]:
        loop = asyncio.get_running_loop()
        seen: dict[int, list[int]] = {n: [] for n in range(n_threads)}
        all_in = asyncio.Event()
        total = 0
        barrier = threading.Barrier(n_threads)

        def on_item(n: int, i: int) -> None:
            nonlocal total
            seen[n].append(i)
            total += 1
            if total == n_threads * per_thread:
                all_in.set()

        def worker(n: int) -> None:
            barrier.wait(LONG)
            for i in range(per_thread):
                loop.call_soon_threadsafe(on_item, n, i)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(n_threads)]
        for t in threads:
            t.start()
        try:
            await wait_long(all_in.wait())
        finally:
            await asyncio.to_thread(join_all, threads)
        return seen

    seen = host.guest_run(main).unwrap()
    for n in range(n_threads):
        assert seen[n] == list(range(per_thread)), f"thread {n}"


def test_default_executor_is_shut_down_after_run(host: QueueHost) -> None:
    before = set(threading.enumerate())
    started = threading.Event()

    async def main() -> None:
        def slowish() -> None:
            started.set()

        await asyncio.to_thread(slowish)

    host.guest_run(main).unwrap()
    assert started.is_set()
    # shutdown_default_executor joined the worker before done_callback.
    assert set(threading.enumerate()) == before


# ---------------------------------------------------- TaskGroup / timeout


@needs_311
def test_taskgroup(host: QueueHost) -> None:
    async def main() -> list[int]:
        async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined,unused-ignore]
            tasks = [tg.create_task(asyncio.sleep(0.001 * i, result=i)) for i in range(5)]
        return [t.result() for t in tasks]

    assert host.guest_run(main) == outcome.Value([0, 1, 2, 3, 4])


@needs_311
def test_taskgroup_error_cancels_siblings(host: QueueHost) -> None:
    record: list[str] = []

    async def sibling() -> None:
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            record.append("sibling cancelled")
            raise

    async def failing() -> None:
        await asyncio.sleep(0.001)
        raise ValueError("in group")

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined,unused-ignore]
            tg.create_task(sibling())
            tg.create_task(failing())

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error)
    group: Any = out.error
    assert type(group).__name__ == "ExceptionGroup"
    assert [type(e) for e in group.exceptions] == [ValueError]
    assert record == ["sibling cancelled"]


@needs_311
def test_asyncio_timeout_expires(host: QueueHost) -> None:
    async def main() -> str:
        try:
            async with asyncio.timeout(0.01):  # type: ignore[attr-defined,unused-ignore]
                await asyncio.sleep(LONG)
        except TimeoutError:
            return "timed out"
        return "not timed out"

    assert host.guest_run(main) == outcome.Value("timed out")


@needs_311
def test_asyncio_timeout_rescheduled_by_host_code(host: QueueHost) -> None:
    """Host code moves a timeout's deadline earlier while the backend waits: a host-side timer."""

    async def main() -> str:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(LONG) as cm:  # type: ignore[attr-defined,unused-ignore]
                host.in_host(lambda: cm.reschedule(loop.time() + 0.01))
                await asyncio.sleep(LONG * 2)
        except TimeoutError:
            return "rescheduled timeout fired"
        return "not timed out"

    assert host.guest_run(main) == outcome.Value("rescheduled timeout fired")


def test_wait_for_timeout(host: QueueHost) -> None:
    async def main() -> str:
        try:
            await asyncio.wait_for(asyncio.sleep(LONG), 0.01)
        except asyncio.TimeoutError:
            return "timed out"
        return "no"

    assert host.guest_run(main) == outcome.Value("timed out")


def test_queue_and_locks(host: QueueHost) -> None:
    async def main() -> list[int]:
        q: asyncio.Queue[int | None] = asyncio.Queue(maxsize=3)
        lock = asyncio.Lock()
        out: list[int] = []

        async def producer() -> None:
            for i in range(50):
                await q.put(i)
            await q.put(None)

        async def consumer() -> None:
            while (item := await q.get()) is not None:
                async with lock:
                    out.append(item)

        await wait_long(asyncio.gather(producer(), consumer()))
        return out

    assert host.guest_run(main) == outcome.Value(list(range(50)))


# ------------------------------------------------------------ tick budget


@pytest.mark.timeout(60)
def test_host_timers_run_while_guest_is_busy() -> None:
    """200 spinning tasks: the host's own timers still get the thread, again and again."""
    host = asyncio_guest.ReferenceHost()
    host_ticks = 0
    wanted = 30

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        enough = asyncio.Event()
        spins = 0
        stop = False

        def host_timer() -> None:
            nonlocal host_ticks
            host_ticks += 1
            if host_ticks >= wanted:
                loop.call_soon(enough.set)
            else:
                host.call_later(0.001, host_timer)

        async def spinner() -> None:
            nonlocal spins
            while not stop:
                spins += 1
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(spinner()) for _ in range(200)]
        host.call_later(0.001, host_timer)
        try:
            await wait_long(enough.wait())
        finally:
            stop = True
            await asyncio.gather(*tasks)
        return host_ticks, spins

    ticks, spins = asyncio_guest.run(main, host=host, loop_factory=loops.test_loop_factory())
    assert ticks >= wanted
    # The guest kept spinning meanwhile (it was under load): several full
    # rounds of all 200 tasks. Not a speed figure (bench/bm_responsive.py is).
    assert spins > 200 * 3


def test_tick_budget_must_be_positive(host: QueueHost) -> None:
    async def main() -> None:
        pass

    coro = main()
    try:
        with pytest.raises(ValueError):
            host.start(coro, tick_budget=0)
    finally:
        coro.close()


# --------------------------------------------- debug mode: where a task was created


def _creation_sites(run: Callable[..., Any], factory: str) -> list[list[tuple[str, str]]]:
    """Debug mode: each task's creation stack from ``main`` on (its last entry is its
    repr's "created at"), for asyncio.ensure_future, asyncio.create_task and
    loop.create_task."""
    sites: list[list[tuple[str, str]]] = []

    async def nothing() -> None:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if factory == "custom":
            loop.set_task_factory(lambda loop, coro, **kw: asyncio.Task(coro, loop=loop, **kw))
        tasks = [
            asyncio.ensure_future(nothing()),
            asyncio.create_task(nothing()),
            loop.create_task(nothing()),
        ]
        for task in tasks:
            stack = [(e.filename, e.name) for e in task._source_traceback]  # type: ignore[attr-defined]
            sites.append(stack[stack.index((__file__, "main")) :])
        await asyncio.gather(*tasks)

    run(main(), debug=True)
    return sites


@pytest.mark.parametrize("factory", ["default", "custom"])
def test_debug_mode_names_the_callers_line_where_a_task_was_created(factory: str) -> None:
    """The guest loop's create_task is a frame of ours: it must not be the
    "created at" of every task (what "never retrieved" and "destroyed but
    pending" reports point at), as BaseEventLoop.create_task is not."""
    plain = _creation_sites(asyncio.run, factory)
    if factory == "default":
        assert plain[2] == [(__file__, "main")]  # loop.create_task: main's line
    assert _creation_sites(asyncio_guest.run, factory) == plain
