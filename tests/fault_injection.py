"""Fault injection into the engine: ``python -m tests.fault_injection [--family F] [--loop L]``.

Every case runs one ``asyncio_guest.run(scenario)`` with one fault injected,
and checks that the run ends with a clear outcome, within a bounded time,
with no thread or file descriptor left and the process state restored
(running loop, SIGINT handler, signal wakeup fd).

Families of faults:

* ``lines``: for every line of asyncio-guest's own code that the scenario runs
  (the tick, the backend wait and post, the hand-over, finalize, shutdown, the
  loop's iteration, the reference host, and on Windows the Win32 and IOCP
  paths), a fault hits that line the first time it runs: once an
  ``InjectedFault`` raised there (a bug), and on the main thread once a
  Ctrl+C landing there (the SIGINT handler installed at that moment is called
  with that frame, as Python's signal machinery does: the run's own defers it,
  Python's default raises ``KeyboardInterrupt`` there). Lines that cannot
  raise by themselves (a bare ``try:``/``else:``/``finally:``, ``pass``, a
  docstring) get only the Ctrl+C.
* ``primitives``: the host's ``run_sync_soon_threadsafe`` and
  ``run_sync_soon_not_threadsafe`` raise on their k-th call, for every k the
  scenario makes.
* ``joins``: joining a backend thread raises, on each such join in turn.
* ``done``: ``done_callback`` raises (an exception, and KeyboardInterrupt).
* ``switches``: no exception: a thread is held at one line while the others
  run on. For every line of the engine that a racing scenario runs (two
  workers waking the host while the backend's wait returns every
  millisecond, on the backend thread's wait), the first thread to reach it
  waits there until the other threads have run a few hundred lines of the
  engine, or none for 5 ms (they wait for it), at most 0.2 s: a thread
  switch at that point, made to last. The
  run must still end with its result, no wake-up lost (a worker waits at
  most 5 s for its callback) and no abandonment reported. This found a
  worker that set ``posted`` before taking the run's token.

A clear outcome is: the scenario's own result (only where the fault hit
code whose failure is designed to be retried or reported elsewhere: a host
primitive retried from the backend thread), the injected exception itself,
``KeyboardInterrupt`` for an injected ``KeyboardInterrupt``, or
``asyncio_guest.InternalError`` whose cause chain holds the injected
exception. Anything else, a hang (faulthandler's watchdog dumps the stacks and
exits 3), or a leak fails the case. The last line printed is the summary:
``fault injection: <family>: N points, C cases, F failed``.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import faulthandler
import functools
import gc
import linecache
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import asyncio_guest

from . import sampling

PACKAGE_DIR = os.path.dirname(os.path.abspath(asyncio_guest.__file__)) + os.sep
CASE_TIMEOUT = 10.0  # a case takes ~50 ms; this long means it hung
THREAD_TIMEOUT = 3.0  # a thread still alive this long after its run ended is a leak
EXPECTED = "scenario result"


class InjectedFault(Exception):
    """The exception the suite raises where asyncio-guest's own code runs."""


# ------------------------------------------------------------------ scenario


def _echo_peer(sock: socket.socket) -> None:
    with sock:
        while True:
            try:
                data = sock.recv(65536)
                if not data:
                    return
                sock.sendall(data)
            except OSError:
                return


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if kind in ("default", "win32"):
        return None
    if kind == "select":
        return lambda: asyncio_guest.GuestSelectorEventLoop(selectors.SelectSelector())
    if kind == "proactor":
        return asyncio_guest.GuestProactorEventLoop  # type: ignore[attr-defined,no-any-return]
    raise ValueError(kind)


