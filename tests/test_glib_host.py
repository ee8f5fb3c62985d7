"""``asyncio_guest.glib`` on a real GLib: what the shared scenarios do not cover.

GTK 4 cannot share a process with GTK 3 (the gtk3 scenario harness imports
it), so the GTK 4 test runs in a child process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from .scenarios import harness_glib
from .scenarios.harness import unavailable

if not harness_glib.HARNESSES:
    unavailable("glib", "PyGObject does not import here")

import itertools

from gi.repository import Gio, GLib

from asyncio_guest import glib

# GApplication's first registration starts GLib's shared worker (its context's
# eventfd stays open for the process), and the default main context is made at
# its first use (its wake-up eventfd likewise): done here, neither is the leak
# of whichever test happens to run first.
_WARM_UP = Gio.Application(
    application_id="org.asyncio_guest.WarmUp", flags=Gio.ApplicationFlags.NON_UNIQUE
)
_WARM_UP.register(None)
GLib.MainContext.default().iteration(False)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child(code: str, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "src"), ROOT]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )


def _app(name: str) -> Any:
    app = Gio.Application(
        application_id=f"org.asyncio_guest.{name}", flags=Gio.ApplicationFlags.NON_UNIQUE
    )
    app.connect("activate", lambda _app: None)
    return app


def _later(ms: int, fn: Any) -> None:
    def once() -> bool:
        fn()
        return False

    GLib.timeout_add(ms, once)


# ------------------------------------------------------------ priorities


@pytest.mark.parametrize("wait", ["thread", "fd"])
def test_a_glib_timeout_keeps_its_time_while_200_tasks_spin(
    wait: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy guest's next tick is at PRIORITY_DEFAULT_IDLE: a 10 ms GLib timeout
    (PRIORITY_DEFAULT) still fires on time."""
    monkeypatch.setenv("ASYNCIO_GUEST_WAIT", wait)
    interval_ms = 10
    fired: list[float] = []

    def tick() -> bool:
        fired.append(time.perf_counter())
        return True

    async def main() -> int:
        loop = asyncio.get_running_loop()
        source_id = GLib.timeout_add(interval_ms, tick)
        end = loop.time() + 1.0
        spins = [0]

        async def spin() -> None:
            while loop.time() < end:
                spins[0] += 1
                await asyncio.sleep(0)

        try:
            await asyncio.gather(*(spin() for _ in range(200)))
        finally:
            GLib.source_remove(source_id)
        return spins[0]

    spins = glib.run(main, loop=GLib.MainLoop())
    assert spins > 2000, spins
    gaps = [b - a for a, b in itertools.pairwise(fired)]
    assert len(gaps) >= 50, f"the GLib timeout fired {len(fired)} times in 1 s"
    lateness = statistics.median(gaps) - interval_ms / 1000
    print(f"[{wait}] median lateness {lateness * 1e3:.2f} ms, max gap {max(gaps) * 1e3:.1f} ms")
    assert lateness < 0.005, f"median GLib timeout lateness {lateness * 1e3:.1f} ms"


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_an_idle_source_keeps_its_turns_while_tasks_spin(debug: bool) -> None:
    """A busy guest's ticks take turns with the program's own idle sources
    (PRIORITY_DEFAULT_IDLE: GTK's deferred work), in asyncio's debug mode too:
    there each drain holds two callbacks (the engine's probe and the next tick),
    and the wake-up sent ahead for the second once went out at the default
    priority, so not one idle callback ran while tasks spun."""
    calls = [0]

    def idle() -> bool:
        calls[0] += 1
        return True

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = 10.0
        end = loop.time() + 0.5
        spins = [0]

        async def spin() -> None:
            while loop.time() < end:
                spins[0] += 1
                await asyncio.sleep(0)

        source_id = GLib.idle_add(idle, priority=GLib.PRIORITY_DEFAULT_IDLE)
        try:
            await asyncio.gather(*(spin() for _ in range(20)))
        finally:
            GLib.source_remove(source_id)
        return spins[0], calls[0]

    spins, idle_calls = glib.run(main, loop=GLib.MainLoop(), debug=debug)
    assert spins > 2000, spins
    assert idle_calls >= 50, f"{idle_calls} idle callbacks in 0.5 s of spinning"


