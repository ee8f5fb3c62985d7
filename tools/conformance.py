#!/usr/bin/env python3
"""Run CPython's own ``test_asyncio`` on the plain loop and in guest mode, and compare.

Why: DESIGN.md's correctness bar is "CPython's test_asyncio, run through guest
mode, passes wherever it passes on the plain loop, and each difference is
explained". This is that gate.

How:

* Every ``test.test_asyncio.test_*`` module of the *running* interpreter is run
  twice, in a fresh subprocess per (module, mode): ``plain`` (stock asyncio)
  and ``guest`` (every selector loop, and on Windows every proactor (IOCP)
  loop, the tests create is an asyncio-guest loop, whose ``run_forever`` is
  driven by a reference host through the real backend thread). One
  subprocess per module and mode means a crash or a hang costs that module
  only; children run in parallel (``--jobs``).
* The child streams one JSON line per test to a file, so a child that dies or
  hangs still reports what it finished; the test that was running is recorded
  as ``crash``/``timeout`` (with the faulthandler dump) and the child is
  restarted on the rest of the module.
* A test that passes on plain but not in guest mode is a *regression* unless it
  is listed in ``tools/conformance_expected_failures.txt``. A regression is
  re-run once, alone, in a fresh guest subprocess before it counts (flaky
  tests are reported as such). A listed entry that applies to this Python and
  now passes in guest mode is *stale*. Either makes the exit status 1.
* Guest mode is checked to be real: the children count ``run_forever`` calls of
  guest loops (selector and proactor apart), of plain selector and proactor
  loops and of other loops (test doubles such as ``test_utils.TestLoop``
  legitimately stay plain).
* Windows: the same tool runs there (under Wine in CI: tools/windows/conformance.sh),
  given a ``test`` package on the path (the embeddable CPython has none).

The guest child is the one place where asyncio is patched (the library itself
never patches the standard library); see ``_install_guest_loops``.

Usage::

    python tools/conformance.py                       # all modules, both modes
    python tools/conformance.py --modules test_tasks,test_locks --jobs 2
    python tools/conformance.py --json out.json       # full per-test results
    python tools/conformance.py --list-only           # modules and test counts
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import faulthandler
import functools
import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

PACKAGE = "test.test_asyncio"
HERE = Path(__file__).resolve().parent
DEFAULT_EXPECTED = HERE / "conformance_expected_failures.txt"
MODES = ("plain", "guest")
PY_VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"

# Final per-test statuses (the child's vocabulary).
PASSED = "passed"  # success, or an expected failure (@unittest.expectedFailure)
FAILED = "failed"  # assertion failure, or an unexpected success
ERROR = "error"  # exception, including in setUp/tearDown/cleanups and fixtures
SKIPPED = "skipped"
CRASH = "crash"  # the child died while this test ran
TIMEOUT = "timeout"  # the test exceeded --test-timeout (or the module its budget)
BAD = frozenset({FAILED, ERROR, CRASH, TIMEOUT})

# Modules known to take longest go first so the pool drains evenly.
HEAVY_FIRST = (
    "test_tasks",
    "test_events",
    "test_subprocess",
    "test_ssl",
    "test_sslproto",
    "test_streams",
    "test_base_events",
    "test_sendfile",
    "test_sock_lowlevel",
    "test_unix_events",
    "test_taskgroups",
    "test_locks",
    "test_timeouts",
    "test_waitfor",
    "test_queues",
    "test_server",
    "test_runners",
)


# =====================================================================
# Child: runs one module (or some of its tests) in one mode
# =====================================================================


@dataclasses.dataclass
class RunCounts:
    """How many ``run_forever`` calls each kind of loop made in this child."""

    guest: int = 0  # guest loops (including converted ones), both kinds
    guest_proactor: int = 0  # of those, proactor (IOCP) guest loops; the rest are selector loops
    converted: int = 0  # of all guest runs, plain loops made guest when they first ran
    converted_proactor: int = 0  # of those, proactor loops
    plain_selector: int = 0  # plain selector loops with a real selector
    plain_proactor: int = 0  # plain proactor loops with a real IOCP proactor (Windows)
    mock_selector: int = 0  # selector loops whose selector is a test double
    other: int = 0  # neither (test_utils.TestLoop, proactor loops on a mock proactor)

    @property
    def guest_selector(self) -> int:
        return self.guest - self.guest_proactor


COUNTS = RunCounts()


@dataclasses.dataclass(frozen=True)
class StockLoops:
    """asyncio's own loop classes, as they are before guest mode rebinds any name."""

    selector: type  # asyncio.SelectorEventLoop
    proactor: type | None  # asyncio.ProactorEventLoop (Windows only)
    platform_events: Any  # asyncio.windows_events or asyncio.unix_events

    @classmethod
    def current(cls) -> StockLoops:
        import asyncio

        if sys.platform == "win32":
            from asyncio import windows_events as platform_events
        else:
            from asyncio import unix_events as platform_events
        return cls(
            selector=asyncio.SelectorEventLoop,
            proactor=vars(platform_events).get("ProactorEventLoop"),
            platform_events=platform_events,
        )


def _is_test_double(obj: object, real: type | tuple[type, ...]) -> bool:
    """``obj`` is not a real ``real`` (a ``Mock(spec=...)`` passes isinstance: excluded)."""
    from unittest import mock

    return not isinstance(obj, real) or isinstance(obj, mock.NonCallableMock)


