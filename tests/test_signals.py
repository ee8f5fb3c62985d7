"""Signals: the wakeup fd, Ctrl+C (in-process and to an idle host process), add_signal_handler."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator

import outcome
import pytest

from .hosts import LONG, QueueHost, wait_long

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="POSIX signals (SIGINT delivery, SIGUSR1) on win32 differ"
)


def _current_wakeup_fd() -> int:
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


@pytest.fixture
def host_wakeup_sock() -> Iterator[socket.socket]:
    """A socket the test installs as the host's own signal wakeup fd."""
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)
        yield a


def _main_reporting_wakeup_fd() -> object:
    async def main() -> int:
        await asyncio.sleep(0)
        return _current_wakeup_fd()

    return main


def test_main_thread_assumption() -> None:
    assert threading.current_thread() is threading.main_thread()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_wakeup_fd_set_during_run_and_restored(host: QueueHost) -> None:
    assert _current_wakeup_fd() == -1
    inside = host.guest_run(_main_reporting_wakeup_fd()).unwrap()
    assert inside != -1  # Ctrl+C needs it to wake the backend while the host sleeps
    assert _current_wakeup_fd() == -1


def test_host_uses_wakeup_fd_leaves_it_alone(
    host: QueueHost, host_wakeup_sock: socket.socket
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # No fd installed by the host: still never touched.
        out = host.guest_run(_main_reporting_wakeup_fd(), host_uses_signal_set_wakeup_fd=True)
        assert out == outcome.Value(-1)
        assert _current_wakeup_fd() == -1

        fd = host_wakeup_sock.fileno()
        signal.set_wakeup_fd(fd)
        try:
            out = host.guest_run(_main_reporting_wakeup_fd(), host_uses_signal_set_wakeup_fd=True)
            assert out == outcome.Value(fd)
            assert _current_wakeup_fd() == fd
        finally:
            assert signal.set_wakeup_fd(-1) == fd


def test_preexisting_wakeup_fd_warns_and_is_restored(
    host: QueueHost, host_wakeup_sock: socket.socket
) -> None:
    fd = host_wakeup_sock.fileno()
    signal.set_wakeup_fd(fd)
    try:
        with pytest.warns(RuntimeWarning, match="host_uses_signal_set_wakeup_fd=True") as seen:
            inside = host.guest_run(
                _main_reporting_wakeup_fd(), host_uses_signal_set_wakeup_fd=False
            ).unwrap()
        assert inside not in (-1, fd)
        assert _current_wakeup_fd() == fd
        # Attributed to the program's call, not to the library's own code.
        assert [w.filename for w in seen] == [os.path.join(os.path.dirname(__file__), "hosts.py")]
    finally:
        assert signal.set_wakeup_fd(-1) == fd


@pytest.mark.parametrize("wait", ["fd", "thread"])
def test_a_one_call_run_borrows_the_programs_wakeup_fd_without_a_warning(
    host_wakeup_sock: socket.socket, wait: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``asyncio_guest.run`` runs a host loop of its own, which reads no wakeup
    fd: one set before is the program's. It is borrowed for the run (so Ctrl+C
    wakes the guest) and put back, with no warning whose advice (a
    ``host_uses_signal_set_wakeup_fd`` that ``run`` does not take) cannot be
    followed; under ``-W error`` that warning refused the run."""
    import asyncio_guest

    monkeypatch.setenv("ASYNCIO_GUEST_WAIT", wait)
    fd = host_wakeup_sock.fileno()
    signal.set_wakeup_fd(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            inside = asyncio_guest.run(_main_reporting_wakeup_fd())
        assert inside not in (-1, fd)
        assert _current_wakeup_fd() == fd
    finally:
        assert signal.set_wakeup_fd(-1) == fd


def test_no_warning_without_preexisting_wakeup_fd(host: QueueHost) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert host.guest_run(_main_reporting_wakeup_fd()).unwrap() != -1


def test_custom_sigint_handler_is_left_alone(host: QueueHost) -> None:
    """A host with its own SIGINT handler keeps it; then the wakeup fd is not taken either."""

    def handler(signum: int, frame: object) -> None:
        pass

    old = signal.signal(signal.SIGINT, handler)
    try:

        async def main() -> tuple[object, int]:
            return signal.getsignal(signal.SIGINT), _current_wakeup_fd()

        seen_handler, seen_fd = host.guest_run(main).unwrap()
        assert seen_handler is handler
        assert seen_fd == -1
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, old)


# ------------------------------------------------------------------ Ctrl+C


def test_sigint_in_guest_code_cancels_main_with_keyboard_interrupt(host: QueueHost) -> None:
    record: list[str] = []

    async def main() -> None:
        signal.raise_signal(signal.SIGINT)  # first Ctrl+C: main is cancelled, not interrupted
        record.append("still running after the signal")
        try:
            await asyncio.sleep(LONG)
        finally:
            record.append("main finally")

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, KeyboardInterrupt)
    assert record == ["still running after the signal", "main finally"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigint_in_host_code_while_guest_waits(host: QueueHost) -> None:
    async def main() -> None:
        host.in_host(lambda: signal.raise_signal(signal.SIGINT))
        await wait_long(asyncio.sleep(LONG * 2))

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, KeyboardInterrupt)


def test_sigint_with_main_catching_cancel_returns_value(host: QueueHost) -> None:
    """asyncio.run semantics: a main task that swallows the cancellation returns normally."""

    async def main() -> str:
        host.in_host(lambda: signal.raise_signal(signal.SIGINT))
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            return "graceful"
        return "not interrupted"

    assert host.guest_run(main) == outcome.Value("graceful")


def test_second_sigint_raises_where_it_lands(host: QueueHost) -> None:
    """Main ignores the first Ctrl+C; the second one raises KeyboardInterrupt at once."""
    record: list[str] = []

    async def main() -> None:
        for _ in range(2):
            try:
                await asyncio.sleep(0)
                signal.raise_signal(signal.SIGINT)
                await asyncio.sleep(LONG)
            except asyncio.CancelledError:
                record.append("cancelled")
                task = asyncio.current_task()
                assert task is not None
                if sys.version_info >= (3, 11):
                    task.uncancel()
            except KeyboardInterrupt:
                record.append("interrupted")
                raise

    out = host.guest_run(main)
    assert isinstance(out, outcome.Error)
    assert isinstance(out.error, KeyboardInterrupt)
    assert record == ["cancelled", "interrupted"]


_SIGINT_CHILD = """
import asyncio, os, selectors, signal, socket, sys, threading
import asyncio_guest

HOST = sys.argv[1]
MODE = sys.argv[2]


class SelectorsHost:
    # A host whose idle wait is a selector call (C code), woken by a socketpair.
    def __init__(self):
        self.queue = []
        self.lock = threading.Lock()
        self.r, self.w = socket.socketpair()
        self.r.setblocking(False)
        self.w.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.r, selectors.EVENT_READ)
        self.stopped = False

    def run_sync_soon_threadsafe(self, fn):
        with self.lock:
            self.queue.append(fn)
        try:
            self.w.send(b"x")
        except BlockingIOError:
            pass

    def run(self):
        while not self.stopped:
            with self.lock:
                batch, self.queue = self.queue, []
            for fn in batch:
                fn()
            if not batch and not self.stopped:
                self.sel.select()
                try:
                    self.r.recv(4096)
                except BlockingIOError:
                    pass

    def stop(self):
        self.stopped = True