def run_scenario(kind: str, host: asyncio_guest.ReferenceHost | None = None) -> str:
    """What every case runs: I/O with a peer thread, timers, a worker thread's
    ``call_soon_threadsafe``, ``to_thread``, and a host timer; on the reference
    host, or with ``kind`` ``"win32"`` (Windows only) under ``win32.run``."""
    if kind == "win32":
        return _win32_scenario()
    a, b = socket.socketpair()
    peer = threading.Thread(target=_echo_peer, args=(b,), name="echo peer")
    peer.start()
    the_host = host
    try:
        if the_host is None:
            the_host = asyncio_guest.ReferenceHost()

        async def main() -> str:
            loop = asyncio.get_running_loop()
            reader, writer = await asyncio.open_connection(sock=a)
            for _ in range(3):
                writer.write(b"ping" * 10)
                await writer.drain()
                assert await reader.readexactly(40) == b"ping" * 10
                await asyncio.sleep(0.001)
            got = loop.create_future()
            worker = threading.Thread(
                target=lambda: loop.call_soon_threadsafe(got.set_result, "from a worker")
            )
            worker.start()
            assert await got == "from a worker"
            await asyncio.to_thread(worker.join)
            host_timer = loop.create_future()
            the_host.call_later(0.001, lambda: host_timer.done() or host_timer.set_result(None))
            await host_timer
            writer.close()
            await writer.wait_closed()
            return EXPECTED

        host_now = the_host
        return asyncio_guest.run(main, host=host_now, loop_factory=loop_factory(kind))  # type: ignore[no-any-return]
    finally:
        if host is None and the_host is not None:
            # The library's close is idempotent: a fault inside it is
            # finished by closing again (as asyncio_guest.run does).
            try:
                the_host.close()
            except BaseException:
                the_host.close()
        a.close()
        peer.join(CASE_TIMEOUT)


def _win32_scenario() -> str:
    """The scenario's I/O, timers and threads under ``win32.run`` (the Win32 host,
    its message window and wake queue, and the IOCP proactor loop)."""
    from asyncio_guest import win32

    a, b = socket.socketpair()
    peer = threading.Thread(target=_echo_peer, args=(b,), name="echo peer")
    peer.start()
    try:

        async def main() -> str:
            loop = asyncio.get_running_loop()
            reader, writer = await asyncio.open_connection(sock=a)
            for _ in range(3):
                writer.write(b"ping" * 10)
                await writer.drain()
                assert await reader.readexactly(40) == b"ping" * 10
                await asyncio.sleep(0.001)
            got = loop.create_future()
            worker = threading.Thread(
                target=lambda: loop.call_soon_threadsafe(got.set_result, "from a worker")
            )
            worker.start()
            assert await got == "from a worker"
            await asyncio.to_thread(worker.join)
            writer.close()
            await writer.wait_closed()
            return EXPECTED

        return win32.run(main)
    finally:
        a.close()
        peer.join(CASE_TIMEOUT)


# --------------------------------------------------------------- line faults


_LOOP_API_FILE = os.path.join(PACKAGE_DIR, "_core", "guest_loop.py")


_ENGINE_DIR = os.path.join(PACKAGE_DIR, "_core") + os.sep
_WINDOWS_HOST = os.path.join(PACKAGE_DIR, "win32.py")
_ENTRY_FILE = os.path.join(PACKAGE_DIR, "_core", "entry.py")


def _in_scope(code: types.CodeType) -> bool:
    """The engine: ``asyncio_guest/_core`` (tick, backend thread, hand-over,
    lifecycle, the loop's iteration and waits, wake queue, reference host) and
    the Win32 host. Not the asyncio API a guest loop overrides (``call_soon``,
    ``call_at``, ``stop``, reader/writer registration...): those raise into
    their caller, as any loop's would. Not the one-call entries'
    (``entry.run_beside``, ``win32.run``) own lines either: their last
    clean-up (closing the host, giving SIGINT back) is the outermost code
    there is, and a fault at its first line skips it whatever its shape. The
    steps they call (``RunLifecycle``, the host's ``close``) are in scope."""
    filename = code.co_filename
    if filename == _LOOP_API_FILE:
        name = code.co_name
        return name.startswith("_guest_") or name in ("close", "run_forever")
    if filename == _WINDOWS_HOST:
        return code.co_name != "run"
    if filename == _ENTRY_FILE:
        return code.co_name != "run_beside"
    return filename.startswith(_ENGINE_DIR)