def _install_run_counters(guest_mode: bool, stock_loops: StockLoops) -> None:
    """Wrap ``run_forever`` to count which kind of loop really ran.

    Installed in both modes, so that whatever the wrapper itself may change
    (one extra frame) is the same on both sides of the comparison. A guest
    loop's ``run_forever`` overrides the stock one, so one call is counted once.

    In guest mode this is also the catch-all for loops that were not made
    through a patched name (``BaseSelectorEventLoop()`` directly, a loop class
    captured before patching, say): if such a loop has a real ``selectors``
    selector or a real IOCP proactor, it is given its guest class
    (``as_guest_loop``) the first time it runs. Loops with a mocked selector or
    proactor stay plain: those tests inspect the stock iteration on purpose.

    Proactor loops: ``ProactorEventLoop.run_forever`` (Windows) does its own
    set-up around ``BaseEventLoop.run_forever``, so it is wrapped itself, and
    the base wrapper leaves the calls it makes uncounted. A bare
    ``BaseProactorEventLoop`` (test_proactor_events, on a mock proactor, on
    every platform) counts as ``other``.
    """
    import selectors
    from asyncio import base_events, proactor_events, selector_events

    stock = base_events.BaseEventLoop.run_forever
    convert: Callable[[Any], Any] | None = None
    if guest_mode:
        from asyncio_guest import as_guest_loop

        # Private, but the one class every guest loop class derives from
        # (GuestSelectorEventLoop, GuestProactorEventLoop and the classes
        # as_guest_loop makes).
        from asyncio_guest._core.guest_loop import GuestLoopMixin

        convert = as_guest_loop
        guest = GuestLoopMixin.run_forever
        base_proactor = proactor_events.BaseProactorEventLoop

        @functools.wraps(guest)
        def counted_guest(self: Any) -> None:
            if not self.is_closed():  # a closed loop only raises: not a run
                COUNTS.guest += 1
                if isinstance(self, base_proactor):
                    COUNTS.guest_proactor += 1
            return guest(self)

        GuestLoopMixin.run_forever = counted_guest  # type: ignore[method-assign]

    proactor_cls = stock_loops.proactor
    if proactor_cls is not None:
        iocp = stock_loops.platform_events.IocpProactor
        stock_proactor = proactor_cls.run_forever

        @functools.wraps(stock_proactor)
        def counted_proactor(self: Any) -> None:
            if self.is_closed():  # only raises "Event loop is closed": not a run
                return stock_proactor(self)  # type: ignore[no-any-return]
            if _is_test_double(getattr(self, "_proactor", None), iocp):
                COUNTS.other += 1
                return stock_proactor(self)  # type: ignore[no-any-return]
            if convert is not None:
                COUNTS.converted += 1
                COUNTS.converted_proactor += 1
                convert(self)
                return self.run_forever()  # type: ignore[no-any-return]
            COUNTS.plain_proactor += 1
            return stock_proactor(self)  # type: ignore[no-any-return]

        proactor_cls.run_forever = counted_proactor

    @functools.wraps(stock)
    def counted_stock(self: Any) -> None:
        if self.is_closed():  # only raises "Event loop is closed": not a run
            return stock(self)
        if isinstance(self, selector_events.BaseSelectorEventLoop):
            if _is_test_double(getattr(self, "_selector", None), selectors.BaseSelector):
                COUNTS.mock_selector += 1
                return stock(self)
            if convert is not None:
                COUNTS.converted += 1
                convert(self)
                return self.run_forever()  # type: ignore[no-any-return,unused-ignore]
            COUNTS.plain_selector += 1
        elif proactor_cls is not None and isinstance(self, proactor_cls):
            pass  # called by ProactorEventLoop.run_forever: counted there
        else:
            COUNTS.other += 1
        return stock(self)

    base_events.BaseEventLoop.run_forever = counted_stock  # type: ignore[method-assign]


def _install_guest_loops(stock_loops: StockLoops) -> None:
    """Make every selector and proactor loop the tests create a guest loop (guest child only).

    Must run before any test module is imported (they bind some names at import
    time). test_asyncio creates loops in all of these ways, on 3.10-3.13:

    * ``asyncio.SelectorEventLoop(...)``, ``asyncio.ProactorEventLoop()``
      (Windows) and, on 3.13, ``asyncio.EventLoop``, and the same names in
      ``asyncio.unix_events`` / ``asyncio.windows_events``: each is rebound to
      the guest class of the same kind (so test subclasses of them become
      guest subclasses too);
    * ``asyncio.new_event_loop()``, ``asyncio.run()``, ``asyncio.Runner()``,
      ``IsolatedAsyncioTestCase``: all go through the policy's
      ``new_event_loop``, so a ``GuestEventLoopPolicy`` is installed;
    * test modules' ``tearDownModule`` and ``utils.TestCase`` reset the policy
      with ``set_event_loop_policy(None)``, after which a *fresh*
      ``DefaultEventLoopPolicy`` is made, and Windows tests install
      ``WindowsSelectorEventLoopPolicy()`` / ``WindowsProactorEventLoopPolicy()``
      themselves: so the class-level ``_loop_factory`` of every policy class
      of the platform module is patched as well, or later tests would silently
      run plain loops.

    Loops made any other way (``BaseSelectorEventLoop()`` directly) are made
    guest when they first run (see ``_install_run_counters``). Loops that are
    neither (``test_utils.TestLoop``, ``BaseEventLoop`` with mocks) or have a
    mocked selector or proactor stay plain; the run counters show how many
    there were.
    """
    import asyncio

    from asyncio_guest import GuestSelectorEventLoop, testing

    guests: dict[type, type] = {stock_loops.selector: GuestSelectorEventLoop}
    if stock_loops.proactor is not None:
        import asyncio_guest

        guests[stock_loops.proactor] = asyncio_guest.GuestProactorEventLoop  # type: ignore[attr-defined,unused-ignore]
    platform_events = stock_loops.platform_events
    for module in (asyncio, platform_events):
        # EventLoop: 3.13+ (the selector loop on Unix, the proactor loop on Windows).
        for name in ("SelectorEventLoop", "ProactorEventLoop", "EventLoop"):
            cls = vars(module).get(name)
            if cls in guests:
                setattr(module, name, guests[cls])
    # The policy classes, each once (DefaultEventLoopPolicy is another name of
    # one of them); vars(): 3.14+ keeps the deprecated names out of it.
    policies = list(dict.fromkeys(
        cls for cls in vars(platform_events).values()
        if isinstance(cls, type) and vars(cls).get("_loop_factory") in guests
    ))
    for cls in policies:
        cls._loop_factory = guests[cls._loop_factory]
    # 3.14+ deprecates the public policy functions (the tests themselves use
    # the private ones there): no warning of ours may differ between modes.
    set_policy = getattr(asyncio.events, "_set_event_loop_policy", asyncio.set_event_loop_policy)
    set_policy(testing._make_policy_class()())

    # Guard: fail loudly (not silently plain) if a Python version changes how
    # loops are made.
    default_guest = guests[stock_loops.proactor or stock_loops.selector]
    probes: list[tuple[str, Callable[[], Any], type]] = [
        ("asyncio.new_event_loop()", asyncio.new_event_loop, default_guest),
    ]
    default_policy = testing._stock_default_policy()
    if default_policy not in policies:
        raise RuntimeError(f"guest patching ineffective: {default_policy!r} was not patched")
    for cls in policies:
        probes.append((f"{cls.__name__}().new_event_loop()", cls().new_event_loop,
                       cls._loop_factory))
    for how, make, want in probes:
        probe = make()
        try:
            if not isinstance(probe, want):
                raise RuntimeError(f"guest patching ineffective: {how} made {probe!r}")
        finally:
            probe.close()


