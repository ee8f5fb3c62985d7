"""The GLib host (``asyncio_guest.glib``): a bare ``GLib.MainLoop``, GTK 3 or GTK 4.

Two harnesses when PyGObject imports:

* ``glib``: ``run(main, loop=GLib.MainLoop())``, no widgets;
* ``gtk3``: a ``Gtk.Window`` with buttons, ``run(main)`` (which runs
  ``Gtk.main()`` since GTK 3 is imported); needs a display (``xvfb-run``).
  The window's ``destroy`` quits ``Gtk.main`` as GTK 3 programs do, so
  ``window.close()`` (the delete-event path) ends the run.

GTK 4 cannot share a process with GTK 3 (``gi.require_version``): with
``ASYNCIO_GUEST_GTK=4`` the second harness is ``gtk4`` instead (``make
test-glib`` runs the set once per GTK):

* ``gtk4``: a ``Gtk.ApplicationWindow`` of a ``Gtk.Application`` made per run,
  ``run(main, application=app)``; closing the window quits the application
  (its last window), which ends the run. GTK 4 has no ``Gtk.Dialog.run``: its
  modal is a modal window and a nested ``GLib.MainLoop`` until it closes (what
  a program porting ``run()`` to GTK 4 writes).

What GTK opens once and keeps (the X connection, fonts, the settings) is
opened here at import (collection), before the leak checks of the first test
take their snapshot.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .harness import SIGINT, TOOLKIT_LOOP, WIDGETS, Harness

_T = TypeVar("_T")


def _load_glib() -> Any:
    try:
        import gi

        from asyncio_guest import glib
    except ImportError:
        return None
    del gi
    return glib


GTK_MAJOR = 4 if os.environ.get("ASYNCIO_GUEST_GTK") == "4" else 3


def _load_gtk3() -> Any:
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        return None
    try:
        import gi

        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk
    except (ImportError, ValueError):
        return None
    ok, _ = Gtk.init_check(None)
    if not ok:
        return None
    # Warm up what GTK opens once and keeps.
    window = Gtk.Window(title="warm-up")
    window.add(Gtk.Button(label="warm-up"))
    window.show_all()
    dialog = Gtk.Dialog(transient_for=window, modal=True)
    dialog.show_all()
    while Gtk.events_pending():
        Gtk.main_iteration()
    dialog.destroy()
    window.destroy()
    while Gtk.events_pending():
        Gtk.main_iteration()
    return Gtk


class _Base:
    """What both harnesses share: GLib timers and idle callbacks, errors recorded."""

    def __init__(self, glib: Any) -> None:
        from gi.repository import GLib

        self.glib = glib
        self.GLib = GLib
        self.errors: list[BaseException] = []
        self._sources: list[int] = []

    def _guard(self, fn: Callable[[], object]) -> Callable[..., None]:
        """A GLib/GTK callback that records what ``fn`` raises (GLib would only print it)."""

        def call(*_: Any) -> None:
            try:
                fn()
            except BaseException as exc:
                self.errors.append(exc)

        return call

    def _finish(self) -> None:
        for source_id in self._sources:
            source = self.GLib.MainContext.default().find_source_by_id(source_id)
            if source is not None and not source.is_destroyed():
                source.destroy()
        self._sources.clear()
        if self.errors:
            first = self.errors[0]
            self.errors = []
            raise AssertionError(f"a host callback raised: {first!r}") from first

    def call_every(self, interval: float, fn: Callable[[], object]) -> Callable[[], None]:
        call = self._guard(fn)
        GLib = self.GLib
        stopped = [False]

        def fire() -> bool:
            call()
            return not stopped[0]

        source_id = GLib.timeout_add(max(1, round(interval * 1000)), fire)
        self._sources.append(source_id)

        def stop() -> None:
            if not stopped[0]:
                stopped[0] = True
                GLib.source_remove(source_id)
                self._sources.remove(source_id)

        return stop

    def call_soon_in_host(self, fn: Callable[[], object]) -> None:
        call = self._guard(fn)

        def once() -> bool:
            call()
            return False

        self.GLib.idle_add(once, priority=self.GLib.PRIORITY_DEFAULT)


class GLibHarness(_Base):
    name = "glib"
    capabilities: frozenset[str] = frozenset({SIGINT, TOOLKIT_LOOP})

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        self.errors = []
        try:
            result: _T = self.glib.run(main, loop=self.GLib.MainLoop())
        finally:
            self._finish()
        return result

    def make_button(self, command: Callable[[], object]) -> Any:
        raise NotImplementedError

    def click(self, button: Any) -> None:
        raise NotImplementedError

    def open_modal(self, on_open: Callable[[Callable[[Any], None]], object]) -> Any:
        raise NotImplementedError

    def close_window(self) -> None:
        raise NotImplementedError


class Gtk3Harness(_Base):
    name = "gtk3"
    capabilities: frozenset[str] = frozenset({WIDGETS, SIGINT, TOOLKIT_LOOP})

    def __init__(self, glib: Any, gtk: Any) -> None:
        super().__init__(glib)
        self.Gtk = gtk
        self._window: Any = None
        self._box: Any = None

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        Gtk = self.Gtk
        self.errors = []
        window = self._window = Gtk.Window(title=f"asyncio-guest scenario ({self.name})")
        window.set_default_size(240, 120)
        self._box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        window.add(self._box)
        handler = window.connect("destroy", lambda *_: Gtk.main_quit())
        window.show_all()
        try:
            result: _T = self.glib.run(main)
        finally:
            self._window = self._box = None
            if window.handler_is_connected(handler):
                window.disconnect(handler)
            window.destroy()
            while Gtk.events_pending():
                Gtk.main_iteration()
            self._finish()
        return result

    def make_button(self, command: Callable[[], object]) -> Any:
        button = self.Gtk.Button(label="scenario button")
        button.connect("clicked", self._guard(command))
        self._box.pack_start(button, False, False, 0)
        button.show()
        return button

    def click(self, button: Any) -> None:
        button.clicked()

    def open_modal(self, on_open: Callable[[Callable[[Any], None]], object]) -> Any:
        Gtk = self.Gtk
        dialog = Gtk.Dialog(title="scenario dialog", transient_for=self._window, modal=True)
        dialog.add_button("OK", Gtk.ResponseType.OK)
        closed_with: list[Any] = []

        def close(value: Any) -> None:
            closed_with.append(value)
            dialog.response(Gtk.ResponseType.OK)

        self.call_soon_in_host(lambda: on_open(close))
        try:
            dialog.run()  # GTK 3's nested main loop, until a response
        finally:
            dialog.destroy()
        return closed_with[0] if closed_with else None

    def close_window(self) -> None:
        # What the window manager's close button does: delete-event, then
        # (unhandled) the window is destroyed, and its destroy handler quits.
        self._window.close()


def _load_gtk4() -> Any:
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        return None
    try:
        import gi

        gi.require_version("Gtk", "4.0")
        from gi.repository import Gtk
    except (ImportError, ValueError):
        return None
    if not Gtk.init_check():
        return None
    # Warm up what GTK opens once and keeps (as for GTK 3).
    from gi.repository import GLib

    window = Gtk.Window(title="warm-up")
    window.set_child(Gtk.Button(label="warm-up"))
    window.present()
    context = GLib.MainContext.default()
    for _ in range(50):
        context.iteration(False)
    window.destroy()
    while context.iteration(False):
        pass
    return Gtk


class Gtk4Harness(_Base):
    name = "gtk4"
    capabilities: frozenset[str] = frozenset({WIDGETS, SIGINT, TOOLKIT_LOOP})

    def __init__(self, glib: Any, gtk: Any) -> None:
        super().__init__(glib)
        self.Gtk = gtk
        self._window: Any = None
        self._box: Any = None

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        from gi.repository import Gio

        Gtk = self.Gtk
        self.errors = []
        app = Gtk.Application(
            application_id="org.asyncio_guest.Scenario",
            flags=Gio.ApplicationFlags.NON_UNIQUE,
        )

        def on_activate(app: Any) -> None:
            window = self._window = Gtk.ApplicationWindow(
                application=app, title=f"asyncio-guest scenario ({self.name})"
            )
            window.set_default_size(240, 120)
            self._box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
            window.set_child(self._box)
            window.present()

        app.connect("activate", on_activate)
        try:
            result: _T = self.glib.run(main, application=app)
        finally:
            window, self._window, self._box = self._window, None, None
            if window is not None:
                window.destroy()
            context = self.GLib.MainContext.default()
            while context.iteration(False):
                pass
            self._finish()
        return result

    def make_button(self, command: Callable[[], object]) -> Any:
        button = self.Gtk.Button(label="scenario button")
        button.connect("clicked", self._guard(command))
        self._box.append(button)
        return button

    def click(self, button: Any) -> None:
        button.emit("clicked")

    def open_modal(self, on_open: Callable[[Callable[[Any], None]], object]) -> Any:
        Gtk = self.Gtk
        dialog = Gtk.Window(title="scenario dialog", transient_for=self._window, modal=True)
        nested = self.GLib.MainLoop()
        closed_with: list[Any] = []

        def close(value: Any) -> None:
            closed_with.append(value)
            dialog.close()

        dialog.connect("close-request", lambda *_: nested.quit() or False)
        dialog.present()
        self.call_soon_in_host(lambda: on_open(close))
        try:
            nested.run()  # the nested loop a modal runs, until the window closes
        finally:
            dialog.destroy()
        return closed_with[0] if closed_with else None

    def close_window(self) -> None:
        # What the window manager's close button does: close-request, then the
        # application's last window goes, and the application quits.
        self._window.close()


_glib = _load_glib()
HARNESSES: list[Harness] = []
if _glib is not None:
    HARNESSES.append(GLibHarness(_glib))
    if GTK_MAJOR == 4:
        _gtk4 = _load_gtk4()
        if _gtk4 is not None:
            HARNESSES.append(Gtk4Harness(_glib, _gtk4))
    else:
        _gtk = _load_gtk3()
        if _gtk is not None:
            HARNESSES.append(Gtk3Harness(_glib, _gtk))