@functools.cache
def _inert_lines(filename: str) -> frozenset[int]:
    """Lines whose statement cannot raise by itself (a bare try/else/finally, pass, docstring)."""
    try:
        tree = ast.parse("".join(linecache.getlines(filename)))
    except SyntaxError:
        return frozenset()
    inert: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Pass) or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        ):
            inert.add(node.lineno)
        if isinstance(node, ast.Try):
            inert.add(node.lineno)  # the "try:" line (its body starts below)
            for body in (node.orelse, node.finalbody):
                if body:
                    inert.add(body[0].lineno - 1)  # "else:" / "finally:" (when on its own line)
    return frozenset(inert)


Point = tuple[str, int, str]  # (filename, line, "main" or "other" thread)
Case = Callable[[], tuple[str, bool]]  # -> (outcome check, whether the fault was reached)
Cases = Iterator[tuple[str, Case, type[BaseException]]]


class LineTracer:
    """Collect the lines of asyncio-guest run per thread kind, or raise at one of them."""

    def __init__(self, target: Point | None = None, exc: type[BaseException] = InjectedFault):
        self.target = target
        self.exc = exc
        self.fired = False
        self.seen: set[Point] = set()
        self._main = threading.main_thread()

    def install(self) -> None:
        threading.settrace(self._global)
        sys.settrace(self._global)

    def uninstall(self) -> None:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]

    def _global(self, frame: types.FrameType, event: str, arg: object) -> Any:
        return self._local if _in_scope(frame.f_code) else None

    def _local(self, frame: types.FrameType, event: str, arg: object) -> Any:
        if event != "line":
            return self._local
        kind = "main" if threading.current_thread() is self._main else "other"
        point = (frame.f_code.co_filename, frame.f_lineno, kind)
        if self.target is None:
            self.seen.add(point)
        elif not self.fired and point == self.target:
            self.fired = True
            if self.exc is KeyboardInterrupt:
                # A Ctrl+C landing here: whatever SIGINT handler is installed
                # decides (the run's own defers it; Python's default raises).
                handler: Any = signal.getsignal(signal.SIGINT)
                if callable(handler):
                    handler(signal.SIGINT, frame)
                return self._local
            raise self.exc(f"injected at {_where(point)}")
        return self._local


def _where(point: Point) -> str:
    filename, line, kind = point
    rel = filename[len(PACKAGE_DIR):] if filename.startswith(PACKAGE_DIR) else filename
    return f"{rel}:{line} ({kind} thread)"


def points_run_by(scenario: Callable[[], str]) -> list[Point]:
    """The engine's lines ``scenario`` runs, per thread kind (it must succeed)."""
    tracer = LineTracer()
    tracer.install()
    try:
        assert scenario() == EXPECTED
    finally:
        tracer.uninstall()
    return sorted(tracer.seen)


def line_cases(kind: str) -> Cases:
    for point in points_run_by(lambda: run_scenario(kind)):
        filename, line, thread_kind = point
        exc_types: list[type[BaseException]] = []
        if line not in _inert_lines(filename):
            exc_types.append(InjectedFault)
        if thread_kind == "main":
            exc_types.append(KeyboardInterrupt)
        for exc_type in exc_types:

            def case(
                point: Point = point, exc_type: type[BaseException] = exc_type
            ) -> tuple[str, bool]:
                injector = LineTracer(point, exc_type)
                injector.install()
                try:
                    return _outcome(lambda: run_scenario(kind), exc_type), injector.fired
                finally:
                    injector.uninstall()

            yield f"{exc_type.__name__} at {_where(point)}", case, exc_type


# ------------------------------------------------------------ other families