def _drop_invalid_policy(test_id: str) -> None:
    """After each test, in both modes: an event-loop policy that is not a policy is dropped.

    Python 3.10 checks ``set_event_loop_policy()``'s argument with an
    ``assert``, and the embeddable Windows CPython's stdlib runs without
    asserts: there ``test_events.PolicyTests.test_set_event_loop_policy``
    (``assertRaises(AssertionError, set_event_loop_policy, object())``)
    installs ``object()``, and every later test of the module then fails in
    ``setUp`` in both modes, so the gate would compare nothing there. Resetting
    to None is what ``set_event_loop_policy(None)`` does; a valid policy is
    never touched.
    """
    from asyncio import events

    policy = events._event_loop_policy  # type: ignore[attr-defined]
    base = vars(events).get("_AbstractEventLoopPolicy") or vars(events)["AbstractEventLoopPolicy"]
    if policy is not None and not isinstance(policy, base):
        events._event_loop_policy = None  # type: ignore[attr-defined]
        print(f"conformance: {test_id} left {policy!r} as the event loop policy "
              "(asserts stripped?); reset to None", file=sys.stderr, flush=True)


class StreamingResult(unittest.TestResult):
    """Writes one JSON line per finished test (and per fixture error) as it happens.

    Streaming is what lets the parent know the finished tests and the one that
    was running when a child crashed or hung. Outcomes reported for something
    that is not the started test (setUpModule/setUpClass errors, which come as
    ``_ErrorHolder`` objects, and skips, which 3.12.0-3.12.1 report without
    ``startTest``) are written at once as records of their own.
    """

    def __init__(self, out: TextIO, test_timeout: float) -> None:
        super().__init__()
        self._out = out
        self._test_timeout = test_timeout
        self._current: unittest.TestCase | None = None  # started and not yet stopped
        self._events: list[tuple[str, str]] = []  # (status, detail) for _current
        self._t0 = 0.0

    def _emit(self, record: dict[str, Any]) -> None:
        record["runs"] = dataclasses.asdict(COUNTS)
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    def _record(self, test_id: str, status: str, detail: str, duration: float) -> None:
        self._emit({
            "event": "result", "id": test_id, "status": status, "detail": detail,
            "duration": round(duration, 3),
        })

    def _detail(self, err: Any, test: unittest.TestCase) -> str:
        # unittest's own formatting: it drops unittest's frames from the traceback.
        return str(self._exc_info_to_string(err, test))  # type: ignore[attr-defined]

    def _add(self, test: Any, status: str, detail: str) -> None:
        if test is self._current:
            self._events.append((status, detail))
        else:
            self._record(str(getattr(test, "description", None) or test.id()), status, detail, 0)

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._current = test
        self._events = []
        self._t0 = time.monotonic()
        self._emit({"event": "start", "id": test.id()})
        if self._test_timeout > 0:
            # A hung test: dump every thread's stack and exit, so the parent
            # records a timeout with the stacks and restarts past it.
            faulthandler.dump_traceback_later(self._test_timeout, exit=True)

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        _drop_invalid_policy(test.id())
        if test is not self._current:
            return  # already recorded by _add (a skip without startTest)
        faulthandler.cancel_dump_traceback_later()
        statuses = {k for k, _ in self._events}
        # Worst outcome wins: an error in tearDown after a pass is an error.
        status = next((s for s in (ERROR, FAILED, PASSED, SKIPPED) if s in statuses), SKIPPED)
        detail = "\n".join(d for k, d in self._events if k == status and d)
        self._record(test.id(), status, detail, time.monotonic() - self._t0)
        self._current = None
        self._events = []

    def module_skipped(self, test_id: str, reason: str) -> None:
        """The module raised SkipTest on import (test_windows_events off Windows)."""
        self._record(test_id, SKIPPED, reason, 0)

    def finish(self) -> None:
        """Tells the parent that the child got to the end."""
        self._emit({"event": "done"})

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._add(test, PASSED, "")

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._add(test, PASSED, "")

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self._add(test, ERROR, self._detail(err, test))

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._add(test, FAILED, self._detail(err, test))

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._add(test, FAILED, "unexpected success")

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._add(test, SKIPPED, reason)

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is None or issubclass(err[0], unittest.SkipTest):
            return
        status = FAILED if issubclass(err[0], test.failureException) else ERROR
        self._add(test, status, f"[{subtest._subDescription()}]\n" + self._detail(err, test))


