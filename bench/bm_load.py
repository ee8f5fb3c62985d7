"""Load benchmarks: many sockets, many pending timers, a flood of call_soon_threadsafe.

Each workload checks what it did and raises ``LoadCheckError`` when anything was
lost, duplicated or out of order (a failed check is a failed measurement: the
child exits non-zero with the message). Sizes come from ``ctx.sizes``
(``spec.Sizes``): the full figures are the project's load target

* ``load_sockets``: 10 000 sockets (5 000 TCP loopback connections, both ends in
  the loop), every one carrying echoed traffic;
* ``load_timers``: 100 000 pending timers with spread deadlines, some cancelled;
* ``load_threadsafe``: 1 000 000 ``call_soon_threadsafe`` from 8 threads.

The workload functions themselves (``echo_sockets``, ``spread_timers``,
``threadsafe_flood``) take plain sizes and import nothing from the bench
harness, so ``tests/test_load.py`` runs small versions of exactly this code
(also on Windows, where there is no ``resource`` module).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness import Ctx, Metrics

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]


class LoadCheckError(RuntimeError):
    """A load workload lost, duplicated or reordered something."""


def _fail(workload: str, problems: list[str]) -> None:
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise LoadCheckError(f"{workload}: {shown}{more}")


# ------------------------------------------------------------------ memory


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (``getrusage`` ru_maxrss)."""
    if resource is None:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # bytes vs KiB


def rss_bytes() -> int:
    """Current resident set size (``/proc/self/statm``; 0 where it does not exist)."""
    try:
        with open("/proc/self/statm") as f:
            resident = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return resident * os.sysconf("SC_PAGE_SIZE")


def open_fd_count() -> int:
    """Descriptors open in this process (Linux: /proc/self/fd; else 0)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def raise_fd_limit(needed: int) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (to ``needed`` if the hard
    limit is infinite); raise ``LoadCheckError`` if that is still below ``needed``.

    Returns (soft, hard) as set; (-1, -1) where there is no ``resource`` module.
    """
    if resource is None:
        return (-1, -1)
    infinity = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != infinity and hard < needed:
        raise LoadCheckError(
            f"RLIMIT_NOFILE hard limit is {hard}, this workload needs {needed} descriptors "
            "(raise it with `ulimit -Hn` as root, or use a smaller workload: run.py --quick)"
        )
    target = hard if hard != infinity else max(needed, soft if soft != infinity else needed)
    if soft != infinity and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            if soft < needed:
                raise LoadCheckError(
                    f"RLIMIT_NOFILE soft limit {soft} is below the {needed} descriptors this "
                    f"workload needs and could not be raised: {exc}"
                ) from exc
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft, hard


# ----------------------------------------------------------------- sockets


@dataclass
class SocketsResult:
    connections: int
    sockets_open: int  # descriptors open while every connection was up (0: unknown)
    connect_s: float  # all connections made and accepted
    traffic_s: float  # every round trip of every connection
    close_s: float  # every connection shut down from both ends
    total_s: float
    cpu_s: float  # process CPU time (all threads) over total_s
    bytes_echoed: int


_HEADER = struct.Struct("!II")  # connection id, trip number