class CountingHost(asyncio_guest.ReferenceHost):
    """A reference host whose primitives raise on their k-th call (k counted over both)."""

    def __init__(self, fail_at: int | None) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.calls = 0
        self._count_lock = threading.Lock()

    def _maybe_fail(self) -> None:
        with self._count_lock:
            self.calls += 1
            fail = self.calls == self.fail_at
        if fail:
            raise InjectedFault(f"host primitive failed on call {self.calls}")

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        self._maybe_fail()
        super().run_sync_soon_threadsafe(fn)

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None:
        self._maybe_fail()
        super().run_sync_soon_not_threadsafe(fn)


def primitive_cases(kind: str) -> Cases:
    probe = CountingHost(None)
    try:
        assert run_scenario(kind, probe) == EXPECTED
    finally:
        probe.close()
    for k in range(1, probe.calls + 1):

        def case(k: int = k) -> tuple[str, bool]:
            host = CountingHost(k)
            try:
                return _outcome(lambda: run_scenario(kind, host), InjectedFault), host.calls >= k
            finally:
                host.close()

        yield f"host primitive raising on call {k}", case, InjectedFault


@contextlib.contextmanager
def _backend_thread_wait() -> Iterator[None]:
    """Runs whose wait is the backend thread's: the zero-thread wait joins no
    thread, so the ``joins`` family would inject nothing there."""
    before = os.environ.get("ASYNCIO_GUEST_WAIT")
    os.environ["ASYNCIO_GUEST_WAIT"] = "thread"
    try:
        yield
    finally:
        if before is None:
            del os.environ["ASYNCIO_GUEST_WAIT"]
        else:
            os.environ["ASYNCIO_GUEST_WAIT"] = before


def join_cases(kind: str) -> Cases:
    stock_join = threading.Thread.join
    joins = [0]
    fail_at = [0]

    def join(self: threading.Thread, timeout: float | None = None) -> None:
        if self.name.startswith("asyncio-guest backend"):
            joins[0] += 1
            if joins[0] == fail_at[0]:
                raise InjectedFault(f"join {joins[0]} failed")
        stock_join(self, timeout)

    threading.Thread.join = join  # type: ignore[method-assign]
    try:
        with _backend_thread_wait():
            assert run_scenario(kind) == EXPECTED
        total = joins[0]
    finally:
        threading.Thread.join = stock_join  # type: ignore[method-assign]
    for k in range(1, total + 1):

        def case(k: int = k) -> tuple[str, bool]:
            joins[0] = 0
            fail_at[0] = k
            threading.Thread.join = join  # type: ignore[method-assign]
            try:
                with _backend_thread_wait():
                    outcome_seen = _outcome(lambda: run_scenario(kind), InjectedFault)
                return outcome_seen, joins[0] >= k
            finally:
                threading.Thread.join = stock_join  # type: ignore[method-assign]

        yield f"backend join {k} raising", case, InjectedFault


def done_cases(kind: str) -> Cases:
    for exc_type in (InjectedFault, KeyboardInterrupt):

        def case(exc_type: type[BaseException] = exc_type) -> tuple[str, bool]:
            host = asyncio_guest.ReferenceHost()
            delivered: list[object] = []

            def start_and_run() -> str:
                async def main() -> str:
                    await asyncio.sleep(0.001)
                    return EXPECTED

                def done(out: object) -> None:
                    delivered.append(out)
                    raise exc_type("done_callback failed")

                asyncio_guest.start_guest_run(
                    main,
                    run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
                    fd_watcher=host,
                    done_callback=done,
                    loop_factory=loop_factory(kind),
                )
                host.run()
                return "host loop returned"

            try:
                what = _outcome(start_and_run, exc_type)
                if len(delivered) != 1:
                    what = f"done_callback called {len(delivered)} times"
                return what, True
            finally:
                host.close()

        yield f"done_callback raising {exc_type.__name__}", case, exc_type


# ------------------------------------------------------------ thread switches