def _iter_tests(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for item in suite:
            yield from _iter_tests(item)
    else:
        yield suite


def child_main(args: argparse.Namespace) -> int:
    """Run the tests of one module in one mode; stream results to ``args.out``."""
    faulthandler.enable()
    guest_mode = args.child == "guest"
    stock_loops = StockLoops.current()  # before guest mode rebinds the names
    if guest_mode:
        _install_guest_loops(stock_loops)
    _install_run_counters(guest_mode, stock_loops)

    support: Any = importlib.import_module("test.support")
    support.verbose = 0  # as regrtest without -v: some tests print less / skip noise

    include = set(_read_ids(args.include)) if args.include else None
    exclude = set(_read_ids(args.exclude)) if args.exclude else set()
    with open(args.out, "a", encoding="utf-8") as out:
        result = StreamingResult(out, args.test_timeout)
        try:
            suite = unittest.defaultTestLoader.loadTestsFromName(f"{PACKAGE}.{args.module}")
        except unittest.SkipTest as exc:  # e.g. test_windows_events off Windows
            result.module_skipped(f"{PACKAGE}.{args.module}", str(exc))
        else:
            tests = [
                t
                for t in _iter_tests(suite)
                if (include is None or t.id() in include) and t.id() not in exclude
            ]
            unittest.TestSuite(tests).run(result)
        faulthandler.cancel_dump_traceback_later()
        result.finish()
    # A thread left running would hang interpreter exit: dump stacks and fail.
    faulthandler.dump_traceback_later(60, exit=True)
    return 0


def _read_ids(path: str) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


# =====================================================================
# Parent: schedule children, compare, report
# =====================================================================


@dataclasses.dataclass
class ModuleRun:
    """Everything one (module, mode) produced, over all its child restarts."""

    module: str
    mode: str
    results: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    runs: RunCounts = dataclasses.field(default_factory=RunCounts)
    incidents: list[str] = dataclasses.field(default_factory=list)  # crashes, timeouts
    seconds: float = 0.0
    log: str = ""  # the children's output (kept with --keep-logs)

    def count(self, *statuses: str) -> int:
        """Tests with one of these statuses (a clean child exit is not a test)."""
        return sum(
            1 for tid, r in self.results.items()
            if r["status"] in statuses and not (r["status"] == PASSED and _is_pseudo(tid))
        )


def _child_cmd(
    mode: str, module: str, out: Path, include: Path | None, exclude: Path | None,
    test_timeout: float,
) -> list[str]:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", mode,
        "--module", module, "--out", str(out), "--test-timeout", str(test_timeout),
    ]
    if include is not None:
        cmd += ["--include", str(include)]
    if exclude is not None:
        cmd += ["--exclude", str(exclude)]
    return cmd