class EventHost:
    # A host that sleeps in threading.Event.wait() (a lock acquire in C).
    def __init__(self):
        self.queue = []
        self.lock = threading.Lock()
        self.event = threading.Event()
        self.stopped = False

    def run_sync_soon_threadsafe(self, fn):
        with self.lock:
            self.queue.append(fn)
        self.event.set()

    def run(self):
        while not self.stopped:
            self.event.wait()
            self.event.clear()
            with self.lock:
                batch, self.queue = self.queue, []
            for fn in batch:
                fn()

    def stop(self):
        self.stopped = True


if HOST == "reference":
    host = asyncio_guest.ReferenceHost()
    watcher = host
elif HOST == "selectors":
    host = SelectorsHost()
    watcher = None
else:
    host = EventHost()
    watcher = None
if watcher is None:
    # These hosts cannot watch fds: their runs wait in the backend thread.
    os.environ["ASYNCIO_GUEST_WAIT"] = "thread"


async def main():
    print("READY", flush=True)
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        print("CANCELLED", flush=True)
        if MODE == "graceful":
            return "graceful"
        raise
    return "slept"


def done(out):
    print("RESULT", repr(out), flush=True)
    host.stop()


asyncio_guest.start_guest_run(
    main,
    run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
    done_callback=done,
    fd_watcher=watcher,
)
host.run()
ok = signal.getsignal(signal.SIGINT) is signal.default_int_handler
print("SIGINT RESTORED" if ok else "SIGINT NOT RESTORED", flush=True)
"""


@pytest.mark.parametrize("host_kind", ["reference", "selectors", "event"])
@pytest.mark.parametrize("mode", ["raise", "graceful"])
@pytest.mark.timeout(60)
def test_sigint_to_idle_host_process(host_kind: str, mode: str) -> None:
    """Ctrl+C sent to a process whose host loop sleeps in C code ends the guest run."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SIGINT_CHILD), host_kind, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "READY", (line, proc.stderr.read() if proc.stderr else "")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=LONG)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "CANCELLED" in out, (out, err)
    if mode == "graceful":
        assert "RESULT Value('graceful')" in out, (out, err)
    else:
        assert "RESULT Error(KeyboardInterrupt())" in out, (out, err)
    assert "SIGINT RESTORED" in out, (out, err)
    assert proc.returncode == 0, (out, err)