SWITCH_ROUNDS = 8  # per worker
SWITCH_PAUSE = 0.2  # a held thread waits at most this long for the others
SWITCH_LINES = 300  # lines of the engine the others run before it goes on
SWITCH_QUIET = 0.005  # ... or until they have run none for this long
SWITCH_WAIT = 5.0  # a worker's callback not run within this is a lost wake-up


async def _racing_main() -> str:
    loop = asyncio.get_running_loop()
    lost: list[int] = []

    def work() -> None:
        for n in range(SWITCH_ROUNDS):
            answered = threading.Event()
            loop.call_soon_threadsafe(answered.set)
            if not answered.wait(SWITCH_WAIT):
                lost.append(n)
                return

    workers = [threading.Thread(target=work, name=f"waker {i}") for i in range(2)]
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        await asyncio.sleep(0.001)
    return f"a wake-up was lost (round {lost[0]})" if lost else EXPECTED


def racing_scenario(kind: str) -> str:
    """Two workers wake the host (``call_soon_threadsafe``, then wait for the
    callback) while the guest sleeps a millisecond at a time, so the
    backend's wait keeps returning: posts from workers, from the backend and
    from the host's own tick meet. On the backend thread's wait (where the
    threads hand the token and ``posted`` around); on the reference host, or
    under ``win32.run`` for ``kind`` ``"win32"``."""
    with _backend_thread_wait():
        if kind == "win32":
            from asyncio_guest import win32

            return win32.run(_racing_main)
        host = asyncio_guest.ReferenceHost()
        try:
            return asyncio_guest.run(  # type: ignore[no-any-return]
                _racing_main, host=host, loop_factory=loop_factory(kind)
            )
        finally:
            host.close()


class SwitchTracer(LineTracer):
    """Hold the first thread that reaches ``target`` there until the other
    threads have run ``SWITCH_LINES`` lines of the engine, or none for
    ``SWITCH_QUIET``, or ``SWITCH_PAUSE`` has passed."""

    def __init__(self, target: Point) -> None:
        super().__init__(target)
        self.held: threading.Thread | None = None
        self.others_ran = 0

    def _local(self, frame: types.FrameType, event: str, arg: object) -> Any:
        if event != "line":
            return self._local
        me = threading.current_thread()
        if self.held is not None and me is not self.held:
            self.others_ran += 1  # under the GIL; a count missed now and then is harmless
            return self._local
        kind = "main" if me is self._main else "other"
        if not self.fired and (frame.f_code.co_filename, frame.f_lineno, kind) == self.target:
            self.fired = True
            self.held = me
            now = time.monotonic()
            give_up, quiet_since, ran = now + SWITCH_PAUSE, now, 0
            while self.others_ran < SWITCH_LINES and now < give_up:
                if self.others_ran != ran:
                    quiet_since, ran = now, self.others_ran
                elif now - quiet_since > SWITCH_QUIET:
                    break  # the others wait for this thread
                time.sleep(0.0005)
                now = time.monotonic()
            self.held = None
        return self._local


def switch_cases(kind: str) -> Cases:
    for point in points_run_by(lambda: racing_scenario(kind)):

        def case(point: Point = point) -> tuple[str, bool]:
            holder = SwitchTracer(point)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                holder.install()
                try:
                    what = _outcome(lambda: racing_scenario(kind), InjectedFault)
                finally:
                    holder.uninstall()
            abandoned = [w for w in caught if "abandoned" in str(w.message)]
            if abandoned and what == "ok":
                what = f"reported abandoned: {abandoned[0].message}"
            return what, holder.fired

        yield f"thread held at {_where(point)}", case, InjectedFault


FAMILIES = {
    "lines": line_cases,
    "primitives": primitive_cases,
    "joins": join_cases,
    "done": done_cases,
    "switches": switch_cases,
}


# ------------------------------------------------------------------ checking