async def echo_sockets(
    connections: int,
    trips: int,
    size: int,
    *,
    connect_batch: int = 250,
    seed: int = 0,
) -> SocketsResult:
    """``connections`` TCP loopback connections to a server in the same loop
    (2 sockets each, both in the loop); every client does ``trips`` round trips of
    ``size``-byte messages through streams (``write``, ``drain``, ``readexactly``),
    all connections at once, then shuts down (EOF both ways, close).

    Checked: every echo equals what was sent; the server saw exactly the bytes
    each connection sent (count and CRC-32, matched by connection id); every
    connection was accepted, served and closed once.
    """
    if size < _HEADER.size:
        raise ValueError(f"size must be at least {_HEADER.size}")
    rng = random.Random(seed)
    pool = rng.randbytes(4096 + size)
    body = size - _HEADER.size
    problems: list[str] = []
    # connection id -> (bytes, crc32) as the server received them
    served: dict[int, tuple[int, int]] = {}
    accepted = 0
    accept_target = 0
    all_accepted: asyncio.Future[None] | None = None
    loop = asyncio.get_running_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        if all_accepted is not None and accepted >= accept_target and not all_accepted.done():
            all_accepted.set_result(None)
        nbytes = crc = 0
        cid = -1
        try:
            while True:
                try:
                    data = await reader.readexactly(size)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        problems.append(f"server: connection {cid} ended mid-message")
                    break
                if cid < 0:
                    cid = _HEADER.unpack_from(data)[0]
                nbytes += len(data)
                crc = zlib.crc32(data, crc)
                writer.write(data)
                await writer.drain()
            if cid in served:
                problems.append(f"server: connection id {cid} served twice")
            served[cid] = (nbytes, crc)
            writer.close()
            await writer.wait_closed()
        except OSError as exc:
            problems.append(f"server: connection {cid}: {exc!r}")
        finally:
            writer.close()

    server = await asyncio.start_server(
        handle, "127.0.0.1", 0, backlog=max(2 * connect_batch, 128)
    )
    port = server.sockets[0].getsockname()[1]
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    sockets_open = 0
    try:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        # In batches no larger than half the listen backlog, each waited for until
        # the server accepted it: a full accept queue makes the kernel drop SYNs,
        # and a dropped SYN is retried after a whole second.
        for start in range(0, connections, connect_batch):
            n = min(connect_batch, connections - start)
            accept_target = start + n
            all_accepted = loop.create_future()
            if accepted >= accept_target:
                all_accepted.set_result(None)
            streams += await asyncio.gather(
                *(asyncio.open_connection("127.0.0.1", port) for _ in range(n))
            )
            await all_accepted
        t1 = time.perf_counter()
        sockets_open = open_fd_count()

        sent: dict[int, tuple[int, int]] = {}

        async def client(cid: int, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
            crc = 0
            offset = (cid * 61) % 4096
            for trip in range(trips):
                start = (offset + trip * 7) % 4096
                msg = _HEADER.pack(cid, trip) + pool[start:start + body]
                writer.write(msg)
                await writer.drain()
                echo = await reader.readexactly(size)
                if echo != msg:
                    problems.append(f"client {cid}: trip {trip} echoed wrong bytes")
                    break
                crc = zlib.crc32(msg, crc)
            sent[cid] = (trips * size, crc)

        await asyncio.gather(*(client(cid, r, w) for cid, (r, w) in enumerate(streams)))
        t2 = time.perf_counter()

        async def shut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write_eof()
            rest = await reader.read()
            if rest:
                problems.append(f"client: {len(rest)} unexpected bytes after the last echo")
            writer.close()
            await writer.wait_closed()

        await asyncio.gather(*(shut(r, w) for r, w in streams))
        t3 = time.perf_counter()
        cpu3 = time.process_time()
    finally:
        for _, w in streams:
            w.close()
        server.close()
        await server.wait_closed()
    streams.clear()
    # The server's handlers end when they see EOF; a client's read() returning
    # b"" means its handler has closed, so every handler has recorded by now.
    if accepted != connections:
        problems.append(f"server accepted {accepted} connections, expected {connections}")
    if len(sent) != connections:
        problems.append(f"{connections - len(sent)} clients did not finish their trips")
    if served != sent:
        missing = sorted(set(sent) - set(served))
        wrong = sorted(c for c in set(sent) & set(served) if sent[c] != served[c])
        problems.append(
            f"server-side byte counts/CRCs differ from what clients sent: "
            f"{len(missing)} connections missing (e.g. {missing[:3]}), "
            f"{len(wrong)} wrong (e.g. {wrong[:3]})"
        )
    _fail("load_sockets", problems)
    return SocketsResult(
        connections=connections,
        sockets_open=sockets_open,
        connect_s=t1 - t0,
        traffic_s=t2 - t1,
        close_s=t3 - t2,
        total_s=t3 - t0,
        cpu_s=cpu3 - cpu0,
        bytes_echoed=sum(n for n, _ in served.values()),
    )


# ------------------------------------------------------------------ timers


@dataclass
class TimersResult:
    scheduled: int
    fired: int
    cancelled: int
    schedule_s: float  # the call_at calls and the up-front cancels
    total_s: float  # first call_at to the last timer's callback
    last_late_s: float  # how late the last timer ran
    cpu_s: float  # process CPU time (all threads) over total_s


async def spread_timers(
    n: int,
    *,
    delay: float,
    spread: float,
    cancel_fraction: float = 0.1,
    cancel_from_callbacks_every: int = 50,
    seed: int = 0,
) -> TimersResult:
    """Schedule ``n`` timers (``loop.call_at``) in a random order, with distinct
    deadlines spread evenly over [``delay``, ``delay + spread``] s from the start;
    cancel a random ``cancel_fraction`` of them before any fires, and let every
    ``cancel_from_callbacks_every``-th timer's callback cancel the next one.
    All are pending at once (nothing runs while they are being scheduled).

    Checked: the timers that were not cancelled fired exactly once each and in
    the order of their deadlines, none before its deadline (less the loop's clock
    resolution, as asyncio allows), and no cancelled one fired.
    """
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    cancel_up_front = set(rng.sample(range(n), int(n * cancel_fraction)))
    # Which timers the callbacks cancel: a timer k that fires with
    # k % every == 0 cancels k + 1 (later deadline, so still pending).
    expected: list[int] = []
    cancelled_by_callback: set[int] = set()
    for k in range(n):
        if k in cancel_up_front or k in cancelled_by_callback:
            continue
        expected.append(k)
        if cancel_from_callbacks_every and k % cancel_from_callbacks_every == 0 and k + 1 < n:
            if k + 1 not in cancel_up_front:
                cancelled_by_callback.add(k + 1)
    if not expected:
        raise ValueError("every timer would be cancelled")
    last = expected[-1]
    fired: list[int] = []
    early: list[int] = []  # the first few timers that fired early; ``n_early`` counts all
    n_early = 0
    handles: list[asyncio.TimerHandle | None] = [None] * n
    done: asyncio.Future[float] = loop.create_future()
    resolution = loop._clock_resolution  # type: ignore[attr-defined]
    step = spread / n
    time_fn = loop.time
    every = cancel_from_callbacks_every

    def fire(k: int) -> None:
        nonlocal n_early
        if time_fn() < base + delay + (k + 0.5) * step - resolution:
            n_early += 1
            if len(early) < 3:
                early.append(k)
        fired.append(k)
        if every and k % every == 0 and k + 1 < n:
            handle = handles[k + 1]
            if handle is not None:
                handle.cancel()
        if k == last:
            done.set_result(time.perf_counter())

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    base = loop.time()
    call_at = loop.call_at
    for k in order:
        handles[k] = call_at(base + delay + (k + 0.5) * step, fire, k)
    for k in cancel_up_front:
        handle = handles[k]
        assert handle is not None
        handle.cancel()
        handles[k] = None
    t1 = time.perf_counter()
    if fired:
        raise LoadCheckError("load_timers: a timer fired while they were being scheduled")
    try:
        t_last = await asyncio.wait_for(asyncio.shield(done), delay + spread + 60)
    except asyncio.TimeoutError:
        _fail("load_timers", [
            f"{len(fired)} of {len(expected)} timers fired within 60 s of the last deadline"
        ])
        raise
    cpu1 = time.process_time()
    last_late = loop.time() - (base + delay + (last + 0.5) * step)
    # Cancelled timers whose deadlines come after the last expected one: give
    # them the chance to fire (wrongly) before checking.
    remaining = base + delay + spread + 2 * resolution - loop.time()
    if remaining > 0:
        await asyncio.sleep(remaining)
    handles.clear()
    problems: list[str] = []
    if fired != expected:
        got = set(fired)
        lost = len(set(expected) - got)
        dup = len(fired) - len(got)
        wrongly = len(got - set(expected))
        reordered = sum(1 for a, b in itertools.pairwise(fired) if b <= a)
        problems.append(
            f"{len(fired)} fired, expected {len(expected)}: {lost} lost, {dup} duplicated, "
            f"{wrongly} cancelled ones fired, {reordered} out of deadline order"
        )
    if n_early:
        problems.append(f"{n_early} timers fired before their deadline (e.g. {early})")
    _fail("load_timers", problems)
    return TimersResult(
        scheduled=n,
        fired=len(fired),
        cancelled=n - len(expected),
        schedule_s=t1 - t0,
        total_s=t_last - t0,
        last_late_s=last_late,
        cpu_s=cpu1 - cpu0,
    )


# ------------------------------------------------------- call_soon_threadsafe


@dataclass
class FloodResult:
    calls: int
    total_s: float  # first post to the last callback
    post_s: float  # first post to the last post returning (all threads)
    cpu_s: float  # process CPU time (all threads) over total_s
    max_backlog: int  # most callbacks seen queued in loop._ready at once (sampled)
    backlog_samples: int


async def threadsafe_flood(
    threads: int,
    per_thread: int,
    *,
    sample_every: float = 0.005,
    timeout: float = 60.0,
    pin: Callable[[int], None] | None = None,
) -> FloodResult:
    """``threads`` worker threads each call ``loop.call_soon_threadsafe(cb, tid, i)``
    for i in 0..per_thread-1 as fast as they can, all at once, while the loop runs.
    A sampler thread reads ``len(loop._ready)`` every ``sample_every`` s: how far
    the workers got ahead of the loop (every stdlib loop, and the guest loop, keeps
    its ready callbacks in that deque).

    Checked: every callback ran exactly once, on the loop's thread, and each
    thread's callbacks ran in the order that thread posted them.
    ``pin(index)`` (optional) runs first in every worker thread.
    """
    loop = asyncio.get_running_loop()
    total = threads * per_thread
    nxt = [0] * threads  # per thread: the next i expected
    bad_order: list[str] = []  # the first few, with a count of all in ``misordered``
    misordered = 0
    runs = 0
    wrong_thread = 0
    finished = 0
    loop_thread = threading.get_ident()
    done: asyncio.Future[float] = loop.create_future()
    get_ident = threading.get_ident
    last_i = per_thread - 1

    def cb(tid: int, i: int) -> None:
        nonlocal runs, misordered, wrong_thread, finished
        runs += 1
        if nxt[tid] != i:
            misordered += 1
            if len(bad_order) < 5:
                bad_order.append(f"thread {tid}: got #{i}, expected #{nxt[tid]}")
        nxt[tid] = i + 1
        if get_ident() != loop_thread:
            wrong_thread += 1
        if i == last_i:
            finished += 1
            if finished == threads:
                done.set_result(time.perf_counter())

    go = threading.Event()
    stop_sampling = threading.Event()
    post_end = [0.0] * threads
    failures: list[BaseException] = []

    def worker(tid: int) -> None:
        try:
            if pin is not None:
                pin(tid)
            post = loop.call_soon_threadsafe
            go.wait()
            for i in range(per_thread):
                post(cb, tid, i)
            post_end[tid] = time.perf_counter()
        except BaseException as exc:
            failures.append(exc)

    samples = 0
    max_backlog = 0
    ready = loop._ready  # type: ignore[attr-defined]

    def sampler() -> None:
        nonlocal samples, max_backlog
        go.wait()
        while not stop_sampling.wait(sample_every):
            n = len(ready)
            samples += 1
            if n > max_backlog:
                max_backlog = n

    workers = [threading.Thread(target=worker, args=(t,), name=f"flood-{t}")
               for t in range(threads)]
    watcher = threading.Thread(target=sampler, name="flood-sampler")
    for t in workers:
        t.start()
    watcher.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    go.set()
    try:
        t_last = await asyncio.wait_for(asyncio.shield(done), timeout)
        cpu1 = time.process_time()
    except asyncio.TimeoutError:
        raise LoadCheckError(
            f"load_threadsafe: {runs} of {total} callbacks ran within {timeout:.0f} s "
            f"(next expected per thread: {nxt}; worker errors: {failures!r})"
        ) from None
    finally:
        stop_sampling.set()
        go.set()
        watcher.join()
        for t in workers:
            t.join()
    # One more iteration: a duplicate queued behind the last callback runs now.
    await asyncio.sleep(0)
    problems: list[str] = []
    if failures:
        problems.append(f"worker threads raised: {failures!r}")
    if runs != total:
        problems.append(f"{runs} callbacks ran, expected {total}")
    if nxt != [per_thread] * threads:
        problems.append(f"next expected per thread: {nxt}, expected {per_thread} each")
    if misordered:
        problems.append(f"{misordered} callbacks out of their thread's order")
    problems += bad_order
    if wrong_thread:
        problems.append(f"{wrong_thread} callbacks ran outside the loop's thread")
    _fail("load_threadsafe", problems)
    return FloodResult(
        calls=total,
        total_s=t_last - t0,
        post_s=max(post_end) - t0,
        cpu_s=cpu1 - cpu0,
        max_backlog=max_backlog,
        backlog_samples=samples,
    )


# ---------------------------------------------------- the bench entry points

_MB = 1e6


def _memory_metrics(ctx: Ctx, rss_start: int) -> Metrics:
    peak = peak_rss_bytes()
    ctx.extra["rss_start_mb"] = rss_start / _MB
    return {"rss": peak / _MB, "rss_growth": max(0, peak - rss_start) / _MB}


async def load_sockets(ctx: Ctx) -> Metrics:
    s = ctx.sizes
    needed = 2 * s.load_connections + 64
    ctx.extra["rlimit_nofile"] = raise_fd_limit(needed)
    await echo_sockets(50, 5, s.load_message, seed=ctx.seed)  # warm-up
    rss_start = rss_bytes()
    r = await echo_sockets(
        s.load_connections, s.load_trips, s.load_message, seed=ctx.seed
    )
    if r.sockets_open and r.sockets_open < 2 * r.connections:
        raise LoadCheckError(
            f"load_sockets: only {r.sockets_open} descriptors open with every "
            f"connection up, expected at least {2 * r.connections}"
        )
    ctx.extra.update(sockets_open=r.sockets_open, bytes_echoed=r.bytes_echoed)
    return {
        "time": r.total_s,
        "connect": r.connect_s,
        "traffic": r.traffic_s,
        "close": r.close_s,
        "cpu": r.cpu_s,
        **_memory_metrics(ctx, rss_start),
    }


async def load_timers(ctx: Ctx) -> Metrics:
    s = ctx.sizes
    await spread_timers(2000, delay=0.01, spread=0.02, seed=ctx.seed)  # warm-up
    rss_start = rss_bytes()
    r = await spread_timers(
        s.load_timers, delay=s.load_timer_delay, spread=s.load_timer_spread, seed=ctx.seed
    )
    ctx.extra.update(fired=r.fired, cancelled=r.cancelled)
    return {
        "time": r.total_s,
        "schedule": r.schedule_s,
        "late": r.last_late_s,
        "cpu": r.cpu_s,
        **_memory_metrics(ctx, rss_start),
    }


async def load_threadsafe(ctx: Ctx) -> Metrics:
    s = ctx.sizes

    def pin(_: int) -> None:
        ctx.pin_helper()

    await threadsafe_flood(s.load_threads, 1000, pin=pin)  # warm-up
    rss_start = rss_bytes()
    r = await threadsafe_flood(s.load_threads, s.load_calls // s.load_threads, pin=pin)
    ctx.extra.update(calls=r.calls, backlog_samples=r.backlog_samples)
    return {
        "time": r.total_s,
        "post": r.post_s,
        "cpu": r.cpu_s,
        "backlog": float(r.max_backlog),
        **_memory_metrics(ctx, rss_start),
    }
