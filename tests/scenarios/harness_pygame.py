"""The pygame host (``asyncio_guest.pygame``): a 60 fps frame loop, pygame-ce or pygame.

One harness when pygame imports and its video system starts (the SDL dummy
driver unless ``SDL_VIDEODRIVER`` says otherwise): named ``pygame-ce`` or
``pygame`` after the package found (they cannot share a venv), so
``ASYNCIO_GUEST_REQUIRE_HOSTS=pygame`` accepts either.

The harness is a game's frame loop, the pattern the module is for:
``run(main, frame_loop=...)`` with a loop that hands every event to
``host.handle``, dispatches the harness's own events, calls ``host.pump()``
and ``clock.tick(60)``. Both wait strategies apply (the frame loop pumps every
frame, so the zero-thread wait polls the guest's selector there). What stands
for the toolkit's pieces, all through pygame's real event queue:

* a button is a rectangle of the window; ``click`` posts a left
  ``MOUSEBUTTONDOWN`` at its centre, which the frame loop hit-tests;
* the host's repeating timer is ``pygame.time.set_timer`` (SDL's timer thread
  posts an event of a custom type);
* ``call_soon_in_host`` posts an event carrying the function;
* a modal dialog is a nested frame loop (pumping the guest too), as a game's
  pause menu would be;
* closing the window posts ``pygame.QUIT``, as the window manager's close does.

The event-driven pattern (``pygame.event.wait()`` and the doorbell) has no
zero-thread wait, so it cannot run this set's ``[fd]`` half; it is tested in
``tests/test_pygame_host.py``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .harness import SIGINT, TOOLKIT_LOOP, WIDGETS, Harness

_T = TypeVar("_T")

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def _load() -> Any:
    try:
        import pygame
    except ImportError:
        return None
    try:
        pygame.display.init()
        # What SDL opens once and keeps (the video driver's state), opened
        # here at collection, before the leak checks take their snapshot.
        pygame.display.set_mode((240, 120))
        pygame.event.get()
    except pygame.error:
        return None
    return pygame


class PygameHarness:
    capabilities: frozenset[str] = frozenset({WIDGETS, SIGINT, TOOLKIT_LOOP})

    def __init__(self, pygame: Any) -> None:
        self.pg = pygame
        self.name = "pygame-ce" if getattr(pygame, "IS_CE", False) else "pygame"
        self.call_type: int = pygame.event.custom_type()
        self.errors: list[BaseException] = []
        self._buttons: list[tuple[Any, Callable[[], object]]] = []
        self._timers: dict[int, Callable[[], object]] = {}
        self._free_timer_types: list[int] = []

    # ------------------------------------------------------------ the loop

    def _guarded(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:
            self.errors.append(exc)

    def _dispatch(self, host: Any, event: Any) -> None:
        """One event of the frame loop: the host's first, then the harness's."""
        pg = self.pg
        if host.handle(event):
            return
        if event.type == self.call_type:
            self._guarded(event.fn)
        elif event.type in self._timers:
            self._guarded(self._timers[event.type])
        elif event.type == pg.MOUSEBUTTONDOWN and event.button == 1:
            for rect, command in list(self._buttons):
                if rect.collidepoint(event.pos):
                    self._guarded(command)

    def _frames(self, host: Any, until: Callable[[], bool]) -> None:
        """Frames at 60 fps until ``until()``: events, guest work, draw, tick."""
        pg = self.pg
        clock = pg.time.Clock()
        screen = pg.display.get_surface()
        while not until():
            for event in pg.event.get():
                self._dispatch(host, event)
            host.pump()
            screen.fill((0, 0, 0))
            for rect, _ in self._buttons:
                pg.draw.rect(screen, (200, 200, 200), rect)
            pg.display.flip()
            clock.tick(60)

    def run(self, main: Callable[[], Awaitable[_T]]) -> _T:
        from asyncio_guest import pygame as guest_pygame

        self.errors = []
        self._host: Any = None
        self.pg.event.get()  # nothing left over from an earlier test

        def frame_loop(host: Any) -> None:
            self._host = host
            self._frames(host, lambda: not host.running)

        try:
            result: _T = guest_pygame.run(main, frame_loop=frame_loop)
        finally:
            for kind in list(self._timers):
                self.pg.time.set_timer(kind, 0)
                self._free_timer_types.append(kind)
            self._timers.clear()
            self._buttons.clear()
            self._host = None
            self.pg.event.get()
        if self.errors:
            first = self.errors[0]
            raise AssertionError(f"a host callback raised: {first!r}") from first
        return result

    # --------------------------------------------------------- the pieces

    def make_button(self, command: Callable[[], object]) -> Any:
        rect = self.pg.Rect(10, 10 + 40 * len(self._buttons), 100, 30)
        self._buttons.append((rect, command))
        return rect

    def click(self, button: Any) -> None:
        pg = self.pg
        pg.event.post(pg.event.Event(pg.MOUSEBUTTONDOWN, pos=button.center, button=1))

    def call_every(self, interval: float, fn: Callable[[], object]) -> Callable[[], None]:
        pg = self.pg
        kind = self._free_timer_types.pop() if self._free_timer_types else pg.event.custom_type()
        self._timers[kind] = fn
        pg.time.set_timer(kind, max(1, round(interval * 1000)))

        def stop() -> None:
            if kind in self._timers:
                pg.time.set_timer(kind, 0)
                del self._timers[kind]
                self._free_timer_types.append(kind)

        return stop

    def call_soon_in_host(self, fn: Callable[[], object]) -> None:
        pg = self.pg
        pg.event.post(pg.event.Event(self.call_type, fn=fn))

    def open_modal(self, on_open: Callable[[Callable[[Any], None]], object]) -> Any:
        closed_with: list[Any] = []

        def close(value: Any) -> None:
            closed_with.append(value)

        self.call_soon_in_host(lambda: on_open(close))
        # A nested frame loop (a pause menu): the guest keeps being pumped.
        self._frames(self._host, lambda: bool(closed_with))
        return closed_with[0]

    def close_window(self) -> None:
        pg = self.pg
        pg.event.post(pg.event.Event(pg.QUIT))


_pygame = _load()
HARNESSES: list[Harness] = [] if _pygame is None else [PygameHarness(_pygame)]