def _outcome(run: Callable[[], str], injected: type[BaseException]) -> str:
    """``"ok"`` when the run ended clearly (see module doc), else what went wrong."""
    try:
        result = run()
    except BaseException as exc:
        chain: list[BaseException] = []
        cur: BaseException | None = exc
        while cur is not None and len(chain) < 20:
            chain.append(cur)
            cur = cur.__cause__ or cur.__context__
        if isinstance(exc, injected) or (
            isinstance(exc, asyncio_guest.InternalError)
            and any(isinstance(e, injected) for e in chain)
        ):
            return "ok"
        if injected is KeyboardInterrupt and isinstance(exc, KeyboardInterrupt):
            return "ok"
        return f"raised {exc!r}"
    return "ok" if result == EXPECTED else f"returned {result!r}"


def _fds() -> set[int]:
    if not sys.platform.startswith("linux"):
        return set()  # (under Wine, /proc/self/fd lists Wine's own Linux descriptors)
    try:
        return {int(n) for n in os.listdir("/proc/self/fd")}
    except OSError:
        return set()


def _wakeup_fd() -> int:
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


def _print_hand_over_state() -> None:
    """A case is about to be called hung: print the state of every guest run's
    hand-over, every reference host and every run's lifecycle, beside the
    stacks faulthandler prints next (stacks alone do not tell a lost wake-up
    from a run that ended without telling its host)."""
    from asyncio_guest._core.lifecycle import RunLifecycle

    lines = []
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.AbstractEventLoop):
            engine = getattr(getattr(obj, "_guest", None), "engine", None)
            if engine is None:
                continue
            ch = engine._ch
            lines.append(
                f"  loop {obj!r}: posted={ch.posted} state={ch.state.name} "
                f"result={ch.result is not None} closing={ch.closing} "
                f"backend holds token={ch.token is not None} "
                f"token alive={engine._token_ref() is not None} finished={engine._finished} "
                f"in_tick={engine._in_tick} interrupt_pending={engine.interrupt_pending} "
                f"ready={len(obj._ready)} timers={len(obj._scheduled)}"  # type: ignore[attr-defined]
            )
        elif isinstance(obj, asyncio_guest.ReferenceHost):
            lines.append(
                f"  reference host: queued={len(obj._queue)} sleeping={obj._sleeping} "
                f"woken={obj._woken} stopped={obj._stopped} timers={len(obj._timers)}"
            )
        elif isinstance(obj, RunLifecycle):
            lines.append(
                f"  run: delivered={obj._delivered} interrupts={obj.interrupts} "
                f"main={obj.main_task!r}"
            )
    print("hand-over state before the hang dump:", *lines, sep="\n", flush=True)


def check_case(name: str, case: Callable[[], tuple[str, bool]]) -> str | None:
    """Run one case; return why it failed, or None."""
    threads = set(threading.enumerate())
    fds = _fds()
    wakeup = _wakeup_fd()
    state_dump = threading.Timer(CASE_TIMEOUT - 1, _print_hand_over_state)
    state_dump.daemon = True
    state_dump.start()
    threads.add(state_dump)  # cancelled below; not a thread the case left
    faulthandler.dump_traceback_later(CASE_TIMEOUT, exit=True)
    try:
        what, fired = case()
    finally:
        faulthandler.cancel_dump_traceback_later()
        state_dump.cancel()
    # An object whose constructor failed releases what it made when it is
    # collected (its finalizer): collect before counting descriptors.
    gc.collect()
    problems = []
    if what != "ok":
        problems.append(what)
    for thread in set(threading.enumerate()) - threads:
        thread.join(THREAD_TIMEOUT)
        if thread.is_alive():
            problems.append(f"thread left: {thread.name}")
    leaked = _fds() - fds
    if leaked:
        problems.append(f"fds left: {sorted(leaked)}")
    if asyncio._get_running_loop() is not None:
        problems.append("running loop left set")
        asyncio.events._set_running_loop(None)
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        problems.append(f"SIGINT handler left: {signal.getsignal(signal.SIGINT)!r}")
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if _wakeup_fd() != wakeup:
        problems.append("signal wakeup fd not restored")
        signal.set_wakeup_fd(wakeup)
    if not fired:
        return None  # the fault's point was not reached this time: nothing to judge
    return "; ".join(problems) or None


