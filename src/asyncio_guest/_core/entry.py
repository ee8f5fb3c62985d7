"""``run_beside`` and ``start_with_host``: the entries every host module builds on.

A host module's ``run(main, ...)`` is ``asyncio.run(main)`` with the host's main
loop in charge: start the guest beside the host, run the host loop until the
guest has delivered its outcome, then return ``main``'s result or raise its
exception. What differs between hosts is only how their loop is run, stopped
and released; that is passed in. Host thread only.

Order of the ending (each step needed by the next):

1. the guest shuts down (``asyncio.run``'s shutdown) while the host loop still
   runs: a window closed by the user only cancels ``main`` (the host module's
   ``run_host`` arranges that), it never takes the loop away from a guest that
   is still shutting down;
2. ``done_callback`` stores the outcome and asks the host loop to return;
3. the host is released (``close_host``), then the host's SIGINT handler is
   put back, last, so that a Ctrl+C during our own clean-up is not lost.

If the host loop raises (a callback of the host's, a Ctrl+C in host code), the
guest is shut down at once, synchronously (``RunLifecycle.end_now``), and that
exception propagates. If it returns before the guest delivered (the program
stopped a host it passed in), the guest is shut down the same way and the
entry raises ``RuntimeError``, as ``asyncio.run`` does when its loop is stopped
before ``main`` is done.
"""

from __future__ import annotations

import asyncio
from asyncio import events
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import outcome

from .errors import cleanup_twice
from .lifecycle import close_refused, start

_T = TypeVar("_T")

HostFn = Callable[[Callable[[], object]], object]

_STOPPED_EARLY = "the host loop was stopped before the guest run finished"


class HostObject(Protocol):
    """A host module's host: its two primitives, and ``close`` (host thread)."""

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None: ...

    def run_sync_soon_not_threadsafe(self, fn: Callable[[], object]) -> None: ...

    def close(self) -> None: ...


def start_with_host(
    main: Coroutine[Any, Any, _T] | Callable[..., Awaitable[_T]],
    args: tuple[Any, ...],
    *,
    host: HostObject,
    own_host: bool,
    done_callback: Callable[[outcome.Outcome[_T]], object],
    offers_wakeup_fd_choice: bool = False,
    **start_options: Any,
) -> asyncio.Task[_T]:
    """A host module's ``start_guest_run``: the guest on ``host``'s primitives.

    ``own_host``: the module made ``host`` for this run, so it is closed after
    ``done_callback`` returns (also when that raises), or at once if the start
    fails; a host the caller gave stays theirs. ``start_options`` go to
    ``start_guest_run`` (``fd_watcher``, ``loop_factory``, ``debug``...).
    A wakeup fd set before the run is warned about only where the module
    offers its caller ``host_uses_signal_set_wakeup_fd`` (RunLifecycle).
    """

    def done(result: outcome.Outcome[_T]) -> None:
        try:
            done_callback(result)
        finally:
            if own_host:
                host.close()

    try:
        run = start(
            main,
            *args,
            run_sync_soon_threadsafe=host.run_sync_soon_threadsafe,
            run_sync_soon_not_threadsafe=host.run_sync_soon_not_threadsafe,
            done_callback=done,
            warn_if_wakeup_fd_taken=offers_wakeup_fd_choice,
            **start_options,
        )
        task = run.main_task
        assert task is not None
        return task
    except BaseException:
        if own_host:
            host.close()
        raise


def refuse_inside_a_running_loop(main: object, entry_name: str) -> None:
    """A one-call entry (it runs the host's loop itself) inside a running loop:
    refuse in the entry's own name, closing the coroutine given (no "never
    awaited" after the refusal)."""
    if events._get_running_loop() is not None:
        close_refused(main)
        raise RuntimeError(f"{entry_name}() cannot be called from a running event loop")


def run_beside(
    main: Coroutine[Any, Any, _T] | Callable[..., Awaitable[_T]],
    args: tuple[Any, ...],
    *,
    run_sync_soon_threadsafe: HostFn,
    run_sync_soon_not_threadsafe: HostFn | None,
    run_host: Callable[[asyncio.Task[_T]], object],
    stop_host: Callable[[], object],
    close_host: Callable[[], object] | None = None,
    entry_name: str = "run",
    **start_options: Any,
) -> _T:
    """Run ``main`` as the guest of a host loop; return its result or raise.

    ``run_host(main_task)`` runs the host's main loop until ``stop_host()``
    is called (from the guest's ``done_callback``, host thread); if the user
    quits the application first, it cancels ``main_task`` and keeps the loop
    running until then. ``close_host()`` releases what the entry made.
    ``start_options`` go to ``start_guest_run`` (``loop_factory``, ``debug``,
    ``tick_budget``...).
    """
    result: list[outcome.Outcome[_T]] = []

    def done(out: outcome.Outcome[_T]) -> None:
        result.append(out)
        stop_host()

    lifecycle = None
    try:
        # Inside the ``try``: the entry made its host (and held an
        # application, bound handlers) before calling us, and ``close_host``
        # must undo that on this refusal too.
        refuse_inside_a_running_loop(main, entry_name)
        lifecycle = start(
            main,
            *args,
            run_sync_soon_threadsafe=run_sync_soon_threadsafe,
            run_sync_soon_not_threadsafe=run_sync_soon_not_threadsafe,
            done_callback=done,
            warn_if_wakeup_fd_taken=False,  # the host loop is ours (RunLifecycle)
            **start_options,
        )
        lifecycle.keep_sigint = True  # until our own clean-up is done, below
        # While the host loop runs, a run abandoned under it is ended there.
        lifecycle.end_abandoned_through = run_sync_soon_threadsafe
        task = lifecycle.main_task
        assert task is not None
        run_host(task)
        del task
        if not result:
            # The host loop returned before done_callback stopped it: the
            # program stopped it itself (``host.stop()`` on a host it passed
            # in). As ``asyncio.run`` when its loop is stopped before ``main``
            # is done: the guest is shut down here, synchronously (``main``
            # cancelled and its clean-up run, the loop closed), and the entry
            # raises. Left running, ``main``'s ``finally`` never ran and the
            # loop was only reported abandoned at exit.
            lifecycle.end_now(RuntimeError(_STOPPED_EARLY))
    except BaseException as exc:
        if lifecycle is not None and not result:
            lifecycle.end_now(exc)
        raise
    finally:
        # Clean-up that may not be cut short: each step is retried once.
        errors: list[BaseException] = []
        if lifecycle is not None:
            lifecycle.end_abandoned_through = None  # the host loop is done
        if close_host is not None:
            cleanup_twice(close_host, errors)
        if lifecycle is not None:
            cleanup_twice(lifecycle.release_sigint, errors)
        if errors:
            raise errors[0]
    if not result:  # an abandoned run whose ending could not be posted (on_abandoned)
        raise RuntimeError(_STOPPED_EARLY)
    return result[0].unwrap()