# ------------------------------------------------------- add_signal_handler


def test_add_signal_handler_in_guest(host: QueueHost) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        got = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, got.set)
        try:
            host.in_host(lambda: os.kill(os.getpid(), signal.SIGUSR1))
            await wait_long(got.wait())
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
        # Removing the last handler must not drop the run's own wakeup fd.
        return "signalled" if _current_wakeup_fd() != -1 else "wakeup fd lost"

    assert host.guest_run(main) == outcome.Value("signalled")
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_add_signal_handler_when_host_owns_wakeup_fd(
    host: QueueHost, host_wakeup_sock: socket.socket
) -> None:
    fd = host_wakeup_sock.fileno()
    signal.set_wakeup_fd(fd)
    try:

        async def main() -> tuple[int, int]:
            loop = asyncio.get_running_loop()
            got = asyncio.Event()
            loop.add_signal_handler(signal.SIGUSR1, got.set)
            try:
                during = _current_wakeup_fd()
                host.in_host(lambda: os.kill(os.getpid(), signal.SIGUSR1))
                await wait_long(got.wait())
            finally:
                loop.remove_signal_handler(signal.SIGUSR1)
            return during, _current_wakeup_fd()

        out = host.guest_run(main, host_uses_signal_set_wakeup_fd=True)
        assert out == outcome.Value((fd, fd))
        assert _current_wakeup_fd() == fd
    finally:
        assert signal.set_wakeup_fd(-1) == fd
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_a_handler_the_guest_leaves_behind_gives_the_host_its_fd_back(
    host: QueueHost, host_wakeup_sock: socket.socket
) -> None:
    """The run's end removes a leftover handler; the host's wakeup fd stays."""
    fd = host_wakeup_sock.fileno()
    signal.set_wakeup_fd(fd)
    try:

        async def main() -> None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, lambda: None)

        assert host.guest_run(main, host_uses_signal_set_wakeup_fd=True) == outcome.Value(None)
        assert _current_wakeup_fd() == fd
    finally:
        signal.set_wakeup_fd(-1)
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


@pytest.mark.parametrize("leave_it", [False, True], ids=["removed", "left-behind"])
def test_removing_a_guest_handler_puts_the_hosts_own_handler_back(
    host: QueueHost, host_wakeup_sock: socket.socket, leave_it: bool
) -> None:
    """A host that owns signals (Trio's KI handler) gets its handler back."""
    seen: list[int] = []

    def hosts_handler(signum: int, frame: object) -> None:
        seen.append(signum)

    signal.set_wakeup_fd(host_wakeup_sock.fileno())
    previous = signal.signal(signal.SIGUSR2, hosts_handler)
    try:

        async def main() -> bool:
            loop = asyncio.get_running_loop()
            got = asyncio.Event()
            loop.add_signal_handler(signal.SIGUSR2, got.set)
            host.in_host(lambda: os.kill(os.getpid(), signal.SIGUSR2))
            await wait_long(got.wait())
            if not leave_it:
                loop.remove_signal_handler(signal.SIGUSR2)
            return signal.getsignal(signal.SIGUSR2) is hosts_handler

        out = host.guest_run(main, host_uses_signal_set_wakeup_fd=True)
        assert out == outcome.Value(not leave_it)
        assert signal.getsignal(signal.SIGUSR2) is hosts_handler
        assert seen == []  # the guest's handler had it while installed
        os.kill(os.getpid(), signal.SIGUSR2)
        assert seen == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)
        signal.set_wakeup_fd(-1)


@pytest.mark.skipif(
    not hasattr(asyncio, "SafeChildWatcher"), reason="child watchers are gone from 3.14 on"
)
def test_a_sigchld_child_watcher_set_before_the_run_sees_its_child_and_ends_cleanly() -> None:
    """3.10-3.13's policy attaches a ``SafeChildWatcher`` to the run's loop when
    the run sets it as the thread's loop; its SIGCHLD handler took the loop's
    self-pipe as the wakeup fd before the run had set its own, the run saved
    that as the program's fd, and put it back once the loop had closed it:
    ``OSError: [Errno 9]`` instead of main's result (and, under GLib, which
    swaps the fd, every child's exit lost)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12-3.13
        watcher = asyncio.SafeChildWatcher()
        asyncio.set_child_watcher(watcher)
    try:
        import asyncio_guest

        async def main() -> int | None:
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
            return await asyncio.wait_for(proc.wait(), LONG)

        before = _current_wakeup_fd()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert asyncio_guest.run(main) == 0
        assert _current_wakeup_fd() == before
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(None)
        watcher.close()