def child(
    family: str, kind: str, start: int, match: str | None, every: int, offset: int
) -> int:
    """Run the family's cases from index ``start``; one line per case on stdout."""
    assert run_scenario(kind) == EXPECTED  # warm up: imports, first-use allocations
    for index, (name, case, _exc) in enumerate(FAMILIES[family](kind)):
        if index < start or (match and match not in name):
            continue
        if not sampling.chosen(index, every, offset):
            continue
        print(f"START {index} {name}", flush=True)
        why = check_case(name, case)
        print(f"DONE {index} {why or 'ok'}", flush=True)
    print("END", flush=True)
    return 0


def run_family(
    family: str, kind: str, match: str | None, verbose: bool, every: int = 1, offset: int = 0
) -> tuple[int, int, int]:
    """Parent: run the family in child processes, restarting past a case that hung.

    Returns (points, cases, failed)."""
    start = 0
    names: set[str] = set()
    cases = failed = 0
    while True:
        cmd = [sys.executable, "-m", "tests.fault_injection", "--child", family,
               "--loop", kind, "--start", str(start)]
        if match:
            cmd += ["--match", match]
        cmd += ["--every", str(every), "--offset", str(offset)]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        assert proc.stdout is not None
        current: tuple[int, str] | None = None
        ended = False
        tail: list[str] = []
        for line in proc.stdout:
            if line.startswith("START "):
                index, name = line[6:].rstrip("\n").split(" ", 1)
                current = (int(index), name)
                cases += 1
                names.add(name.split(" at ", 1)[-1])
                tail = []
                if verbose:
                    print(f"  {name} ...", file=sys.stderr, flush=True)
            elif line.startswith("DONE ") and current is not None:
                why = line[5:].rstrip("\n").split(" ", 1)[1]
                if why != "ok":
                    failed += 1
                    print(f"FAILED {family}: {current[1]}: {why}", flush=True)
                    if verbose:
                        print("".join(tail[-40:]), file=sys.stderr, flush=True)
                current = None
            elif line.startswith("END"):
                ended = True
            else:
                tail.append(line)
        proc.wait()
        if ended:
            return len(names), cases, failed
        if current is None:
            print(f"FAILED {family}: the child died outside a case:\n{''.join(tail[-60:])}")
            return len(names), cases, failed + 1
        failed += 1
        stacks = "".join(tail[-60:])
        print(f"FAILED {family}: {current[1]}: hung or crashed (exit {proc.returncode}):\n{stacks}",
              flush=True)
        start = current[0] + 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--family", choices=sorted(FAMILIES), action="append")
    ap.add_argument(
        "--loop", choices=("default", "select", "proactor", "win32"), default="default",
        help="the scenario's loop; win32: the Win32 host (win32.run) on the proactor",
    )
    ap.add_argument("--match", help="only cases whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true")
    every, offset = sampling.from_env()
    ap.add_argument("--every", type=int, default=every,
                    help=f"run every N-th case of each family only (default: {sampling.ENV} or 1)")
    ap.add_argument("--offset", type=int, default=offset,
                    help="with --every: start at this case (default: 0)")
    ap.add_argument("--child", choices=sorted(FAMILIES), help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child, args.loop, args.start, args.match, args.every, args.offset)
    failed_total = 0
    for family in args.family or sorted(FAMILIES):
        points, cases, failed = run_family(
            family, args.loop, args.match, args.verbose, args.every, args.offset
        )
        failed_total += failed
        print(
            f"fault injection: {family} ({args.loop} loop): {points} points, "
            f"{cases} cases, {failed} failed; {sampling.describe(args.every, args.offset)}",
            flush=True,
        )
    return 1 if failed_total else 0


if __name__ == "__main__":
    sys.exit(main())