def _parse_stream(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            yield json.loads(line)


def _incident_detail(log_path: Path) -> str:
    """The last child's faulthandler dump (hang or crash), else the end of its output."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    text = text.rsplit("===== attempt", 1)[-1]
    for marker in ("Timeout (", "Fatal Python error"):
        at = text.rfind(marker)
        if at >= 0:
            return "\n".join(text[at:].splitlines()[:120])
    return "\n".join(text.splitlines()[-40:])


# Windows CPython under Wine dies at start-up ("init_sys_streams: can't
# initialize sys standard streams") when a std stream is a regular file, so on
# Windows the children's output comes through a pipe that the parent copies to
# the log. Elsewhere the child writes the log file itself, as it always has.
_PIPE_CHILD_OUTPUT = sys.platform == "win32"


def _run_child(cmd: list[str], log_path: Path, attempt: int, budget: float) -> tuple[int, bool]:
    """Run one child with its output appended to ``log_path``; kill it on time-out.

    On POSIX the child gets its own session so that subprocesses started by
    tests die with it. On Windows only the child itself is killed; a
    subprocess of a test that outlives it and keeps the output pipe open is
    waited for a few seconds, then left behind.
    """
    with open(log_path, "ab") as log:
        log.write(f"\n===== attempt {attempt}: {' '.join(cmd[2:])} =====\n".encode())
        log.flush()
        copier: threading.Thread | None = None
        if _PIPE_CHILD_OUTPUT:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
            pipe = proc.stdout
            assert pipe is not None

            def copy() -> None:
                with contextlib.suppress(OSError, ValueError):
                    for chunk in iter(functools.partial(pipe.read1, 65536), b""):
                        log.write(chunk)
                        log.flush()

            copier = threading.Thread(target=copy, name=f"log {log_path.name}", daemon=True)
            copier.start()
        else:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        timed_out = False
        try:
            rc = proc.wait(timeout=max(budget, 1.0))
        except subprocess.TimeoutExpired:
            timed_out = True
            if _PIPE_CHILD_OUTPUT:
                proc.kill()
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
            rc = proc.wait()
        if copier is not None:
            copier.join(10.0)
            if copier.is_alive():
                log.write(b"\n(output pipe still open 10 s after the child ended: "
                          b"a subprocess of a test outlived it; output not copied further)\n")
        return rc, timed_out


def run_module(
    module: str,
    mode: str,
    workdir: Path,
    *,
    module_timeout: float,
    test_timeout: float,
    only: list[str] | None = None,
    tag: str = "",
) -> ModuleRun:
    """Run one module in one mode, restarting the child past a test that crashed/hung.

    ``module_timeout`` bounds the whole module (all restarts); ``only`` limits it
    to some test ids (the flaky re-run).
    """
    run = ModuleRun(module, mode)
    stem = f"{module}.{mode}{tag}"

    def path(suffix: str) -> Path:
        return workdir / f"{stem}{suffix}"

    log_path = path(".log")
    run.log = str(log_path)
    include: Path | None = None
    if only is not None:
        include = path(".include")
        include.write_text("\n".join(only) + "\n")
    deadline = time.monotonic() + module_timeout
    t0 = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        out = path(f".{attempt}.jsonl")
        exclude: Path | None = None
        if run.results:
            exclude = path(f".{attempt}.exclude")
            exclude.write_text("\n".join(run.results) + "\n")
        rc, timed_out = _run_child(
            _child_cmd(mode, module, out, include, exclude, test_timeout),
            log_path, attempt, deadline - time.monotonic(),
        )
        running: str | None = None
        done = False
        child_runs: dict[str, int] = {}
        for rec in _parse_stream(out):
            event = rec.get("event")
            if event == "start":
                running = rec["id"]
            elif event == "result":
                run.results[rec["id"]] = rec
                if rec["id"] == running:
                    running = None
            elif event == "done":
                done = True
            child_runs = rec.get("runs", child_runs)
        # Each child's counters are cumulative: add its last report.
        for key, value in child_runs.items():
            setattr(run.runs, key, getattr(run.runs, key) + value)
        if done and rc == 0:
            if only is None:
                run.results[_child_exit_id(module)] = {"status": PASSED, "duration": 0.0}
            break
        why = "module time budget exhausted" if timed_out else f"child exited with {rc}"
        if running is None:
            # Before the first test (an import error) or after the last one (a
            # thread that keeps the interpreter from exiting, say): a pseudo
            # test, so a guest-only failure here is a regression like any other.
            run.incidents.append(f"{why} outside a test (attempt {attempt})")
            run.results[_child_exit_id(module)] = {
                "status": TIMEOUT if timed_out else ERROR,
                "detail": _incident_detail(log_path),
                "duration": 0.0,
            }
            break
        status = TIMEOUT if timed_out or _looks_like_watchdog(log_path) else CRASH
        run.incidents.append(f"{status} in {running} ({why}, attempt {attempt})")
        run.results[running] = {
            "status": status, "detail": _incident_detail(log_path), "duration": 0.0,
        }
        if timed_out or time.monotonic() >= deadline:
            break
    run.seconds = time.monotonic() - t0
    return run


def _child_exit_id(module: str) -> str:
    """Pseudo test id for "the child got through the module and exited cleanly"."""
    return f"{PACKAGE}.{module} (child exit)"


def _is_pseudo(test_id: str) -> bool:
    return test_id.endswith(" (child exit)")


def _looks_like_watchdog(log_path: Path) -> bool:
    """faulthandler's dump_traceback_later(exit=True) prints this header."""
    return _incident_detail(log_path).startswith("Timeout (")


def discover_modules() -> list[str]:
    """All ``test_*`` submodules of this interpreter's ``test.test_asyncio``."""
    pkg = importlib.import_module(PACKAGE)
    return sorted(
        name for _, name, _ in pkgutil.iter_modules(pkg.__path__) if name.startswith("test_")
    )


# ------------------------------------------------------------- expected failures


@dataclasses.dataclass(frozen=True)
class Expected:
    """One line of the expected-failures list."""

    test_id: str
    versions: frozenset[str] | None  # None: every version
    reason: str
    line: int

    def applies(self) -> bool:
        return self.versions is None or PY_VERSION in self.versions


_LINE_RE = re.compile(r"^(?:\[(?P<versions>[0-9., ]+)\]\s+)?(?P<id>\S+)\s+#\s*(?P<reason>\S.*)$")


def load_expected(path: Path) -> list[Expected]:
    """Parse ``[3.10,3.11] test.id  # reason`` lines; a reason is mandatory."""
    entries: list[Expected] = []
    if not path.exists():
        return entries
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE_RE.match(line)
        if match is None:
            raise ValueError(
                f"{path}:{lineno}: expected '[3.X,...] test.id  # reason', got {raw!r}"
            )
        versions = match["versions"]
        entries.append(Expected(
            test_id=match["id"],
            versions=(
                frozenset(v.strip() for v in versions.split(",") if v.strip())
                if versions else None
            ),
            reason=match["reason"].strip(),
            line=lineno,
        ))
    return entries


# ----------------------------------------------------------------- reporting


def _cell(run: ModuleRun | None) -> str:
    if run is None:
        return "-"
    return (
        f"{run.count(PASSED):4d}/{run.count(FAILED):3d}/"
        f"{run.count(ERROR, CRASH, TIMEOUT):3d}/{run.count(SKIPPED):3d}"
    )


def _suspicious(plain: ModuleRun | None, guest: ModuleRun | None) -> str:
    """Flags a module whose guest run did not exercise guest mode as the plain run
    did (a plain loop ran in guest mode, or no guest loop where plain ran real
    ones): its tests passing would say nothing about guest mode, so the gate
    fails (``unexercised``)."""
    if guest is None:
        return ""
    if guest.runs.plain_selector:
        return "  <- plain selector loops ran in guest mode!"
    if guest.runs.plain_proactor:
        return "  <- plain proactor loops ran in guest mode!"
    if plain is not None:
        if plain.runs.plain_selector + plain.runs.plain_proactor and not guest.runs.guest:
            return "  <- no guest runs!"
        if plain.runs.plain_proactor and not guest.runs.guest_proactor:
            return "  <- no proactor guest runs!"
    return ""


def _loops_plain(r: RunCounts) -> str:
    return f"{r.plain_selector}+{r.plain_proactor}/{r.mock_selector}/{r.other}"


def _loops_guest(r: RunCounts) -> str:
    return (
        f"{r.guest_selector}+{r.guest_proactor}/{r.plain_selector + r.plain_proactor}/"
        f"{r.mock_selector}/{r.other}"
    )


def unexercised(modules: list[str], runs: dict[tuple[str, str], ModuleRun]) -> list[str]:
    """The modules ``_suspicious`` flags."""
    return [m for m in modules if _suspicious(runs.get((m, "plain")), runs.get((m, "guest")))]


def print_table(modules: list[str], runs: dict[tuple[str, str], ModuleRun]) -> None:
    """Per-module table; the ``loops`` columns show which loops really ran."""
    head = (
        f"{'module':<26} {'plain p/f/e/s':>17} {'guest p/f/e/s':>17}   "
        f"{'loops plain':>15} {'loops guest':>19} {'secs p/g':>9}"
    )
    print(head)
    print("-" * len(head))
    for m in modules:
        p, g = runs.get((m, "plain")), runs.get((m, "guest"))
        plain_runs = _loops_plain(p.runs) if p else "-"
        guest_runs = _loops_guest(g.runs) if g else "-"
        secs = f"{p.seconds if p else 0:4.0f}/{g.seconds if g else 0:<4.0f}"
        print(
            f"{m:<26} {_cell(p):>17} {_cell(g):>17}   {plain_runs:>15} "
            f"{guest_runs:>19} {secs:>9}{_suspicious(p, g)}"
        )
    print(
        "p/f/e/s = passed/failed/errors/skipped (errors include crashes and timeouts).\n"
        "loops = run_forever calls by kind of loop: plain = selector+proactor/mocked-selector/"
        "other, guest = guest selector+guest proactor/plain/mocked-selector/other;\n"
        "'other' loops are test doubles such as test_utils.TestLoop and loops on a mock "
        "proactor, and stay plain, as do loops with a mocked selector."
    )


def _short(detail: str, lines: int = 14, head: bool = False) -> str:
    """Indent and cut ``detail`` to its last (or first) ``lines`` lines."""
    body = detail.rstrip().splitlines()
    if len(body) > lines:
        body = [*body[:lines], "    ..."] if head else ["    ...", *body[-lines:]]
    return "\n".join("      " + s for s in body)


# ---------------------------------------------------------------------- main


@dataclasses.dataclass
class Verdict:
    """The comparison of the two modes (test id lists, sorted)."""

    plain: dict[str, dict[str, Any]]
    guest: dict[str, dict[str, Any]]
    regressions: list[str]  # pass on plain, not in guest mode, not listed, not flaky
    flaky: list[str]  # failed in guest mode in the suite, passed when re-run alone
    flaky_plain: list[str]  # failed alone in guest mode, and alone on plain too
    explained: list[str]  # pass on plain, not in guest mode, listed
    stale: list[str]  # listed for this version and now passing in guest mode
    unseen: list[Expected]  # listed for this version, in a module that ran, never seen
    plain_bad: list[str]  # fail on plain (not our concern)
    rerun: dict[str, str]  # the guest re-run's status, per re-run test
    rerun_plain: dict[str, str]  # the plain re-run's status, per test that failed alone


def _passed(results: dict[str, dict[str, Any]]) -> int:
    return sum(1 for t, r in results.items() if r["status"] == PASSED and not _is_pseudo(t))


def _module_of(test_id: str) -> str:
    return test_id[len(PACKAGE) + 1:].split(".", 1)[0].split(" ", 1)[0]


def compare(
    runs: dict[tuple[str, str], ModuleRun],
    expected: list[Expected],
    rerun_alone: Callable[[list[str], str], dict[str, str]],
) -> Verdict:
    """Apply the gate's rule; ``rerun_alone(ids, mode)`` re-runs tests once each, alone.

    A guest-mode failure is re-run alone in guest mode; one that fails again is
    re-run alone on the plain loop as well, and is a regression only if plain
    passes there. A test that also fails alone on plain (a race the platform
    decides either way: under Wine, an SSL test whose peer's reset can overtake
    its corrupted record fails in both modes, in either one from run to run)
    says nothing about guest mode: it is reported, not counted.
    """
    plain: dict[str, dict[str, Any]] = {}
    guest: dict[str, dict[str, Any]] = {}
    for (_, mode), run in runs.items():
        (plain if mode == "plain" else guest).update(run.results)
    listed = {e.test_id: e for e in expected if e.applies()}
    candidates = sorted(
        tid for tid, rec in plain.items()
        if rec["status"] == PASSED and guest.get(tid, {}).get("status") != PASSED
    )
    # Only tests that ran and failed are worth a re-run; a test that never ran
    # (its guest child used up the module's time) is a regression as it stands.
    rerun = rerun_alone([
        t for t in candidates if t not in listed and t in guest and not _is_pseudo(t)
    ], "guest")
    rerun_plain = rerun_alone([t for t, status in rerun.items() if status != PASSED], "plain")
    ran_modules = {m for m, _ in runs}
    # Only a plain re-run that failed excuses a guest failure: one that never
    # ran (its child died at import, its budget ran out) or skipped says
    # nothing about plain, and the guest failure stands.
    unreliable = {t for t, status in rerun_plain.items() if status in BAD}
    return Verdict(
        plain=plain,
        guest=guest,
        regressions=[
            t for t in candidates
            if t not in listed and rerun.get(t) != PASSED and t not in unreliable
        ],
        flaky=[t for t in candidates if t not in listed and rerun.get(t) == PASSED],
        flaky_plain=sorted(unreliable),
        explained=[t for t in candidates if t in listed],
        stale=sorted(t for t in listed if guest.get(t, {}).get("status") == PASSED),
        unseen=[
            e for t, e in listed.items()
            if t not in guest and _module_of(t) in ran_modules
        ],
        plain_bad=sorted(t for t, r in plain.items() if r["status"] in BAD),
        rerun=rerun,
        rerun_plain=rerun_plain,
    )


def report(
    modules: list[str],
    runs: dict[tuple[str, str], ModuleRun],
    verdict: Verdict,
    expected: list[Expected],
    expected_name: str,
) -> None:
    """Everything a CI log reader needs, most important last."""
    v = verdict
    listed = {e.test_id: e for e in expected if e.applies()}
    print()
    print_table(modules, runs)
    guest_runs = [r for (_, mode), r in runs.items() if mode == "guest"]

    def total(counter: str) -> int:
        return sum(getattr(r.runs, counter) for r in guest_runs)

    n_plain_pass = _passed(v.plain)
    n_guest_pass = _passed(v.guest)
    print()
    print(
        f"Python {sys.version.split()[0]}: plain passed {n_plain_pass}, guest passed "
        f"{n_guest_pass}. In guest mode guest loops ran run_forever "
        f"{total('guest')} times ({total('guest_proactor')} proactor, "
        f"{total('guest_selector')} selector; {total('converted')} loops made guest when "
        f"they first ran, {total('converted_proactor')} of them proactor), plain selector "
        f"loops {total('plain_selector')} times, plain proactor loops "
        f"{total('plain_proactor')} times."
    )
    print(f"tests failing on the plain loop too (not our concern): {len(v.plain_bad)}")
    for tid in v.plain_bad:
        also = " (passes in guest mode)" if v.guest.get(tid, {}).get("status") == PASSED else ""
        print(f"  plain {v.plain[tid]['status']}: {tid}{also}")
    incidents = [f"{m} {mode}: {i}" for (m, mode), r in sorted(runs.items()) for i in r.incidents]
    if incidents:
        print("child incidents (a crash or hang; the child was restarted past that test):")
        for line in incidents:
            print(f"  {line}")
    if v.explained:
        print(f"expected guest-mode failures (listed in {expected_name}): {len(v.explained)}")
        for tid in v.explained:
            status = v.guest.get(tid, {}).get("status", "not run")
            print(f"  {status}: {tid}  # {listed[tid].reason}")
    for e in v.unseen:
        print(f"note: {expected_name}:{e.line} lists {e.test_id}, which did not run here")
    if v.flaky:
        print(f"flaky in guest mode (failed in the suite, passed when re-run alone): "
              f"{len(v.flaky)}")
        for tid in v.flaky:
            print(f"  {v.guest[tid]['status']}, then passed alone: {tid}")
            print(_short(v.guest[tid].get("detail", ""), 8))
    if v.flaky_plain:
        print(f"unreliable here (failed alone in guest mode, and alone on plain too; not "
              f"counted): {len(v.flaky_plain)}")
        for tid in v.flaky_plain:
            print(f"  guest {v.rerun.get(tid, '-')}, plain {v.rerun_plain.get(tid, '-')} "
                  f"(alone): {tid}")
    if v.stale:
        print(f"STALE entries in {expected_name} (the test now passes in guest mode; "
              f"remove them): {len(v.stale)}")
        for tid in v.stale:
            print(f"  line {listed[tid].line}: {tid}")
    if v.regressions:
        print(f"REGRESSIONS (pass on plain, fail in guest mode; each failed again when "
              f"re-run alone in a fresh process, where plain passed): {len(v.regressions)}")
        not_run: dict[str, int] = {}
        for tid in v.regressions:
            rec = v.guest.get(tid)
            if rec is None:
                not_run[_module_of(tid)] = not_run.get(_module_of(tid), 0) + 1
                continue
            print(f"  {rec['status']} (re-run alone: {v.rerun.get(tid, '-')}): {tid}")
            if rec.get("detail"):
                # For a hang, the head of the stack dump (the main thread) matters.
                print(_short(rec["detail"], 30, head=rec["status"] in (TIMEOUT, CRASH)))
        for module, n in sorted(not_run.items()):
            print(f"  not run in guest mode (see the incidents above): {n} tests of {module}")


def write_json(path: str, runs: dict[tuple[str, str], ModuleRun], v: Verdict, wall: float) -> None:
    """Full results, for comparing runs or digging into one test."""
    Path(path).write_text(json.dumps({
        "python": sys.version,
        "wall_seconds": round(wall, 1),
        "modules": {
            f"{m}:{mode}": {
                "passed": r.count(PASSED), "failed": r.count(FAILED),
                "errors": r.count(ERROR, CRASH, TIMEOUT), "skipped": r.count(SKIPPED),
                "loop_runs": dataclasses.asdict(r.runs), "incidents": r.incidents,
                "seconds": round(r.seconds, 1), "log": r.log,
            }
            for (m, mode), r in sorted(runs.items())
        },
        "tests": {
            tid: {
                "plain": v.plain.get(tid, {}).get("status"),
                "guest": v.guest.get(tid, {}).get("status"),
                "guest_detail": v.guest.get(tid, {}).get("detail") or None,
                "plain_detail": v.plain.get(tid, {}).get("detail") or None,
            }
            for tid in sorted(set(v.plain) | set(v.guest))
        },
        "regressions": v.regressions,
        "flaky": v.flaky,
        "flaky_plain": v.flaky_plain,
        "stale": v.stale,
        "expected": v.explained,
        "plain_failures": v.plain_bad,
    }, indent=1))


def list_only(modules: list[str], expected: list[Expected]) -> int:
    """``--list-only``: what would run, without running it."""
    loader = unittest.defaultTestLoader
    total = 0
    for m in modules:
        try:
            n = sum(1 for _ in _iter_tests(loader.loadTestsFromName(f"{PACKAGE}.{m}")))
        except unittest.SkipTest as exc:
            print(f"{m:<28} skipped: {exc}")
            continue
        total += n
        print(f"{m:<28} {n:5d} tests")
    print(f"{len(modules)} modules, {total} tests (Python {PY_VERSION}), each run plain and guest")
    for e in expected:
        applies = "" if e.applies() else f" (not on {PY_VERSION})"
        print(f"expected guest failure{applies}: {e.test_id}  # {e.reason}")
    return 0


def parent_main(args: argparse.Namespace) -> int:
    """Schedule the children, compare, report; exit status 1 on regressions or stale entries."""
    t_start = time.monotonic()
    modules = discover_modules()
    if args.modules:
        wanted = [m.strip() for m in args.modules.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in modules]
        if unknown:
            print(f"unknown module(s) for Python {PY_VERSION}: {', '.join(unknown)}")
            return 2
        modules = [m for m in modules if m in wanted]
    expected_path = Path(args.expected)
    try:
        expected = load_expected(expected_path)
    except ValueError as exc:
        print(exc)
        return 2
    if args.list_only:
        return list_only(modules, expected)

    if args.wait:
        os.environ["ASYNCIO_GUEST_WAIT"] = args.wait  # inherited by the children
    wait = os.environ.get("ASYNCIO_GUEST_WAIT", "").strip() or "auto"
    guest_pkg = importlib.import_module("asyncio_guest")
    print(
        f"conformance: CPython {sys.version.split()[0]} test_asyncio, {len(modules)} modules, "
        f"plain and guest mode (wait: {wait}), {args.jobs} jobs; asyncio_guest "
        f"{getattr(guest_pkg, '__version__', '?')} from {Path(guest_pkg.__file__ or '?').parent}",
        flush=True,
    )
    order = sorted(
        modules, key=lambda m: HEAVY_FIRST.index(m) if m in HEAVY_FIRST else len(HEAVY_FIRST)
    )
    runs: dict[tuple[str, str], ModuleRun] = {}
    lock = threading.Lock()

    # ignore_cleanup_errors: on Windows a file a leftover test subprocess
    # still holds open cannot be removed.
    with tempfile.TemporaryDirectory(prefix="conformance-", ignore_cleanup_errors=True) as tmp:
        workdir = Path(args.keep_logs) if args.keep_logs else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)

        def job(item: tuple[str, str]) -> None:
            module, mode = item
            run = run_module(
                module, mode, workdir,
                module_timeout=args.module_timeout, test_timeout=args.test_timeout,
            )
            with lock:
                runs[item] = run
                note = f"  [{'; '.join(run.incidents)}]" if run.incidents else ""
                print(f"  {module:<26} {mode:<5} {run.seconds:6.1f}s  {_cell(run)}{note}",
                      flush=True)

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(job, [(m, mode) for m in order for mode in MODES]))
        t_main = time.monotonic() - t_start

        def rerun_alone(test_ids: list[str], mode: str) -> dict[str, str]:
            if not test_ids:
                return {}
            print(f"re-running {len(test_ids)} guest-mode failure(s) once, each alone "
                  f"in a fresh {mode} child, to tell flaky tests from regressions", flush=True)
            statuses: dict[str, str] = {}

            def one(item: tuple[int, str]) -> None:
                index, tid = item
                r = run_module(
                    _module_of(tid), mode, workdir, only=[tid], tag=f".rerun-{mode}{index}",
                    module_timeout=args.test_timeout + 30, test_timeout=args.test_timeout,
                )
                with lock:
                    statuses[tid] = r.results.get(tid, {}).get("status", "not run")

            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                list(pool.map(one, enumerate(test_ids)))
            return statuses

        verdict = compare(runs, expected, rerun_alone)

    report(modules, runs, verdict, expected, expected_path.name)
    wall = time.monotonic() - t_start
    if args.json:
        write_json(args.json, runs, verdict, wall)
    print(f"wall time {wall:.0f}s (both modes {t_main:.0f}s, then re-runs; {args.jobs} jobs)")
    if verdict.stale:
        print(f"FAILED: {len(verdict.stale)} stale expected-failure entr"
              f"{'y' if len(verdict.stale) == 1 else 'ies'} (see above)")
    not_guest = unexercised(modules, runs)
    if not_guest:
        print(f"FAILED: guest mode was not exercised in {', '.join(not_guest)} "
              "(see the loops columns above)")
    n_guest_pass = _passed(verdict.guest)
    print(f"{n_guest_pass} passed, {len(verdict.regressions)} failed")
    return 1 if verdict.regressions or verdict.stale or not_guest else 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run CPython's test_asyncio on the plain loop and in guest mode; "
        "fail on guest-mode regressions not listed in the expected-failures file.",
    )
    parser.add_argument("--modules", help="comma-separated test_asyncio modules (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel children (default 2)")
    parser.add_argument("--wait", choices=("auto", "thread", "fd"),
                        help="the guest's wait strategy (ASYNCIO_GUEST_WAIT for the children; "
                        "default: the environment's, else auto)")
    parser.add_argument("--json", help="write full per-test results to this file")
    parser.add_argument("--list-only", action="store_true",
                        help="list modules and test counts, run nothing")
    parser.add_argument("--expected", default=str(DEFAULT_EXPECTED),
                        help="expected-failures list (default: %(default)s)")
    parser.add_argument("--module-timeout", type=float, default=300.0,
                        help="seconds per module and mode, restarts included (default 300)")
    parser.add_argument("--test-timeout", type=float, default=120.0,
                        help="seconds per test before the child dumps stacks and is "
                        "restarted past it (default 120)")
    parser.add_argument("--keep-logs", metavar="DIR",
                        help="keep the children's logs and result streams in DIR")
    # Internal: the child side.
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--module", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--include", help=argparse.SUPPRESS)
    parser.add_argument("--exclude", help=argparse.SUPPRESS)
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.child:
        return child_main(args)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