@pytest.mark.timeout(30)  # the failure this guards against is a livelock
def test_a_busy_guest_with_a_readable_socket_does_not_livelock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Zero-thread wait: while a busy tick is pending, the (level-triggered) fd
    watch is lowered to its priority, so a readable epoll fd cannot starve it."""
    monkeypatch.setenv("ASYNCIO_GUEST_WAIT", "fd")

    async def main() -> int:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        stop = [False]
        await asyncio.sleep(0.02)  # an idle wait first: the fd watch is made

        async def spin() -> None:
            while not stop[0]:
                await asyncio.sleep(0)

        def send() -> None:
            # From outside the guest, while it is busy: the epoll fd becomes
            # readable between its ticks.
            for _ in range(20):
                time.sleep(0.005)
                b.send(b"x")

        spinners = [asyncio.create_task(spin()) for _ in range(20)]
        sender = threading.Thread(target=send)
        sender.start()
        try:
            got = 0
            while got < 20:
                got += len(await asyncio.wait_for(loop.sock_recv(a, 10), 5))
            return got
        finally:
            stop[0] = True
            sender.join()
            await asyncio.gather(*spinners)
            a.close()
            b.close()

    t0 = time.monotonic()
    assert glib.run(main, loop=GLib.MainLoop()) == 20
    assert time.monotonic() - t0 < 10


class _WakesBelowTheWatchHost(glib.GLibHost):
    """Every wake-up posted below the fd watch, which is never lowered, and
    workers posting through the host: the shape of a host whose posted
    callbacks run when it is idle (wxGTK's pending events)."""

    worker_wakes_by_fd = False

    def _attach_wake(self, priority: int) -> None:
        super()._attach_wake(glib.BUSY_PRIORITY)

    def _post_busy(self) -> None:
        self._attach_wake(glib.BUSY_PRIORITY)


def test_a_readable_watch_does_not_starve_a_tick_posted_below_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker posts a tick, then makes the epoll fd readable: the watch fires
    first and finds the tick owed. It must step aside (until the next arming)
    rather than fire at every iteration above the posted tick for ever."""
    monkeypatch.setenv("ASYNCIO_GUEST_WAIT", "fd")
    host = _WakesBelowTheWatchHost()
    loop_g = GLib.MainLoop()
    out: list[Any] = []
    timed_out: list[bool] = []

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        try:
            await asyncio.sleep(0.02)  # an idle wait first: the fd watch is made
            fut = loop.create_future()

            def worker() -> None:
                loop.call_soon_threadsafe(fut.set_result, "posted")  # a tick owed
                b.send(b"x")  # then the watched fd is readable

            def in_host() -> bool:
                # On the GLib thread between two iterations, the guest idle: the
                # worker's tick is posted and the fd readable before GLib looks.
                thread = threading.Thread(target=worker)
                thread.start()
                thread.join()
                return False

            recv = asyncio.ensure_future(loop.sock_recv(a, 10))
            await asyncio.sleep(0.01)
            GLib.timeout_add(10, in_host)
            assert await fut == "posted"
            return await recv
        finally:
            a.close()
            b.close()

    def done(result: Any) -> None:
        out.append(result)
        loop_g.quit()

    def watchdog() -> bool:
        timed_out.append(True)
        loop_g.quit()
        return False

    watchdog_id = GLib.timeout_add(5_000, watchdog)
    try:
        glib.start_guest_run(main, done_callback=done, host=host)
        loop_g.run()
    finally:
        if not timed_out:
            GLib.source_remove(watchdog_id)
        host.close()
    assert not timed_out, "the posted tick never ran"
    assert out[0].unwrap() == b"x"


# ------------------------------------------------------------ the host object


def test_run_sync_soon_threadsafe_from_workers_lands_on_the_glib_thread_in_order() -> None:
    per_thread, n_threads = 2000, 4
    host = glib.GLibHost()
    loop = GLib.MainLoop()
    seen: dict[int, list[int]] = {t: [] for t in range(n_threads)}
    wrong: list[int] = []
    remaining = [per_thread * n_threads]

    def record(t: int, i: int) -> None:
        if threading.current_thread() is not threading.main_thread():
            wrong.append(i)
        seen[t].append(i)
        remaining[0] -= 1
        if not remaining[0]:
            loop.quit()

    def worker(t: int) -> None:
        for i in range(per_thread):
            host.run_sync_soon_threadsafe(lambda t=t, i=i: record(t, i))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    watchdog = GLib.timeout_add(20_000, lambda: loop.quit() or False)
    try:
        loop.run()
    finally:
        GLib.source_remove(watchdog)
        for th in threads:
            th.join()
        host.close()
    assert not wrong
    assert all(seen[t] == list(range(per_thread)) for t in range(n_threads))


def test_a_wake_up_runs_beside_a_readable_fd_watch_that_does_not_consume() -> None:
    """The zero-thread wait's fd watch stays readable while a posted tick waits
    (``FdWaits.ready`` returns early then): the wake-up must still be dispatched.
    It was not, when PyGObject left our "PRIORITY_DEFAULT" idle source at 200."""
    host = glib.GLibHost()
    loop = GLib.MainLoop()
    r, w = os.pipe()
    os.write(w, b"x")  # readable for the whole test: nobody reads it
    fd_calls = [0]
    ran: list[str] = []

    def woken() -> None:
        ran.append("wake")
        loop.quit()

    host.watch_readable(r, lambda: fd_calls.__setitem__(0, fd_calls[0] + 1))
    poster = threading.Thread(target=host.run_sync_soon_threadsafe, args=(woken,))
    watchdog = GLib.timeout_add(5_000, lambda: ran.append("watchdog") or loop.quit() or False)
    try:
        poster.start()
        poster.join()
        assert host._wake_source.get_priority() == glib.WAKE_PRIORITY
        loop.run()
    finally:
        if "watchdog" not in ran:
            GLib.source_remove(watchdog)
        host.close()
        os.close(r)
        os.close(w)
    assert ran == ["wake"], (ran, fd_calls[0])


def test_close_is_idempotent_and_destroys_every_source() -> None:
    host = glib.GLibHost()
    r, w = os.pipe()
    try:
        host.watch_readable(r, lambda: None)
        cancel = host.call_later(10.0, lambda: None)
        host.run_sync_soon_threadsafe(lambda: None)
        sources = [*host._fd_sources, *host._timers, host._wake_source]
        assert len(sources) == 3 and not any(s.is_destroyed() for s in sources)
        host.close()
        host.close()
        cancel()  # harmless after close
        assert all(s.is_destroyed() for s in sources)
        assert host.closed
        with pytest.raises(RuntimeError, match="closed"):
            host.run_sync_soon_threadsafe(lambda: None)
        with pytest.raises(RuntimeError, match="closed"):
            host.call_later(0, lambda: None)
    finally:
        os.close(r)
        os.close(w)


def test_call_later_never_fires_early_and_unwatch_is_idempotent() -> None:
    host = glib.GLibHost()
    loop = GLib.MainLoop()
    r, w = os.pipe()
    fired: list[float] = []
    reads = [0]

    def on_readable() -> None:
        os.read(r, 1)
        reads[0] += 1

    unwatch = host.watch_readable(r, on_readable)
    os.write(w, b"x")
    t0 = time.monotonic()
    host.call_later(0.0123, lambda: (fired.append(time.monotonic() - t0), loop.quit()))
    try:
        loop.run()
    finally:
        unwatch()
        unwatch()
        host.close()
        os.close(r)
        os.close(w)
    assert fired and fired[0] >= 0.0123
    assert reads == [1]


def test_no_source_of_the_run_is_left_on_the_context() -> None:
    made: list[glib.GLibHost] = []
    real = glib.GLibHost

    def spy(*args: Any) -> glib.GLibHost:
        host = real(*args)
        made.append(host)
        return host

    async def main() -> None:
        await asyncio.sleep(0.01)
        await asyncio.to_thread(time.sleep, 0.01)

    glib.GLibHost = spy  # type: ignore[misc]
    try:
        glib.run(main, loop=GLib.MainLoop())
    finally:
        glib.GLibHost = real  # type: ignore[misc]
    (host,) = made
    assert host.closed
    assert not host._fd_sources and not host._timers and host._wake_source is None
    # Nothing of ours is pending on the default context any more.
    context = GLib.MainContext.default()
    assert not context.pending()


# ------------------------------------------------------------ the entries


def test_gio_application_quit_mid_run_cancels_main_and_keeps_it_alive() -> None:
    app = _app("Test")
    seen: list[str] = []

    async def main() -> str:
        _later(20, app.quit)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            await asyncio.sleep(0.02)  # still running after run() returned
            seen.append("cleaned up")
            return "handled"
        return "not cancelled"

    assert glib.run(main, application=app) == "handled"
    assert seen == ["cancelled", "cleaned up"]


def test_gio_application_main_returning_quits_the_application() -> None:
    app = _app("Test2")

    async def main() -> int:
        await asyncio.sleep(0.01)
        return 7

    t0 = time.monotonic()
    assert glib.run(main, application=app) == 7
    assert time.monotonic() - t0 < 5


def test_run_refused_inside_a_running_loop_leaves_the_application_unheld() -> None:
    """``glib.run`` called from a running asyncio loop is refused, and what it
    took before the refusal (the application's hold, its window handler) is
    given back: a hold left behind made the program's own ``app.run()`` later
    wait for ever."""
    app = _app("Refused")

    async def wrongly_nested() -> None:
        with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
            glib.run(asyncio.sleep, 0, application=app)

    asyncio.run(wrongly_nested())
    rescued: list[bool] = []

    def rescue() -> bool:  # only if the application is still held
        rescued.append(True)
        app.release()
        return False

    rescue_id = GLib.timeout_add(3000, rescue)
    try:
        app.run(None)  # an unheld application with nothing to do returns at once
    finally:
        if not rescued:
            GLib.source_remove(rescue_id)
    assert not rescued, "glib.run left the application held"


def test_run_with_nothing_given_runs_a_glib_main_loop() -> None:
    proc = _child(
        """
        import asyncio, sys
        from asyncio_guest import glib
        from gi.repository import GLib
        seen = []
        real_run = GLib.MainLoop.run
        def spy(self):
            seen.append("MainLoop.run")
            return real_run(self)
        GLib.MainLoop.run = spy
        async def main():
            await asyncio.sleep(0.01)
            return 42
        print(glib.run(main), seen[0], "Gtk" in str(sys.modules.keys()))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["42", "MainLoop.run", "False"]


@pytest.mark.skipif(
    sys.platform.startswith("linux") and not os.environ.get("DISPLAY"), reason="needs a display"
)
def test_gtk3_redraws_keep_their_rate_while_the_guest_streams_at_full_speed() -> None:
    """Asyncio I/O must not starve GTK's redraw (GDK_PRIORITY_REDRAW, below
    the default priority of our wake-ups and fd watch): a window asking for a
    redraw every 16 ms keeps most of its frames while the guest moves data
    over loopback as fast as it can (busy ticks yield to the GUI)."""
    proc = _child(
        """
        import asyncio, time
        import gi
        gi.require_version("Gtk", "3.0")
        from gi.repository import GLib, Gtk
        from asyncio_guest import glib

        win = Gtk.Window(title="redraws")
        area = Gtk.DrawingArea()
        area.set_size_request(200, 200)
        win.add(area)
        win.show_all()
        draws = [0]
        area.connect("draw", lambda *_: draws.__setitem__(0, draws[0] + 1))
        GLib.timeout_add(16, lambda: area.queue_draw() or True)
        chunk = b"x" * (256 << 10)

        async def main():
            async def serve(r, w):
                try:
                    while True:
                        w.write(chunk)
                        await w.drain()
                except (ConnectionError, asyncio.CancelledError):
                    pass
                finally:
                    w.close()

            server = await asyncio.start_server(serve, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            await asyncio.sleep(0.3)
            d0 = draws[0]
            await asyncio.sleep(1.0)
            idle = draws[0] - d0
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            got, d0, t0 = 0, draws[0], time.monotonic()
            while time.monotonic() - t0 < 1.0:
                got += len(await reader.read(1 << 20))
            busy = draws[0] - d0
            writer.close()
            server.close()
            await server.wait_closed()
            return idle, busy, got

        idle, busy, got = glib.run(main)
        print(idle, busy, got)
        """
    )
    assert proc.returncode == 0, proc.stderr
    idle, busy, got = map(int, proc.stdout.split())
    assert got > 10_000_000, got  # the guest really streamed (tens of MB/s at least)
    assert idle >= 30, idle  # the display redraws at all
    assert busy >= idle // 2, (idle, busy)  # and keeps at least half its rate meanwhile


@pytest.mark.skipif(
    sys.platform.startswith("linux") and not os.environ.get("DISPLAY"), reason="needs a display"
)
def test_gtk4_application_window_closed_mid_run_cancels_main() -> None:
    proc = _child(
        """
        import asyncio, threading, warnings
        import gi
        gi.require_version("Gtk", "4.0")
        from gi.repository import Gio, GLib, Gtk
        from asyncio_guest import glib, run_modal

        app = Gtk.Application(application_id="org.asyncio_guest.Gtk4",
                              flags=Gio.ApplicationFlags.NON_UNIQUE)
        seen = []

        def on_activate(app):
            win = Gtk.ApplicationWindow(application=app, title="gtk4")
            button = Gtk.Button(label="click")
            button.connect("clicked", lambda b: seen.append("clicked"))
            win.set_child(button)
            win.present()
            app.button = button
            app.win = win

        app.connect("activate", on_activate)

        async def main():
            await asyncio.sleep(0.05)
            app.button.emit("clicked")
            GLib.timeout_add(20, lambda: app.win.close() or False)
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                seen.append("cancelled")
                await asyncio.sleep(0.02)
                seen.append("cleaned up")
                raise

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                glib.run(main, application=app)
            except asyncio.CancelledError:
                seen.append("CancelledError")
        print(" ".join(seen), len(threading.enumerate()))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["clicked", "cancelled", "cleaned", "up", "CancelledError", "1"]


_APPLICATION_LIVES_ON_CHILD = """
import asyncio, sys, warnings
import gi
gtk_major, case = sys.argv[1], sys.argv[2]
gi.require_version("Gtk", gtk_major + ".0")
from gi.repository import Gio, GLib, Gtk
from asyncio_guest import glib

app = Gtk.Application(application_id="org.asyncio_guest.LivesOn",
                      flags=Gio.ApplicationFlags.NON_UNIQUE)
def show(title):
    win = Gtk.ApplicationWindow(application=app, title=title)
    win.present() if gtk_major == "4" else win.show_all()

def later():
    app.get_windows()[0].close()
    if case == "switch":
        show("main")  # the login window gives way to the main window
    return False

def on_activate(app):
    if case == "held":
        app.hold()  # the program's own: it keeps running with no window
    show("login")
    GLib.timeout_add(100, later)

app.connect("activate", on_activate)

async def main():
    await asyncio.sleep(0.6)
    if case == "held":
        app.release()
    return "main finished"

with warnings.catch_warnings():
    warnings.simplefilter("error")
    try:
        print(glib.run(main, application=app))
    except asyncio.CancelledError:
        print("CancelledError")
"""


@pytest.mark.skipif(
    sys.platform.startswith("linux") and not os.environ.get("DISPLAY"), reason="needs a display"
)
@pytest.mark.parametrize("gtk_major", ["3", "4"])
@pytest.mark.parametrize("case", ["switch", "held"])
def test_an_application_that_lives_on_without_us_keeps_main_running(
    gtk_major: str, case: str
) -> None:
    """The application's run ends when its own use count does, as without us:
    a window closed and another opened in one callback (GTK 4 removes the
    closed one at once), or the last window closed while the program holds
    the application, leave it running, and main with it. The run cancelled
    main on the first window list it saw empty."""
    proc = _child(
        "import sys; sys.argv[1:] = ["
        + repr(gtk_major) + ", " + repr(case) + "]\n" + _APPLICATION_LIVES_ON_CHILD
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "main finished", proc.stderr


_RUN_DIALOG_CHILD = """
import asyncio, os, signal, sys, threading
import gi
gtk_major, ending = sys.argv[1], sys.argv[2]
gi.require_version("Gtk", gtk_major + ".0")
from gi.repository import Gio, Gtk
from asyncio_guest import glib

app = None
if gtk_major == "4":
    app = Gtk.Application(application_id="org.asyncio_guest.RunDialog",
                          flags=Gio.ApplicationFlags.NON_UNIQUE)

async def main():
    if app is None:
        win = Gtk.Window(title="main")
        win.show_all()
    else:
        win = Gtk.ApplicationWindow(application=app, title="main")
        win.present()
    dialog = Gtk.Dialog(title="ask", transient_for=win)
    ok = dialog.add_button("OK", Gtk.ResponseType.OK)
    ticks = [0]

    async def meanwhile():  # asyncio runs while the dialog is open
        for _ in range(20):
            await asyncio.sleep(0.005)
            ticks[0] += 1
        if ending == "click":
            ok.emit("clicked")  # a real button's click: the dialog's response

    helper = asyncio.create_task(meanwhile())
    if ending == "main-ends":  # main ends with the dialog open and awaited
        asyncio.create_task(glib.run_dialog(dialog))
        await helper
        app_dialog.append(dialog)
        return "main's value"
    if ending == "ctrl-c":
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    answer = await glib.run_dialog(dialog)
    await helper
    return answer == Gtk.ResponseType.OK, ticks[0], dialog.get_modal()

app_dialog = []
try:
    if app is None:
        result = glib.run(main)
    else:
        result = glib.run(main, application=app)
except KeyboardInterrupt:
    result = "KeyboardInterrupt"
print(result, [d.get_visible() for d in app_dialog], len(threading.enumerate()), flush=True)
"""


@pytest.mark.skipif(
    sys.platform.startswith("linux") and not os.environ.get("DISPLAY"), reason="needs a display"
)
@pytest.mark.parametrize("ending", ["click", "main-ends", "ctrl-c"])
@pytest.mark.parametrize("gtk_major", ["3", "4"])
def test_run_dialog_awaits_a_response_with_no_nested_loop(gtk_major: str, ending: str) -> None:
    """``glib.run_dialog``: asyncio runs while the dialog is open and a click's
    response comes back; ``main`` ending with the dialog open hides it and
    ends the run at once; so does Ctrl+C (no nested loop to wait for)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "src"), ROOT]))
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_DIALOG_CHILD, gtk_major, ending],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    expected = {
        "click": "(True, 20, True) [] 1",
        "main-ends": "main's value [False] 1",
        "ctrl-c": "KeyboardInterrupt [] 1",
    }[ending]
    assert proc.stdout.strip() == expected, (proc.stdout, proc.stderr[-2000:])


@pytest.mark.parametrize(
    ("option", "says"),
    [
        # Buttons pressed, the modal dialog answered while the feed streams
        # behind it, the feed cancelled; a clean exit.
        ("--smoke", b"dialog answered, feed cancelled"),
        # The window closed while the feed streams: main is cancelled, the
        # server's live connection ends (wait_closed() waits for it on
        # 3.12+), the program exits 0 without a traceback.
        ("--smoke-close", b"smoke: closing the window"),
    ],
)
def test_the_example_app_smoke_run(option: str, says: bytes) -> None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(here, "src"), here]))
    proc = subprocess.run(
        [sys.executable, os.path.join(here, "examples", "glib_app.py"), option],
        env=env, capture_output=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert says in proc.stdout
    assert proc.stderr == b"", proc.stderr.decode()
