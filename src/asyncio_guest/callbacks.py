"""``async_callback``: an async function as the plain callback a widget wants.

A Tk ``command=``, a Qt signal connection, a wx event binding, a GTK signal
handler: each calls a plain function on the host thread and ignores what it
returns. Called while a guest run is going on, ``async_callback(fn)`` starts
``fn(*args)`` as a task of the guest loop and returns at once, so the host's
event handling is never blocked. What plain ``create_task`` in a callback gets
wrong, this does not:

* the task is kept (a strong reference) until it ends, so it cannot be
  garbage-collected mid-way;
* its exception is reported through the loop's exception handler at once, with
  the callback named, not at collection time as "never retrieved";
* a second call while the first task still runs follows a policy (``on_busy``):
  ``"run"`` starts another one beside it, ``"ignore"`` drops the call,
  ``"cancel"`` cancels the running ones and starts the new one (a task that an
  earlier call cancelled already is left to finish its clean-up: cancelled
  again, its ``finally`` would be cut short, as ``TaskGroup`` never does);
* positional arguments the callback does not accept are dropped, as Qt does for
  its own slots (``clicked`` passes ``checked``; Tk's ``bind`` passes the event);
* called from another thread (a Qt signal emitted in a ``QThread``, which
  PySide6 delivers to a plain callable in the emitting thread), the call is
  handed to the guest run's thread, as a queued connection would do;
* as a method decorator, the object's callback holds the object weakly: a
  signal connection to it does not keep a widget alive, and once the object is
  gone a call does nothing; so it does once a Qt or wx object's C++ side is
  deleted (``deleteLater``) while Python still holds the wrapper, as Qt
  disconnects a destroyed object's own slots.

The same helper serves every host: it needs only the guest loop, which is the
host thread's running loop for the whole run (``docs/design.md``, section 1).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Literal, TypeVar, overload

from ._core.handover import running_guest_loops

__all__ = ["AsyncCallback", "OnBusy", "async_callback"]

_T = TypeVar("_T")
OnBusy = Literal["run", "ignore", "cancel"]
_POLICIES = ("run", "ignore", "cancel")


class AsyncCallback(Generic[_T]):
    """A plain callable that starts ``fn(*args)`` as a guest task (see module doc).

    Host thread only. ``running`` holds the tasks started and not yet ended.
    """

    def __init__(
        self,
        fn: Callable[..., Coroutine[Any, Any, _T]],
        *,
        on_busy: OnBusy = "run",
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if on_busy not in _POLICIES:
            raise ValueError(f"on_busy must be one of {', '.join(map(repr, _POLICIES))}")
        if not callable(fn):
            raise TypeError(f"async_callback needs an async function, got {fn!r}")
        self.fn = fn
        self.on_busy = on_busy
        self.loop = loop
        self.running: set[asyncio.Task[_T]] = set()
        # The loop of the run this callback was made or last called in: where
        # a call from another thread is handed (weak: a run's loop is not kept).
        # Written on the host thread only; read by ``_hand_over`` on any thread
        # without a lock: one attribute read sees the old or the new reference,
        # and either is a loop that ``_hand_over`` checks (running, not closed)
        # before it hands the call over with ``call_soon_threadsafe``.
        self._home: weakref.ref[asyncio.AbstractEventLoop] | None = None
        try:
            self._home = weakref.ref(asyncio.get_running_loop())
        except RuntimeError:
            pass
        # Those of ``running`` that a call cancelled (``on_busy="cancel"``):
        # read only on 3.10, where a task does not count its cancellations
        # (``_cancelling``).
        self._superseded: set[asyncio.Task[_T]] = set()
        # As a method decorator, the attribute's name in the class (__set_name__).
        self._attribute: str | None = None
        # The coroutines being handed to create_task: an eager task factory
        # runs a task's first step inside that call, and the step may call us
        # again (a handler that emits its own signal) before we hold the task.
        self._starting: list[Coroutine[Any, Any, _T]] = []
        self._max_args = _positional_capacity(fn)
        # A method's _WeakMethod carries its own names and signature; its
        # __dict__ (the weak reference, the function) is not the callback's.
        updated = () if isinstance(fn, _WeakMethod) else functools.WRAPPER_UPDATES
        functools.update_wrapper(self, fn, updated=updated)

    def __call__(self, *args: Any, **kwargs: Any) -> asyncio.Task[_T] | None:
        """Start the task (or not, by ``on_busy``); return it, or None if ignored
        (or handed to the run's thread, from another thread)."""
        fn = self.fn
        if isinstance(fn, _WeakMethod) and not fn.alive():
            return None  # its object is gone (a deleted widget's connection)
        loop = self.loop
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._hand_over(None, args, kwargs)
                return None
        elif getattr(loop, "_thread_id", None) not in (None, threading.get_ident()):
            self._hand_over(loop, args, kwargs)
            return None
        if self._home is None or self._home() is not loop:
            self._home = weakref.ref(loop)
        if loop.is_closed():
            raise RuntimeError(
                f"async callback {self._name()} was called after its guest run ended "
                "(its loop is closed): nothing can run it any more"
            )
        if self.on_busy != "run":
            busy = self._busy(loop)
            if busy and self.on_busy == "ignore":
                return None
            for task in busy:  # on_busy == "cancel"
                if not _cancelling(task, self._superseded):
                    task.cancel()
                    self._superseded.add(task)
        if self._max_args is not None:
            args = args[: self._max_args]
        coro = self.fn(*_outliving_the_call(args), **kwargs)
        if not inspect.isawaitable(coro):
            raise TypeError(
                f"async callback {self._name()} returned {coro!r}, not a coroutine: "
                "async_callback wraps an async function (async def)"
            )
        self._starting.append(coro)
        try:
            task = loop.create_task(coro, name=f"async callback {self._name()}")
        except (KeyboardInterrupt, SystemExit) as exc:
            if not _called_by_host_code(loop):
                raise  # a callback's or task's own call: on through it, as on any loop
            # The eager first step of a task that host code started let it
            # out. From a lazy task's step it would end the run; here it would
            # reach the host's handler instead (PyGObject prints it; for
            # SystemExit that ends the process on the spot). It ends the run
            # from the loop's next callback instead, as the lazy task's would.
            loop.call_soon(_raise, exc)
            return None
        finally:
            self._starting.remove(coro)
        self.running.add(task)
        task.add_done_callback(self._ended)
        return task

    def _hand_over(
        self,
        loop: asyncio.AbstractEventLoop | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """Called on a thread that is not the run's (a Qt signal emitted in a
        ``QThread``, which PySide6 delivers to a plain callable in the emitting
        thread): hand the call to the run's thread, as a queued connection
        would. The run's loop: ``loop`` (given), else the one this callback was
        made or last called in, else the only guest run going on."""
        if loop is None:
            home = self._home() if self._home is not None else None
            if home is not None and home.is_running() and not home.is_closed():
                loop = home
            else:
                running = running_guest_loops()
                loop = running[0] if len(running) == 1 else None
        if loop is None or loop.is_closed():
            raise RuntimeError(
                f"async callback {self._name()} was called on thread "
                f"{threading.current_thread().name!r}, where no asyncio guest run is "
                "going on, and there is no one run to hand the call to: call it on the "
                "host thread while the guest runs (a callback made there, or given "
                "async_callback(..., loop=the run's loop), hands calls from other "
                "threads to it)"
            )
        loop.call_soon_threadsafe(functools.partial(self, *args, **kwargs))

    def _busy(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[_T]]:
        """The tasks of ours that run now.

        Not one that an eager task factory ran to its end inside create_task:
        it stays in ``running`` until its done callbacks, a tick later. And one
        whose eager first step is calling us now is one, though create_task has
        not returned it yet.
        """
        busy = [task for task in self.running if not task.done()]
        if self._starting:
            current = asyncio.current_task(loop)
            if current is not None and current.get_coro() in self._starting:
                busy.append(current)
        return busy

    def _ended(self, task: asyncio.Task[_T]) -> None:
        self.running.discard(task)
        self._superseded.discard(task)
        if task.cancelled():
            return
        # Also marks it retrieved: no "never retrieved" at collection. (A task
        # that fails while the run's shutdown cancels it is reported by the
        # shutdown too, as asyncio.run reports any such task.)
        exc = task.exception()
        # KeyboardInterrupt and SystemExit left the task's step and end the
        # run with it (sys.exit() in a Quit button's handler): not an error
        # of the callback to report.
        if exc is not None and not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            task.get_loop().call_exception_handler(
                {
                    "message": f"exception in async callback {self._name()}",
                    "exception": exc,
                    "task": task,
                }
            )

    def _name(self) -> str:
        return getattr(self.fn, "__qualname__", None) or repr(self.fn)

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = f"{owner.__qualname__}.{name}"

    def __get__(self, instance: object, owner: type | None = None) -> AsyncCallback[_T]:
        """As a method decorator: one ``AsyncCallback`` per instance (its own
        ``running`` set, so ``on_busy`` is per object), made on first access."""
        if instance is None:
            return self
        # Keyed by this descriptor: a subclass's override of the same name
        # (which may call super()'s) is another callback, with its own entry,
        # and so is a second attribute over the same function with another
        # policy (a button that ignores double clicks, a shortcut that
        # restarts). Its class and attribute name, where it has them.
        key = self._attribute or f"{self._name()}@{id(self):x}"
        name = "__async_callback_" + key
        try:
            per_object = instance.__dict__
        except AttributeError:
            # Made afresh at each access, the callback would keep neither its
            # policy nor its tasks (dropped with it, they could be collected
            # mid-way): refuse, and say what works.
            raise TypeError(
                f"async_callback on the method {key}: {type(instance).__name__} objects "
                "have no __dict__ (__slots__), where each object keeps its own callback "
                "(its running tasks, its on_busy policy); add '__dict__' to __slots__, "
                "or make one per object: async_callback(obj.method)"
            ) from None
        bound: AsyncCallback[_T] | None = per_object.get(name)
        if bound is None:
            try:
                method: Callable[..., Any] = _WeakMethod(self.fn, instance)
            except TypeError:  # an object that takes no weak reference
                method = self.fn.__get__(instance, owner)
            bound = per_object[name] = AsyncCallback(
                method, on_busy=self.on_busy, loop=self.loop
            )
        return bound


class _WeakMethod:
    """``fn`` bound to ``instance`` through a weak reference.

    The per-object callback lives in the object's ``__dict__`` and a signal
    connection holds it: bound strongly, the object (a widget) would hold
    itself alive through the toolkit's C++ side, where no garbage collection
    sees the cycle. Once the object is gone, ``alive()`` is False and the
    callback does nothing.
    """

    def __init__(self, fn: Callable[..., Any], instance: object) -> None:
        self._weak_target = weakref.ref(instance)
        self._weak_fn = fn
        self._deleted = _deletion_check(type(instance))
        for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(self, attribute, getattr(fn, attribute, None))
        try:
            self.__signature__ = inspect.signature(fn.__get__(instance, type(instance)))
        except (TypeError, ValueError):
            pass

    def alive(self) -> bool:
        target = self._weak_target()
        return target is not None and not (self._deleted is not None and self._deleted(target))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = self._weak_target()
        if target is None or (self._deleted is not None and self._deleted(target)):
            return None
        return self._weak_fn(target, *args, **kwargs)


def _deletion_check(cls: type) -> Callable[[Any], bool] | None:
    """For a toolkit class wrapping a C++ object (Qt's, wx's), whether an
    instance's C++ side is gone; None for any other class.

    The Python wrapper of a deleted widget (``deleteLater``, its parent
    deleted, a destroyed wx window) lives on while the program holds it, and
    a method of it connected as a slot would run on a dead object. Qt
    disconnects a QObject's own bound-method slots when it is destroyed; ours
    is a plain callable to the binding, so it says "gone" itself. The binding
    is the one that defined the class, loaded already (never imported here).
    """
    for klass in cls.__mro__:
        package = klass.__module__.partition(".")[0]
        if package in ("PySide6", "PySide2"):
            shiboken = sys.modules.get("shiboken6" if package == "PySide6" else "shiboken2")
            if shiboken is not None:
                is_valid = shiboken.isValid
                return lambda obj: not is_valid(obj)
        elif package in ("PyQt6", "PyQt5", "wx"):
            sip = sys.modules.get("wx.siplib" if package == "wx" else f"{package}.sip")
            if sip is not None:
                isdeleted: Callable[[Any], bool] = sip.isdeleted
                return isdeleted
    return None


def _outliving_the_call(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` as the task may use them after the handler has returned.

    The task's first step runs after the toolkit's handler call has returned
    (but with an eager task factory). A wx event is wx's: a timer's or a
    button's is gone then (reading it crashed the process), a posted one
    deleted. The task gets a copy (``Clone()``), which is its own, as wx
    advises for an event kept past its handler. Other toolkits pass values,
    or Python objects (Tk's ``Event``), that live on.
    """
    wx = sys.modules.get("wx")
    if wx is None or not args:
        return args
    event = wx.Event
    if not any(isinstance(arg, event) for arg in args):
        return args
    return tuple(arg.Clone() if isinstance(arg, event) else arg for arg in args)


def _called_by_host_code(loop: asyncio.AbstractEventLoop) -> bool:
    """Host code of a guest run is calling: no tick runs and no task of the loop."""
    return bool(getattr(loop, "_guest_outside_tick", False)) and asyncio.current_task(loop) is None


def _raise(exc: BaseException) -> None:
    raise exc


def _cancelling(task: asyncio.Task[Any], cancelled_by_us: set[Any]) -> bool:
    """Whether ``task`` has a cancellation in progress: by anyone, where the
    task counts them (3.11+), else by our own ``cancel()``."""
    if sys.version_info >= (3, 11):
        return task.cancelling() > 0
    return task in cancelled_by_us


def _positional_capacity(fn: Callable[..., Any]) -> int | None:
    """How many positional arguments ``fn`` takes; None if any number (or unknown)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    count = 0
    for p in params:
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


@overload
def async_callback(
    fn: Callable[..., Coroutine[Any, Any, _T]],
    *,
    on_busy: OnBusy = "run",
    loop: asyncio.AbstractEventLoop | None = None,
) -> AsyncCallback[_T]: ...


@overload
def async_callback(
    fn: None = None,
    *,
    on_busy: OnBusy = "run",
    loop: asyncio.AbstractEventLoop | None = None,
) -> Callable[[Callable[..., Coroutine[Any, Any, _T]]], AsyncCallback[_T]]: ...


def async_callback(
    fn: Callable[..., Coroutine[Any, Any, _T]] | None = None,
    *,
    on_busy: OnBusy = "run",
    loop: asyncio.AbstractEventLoop | None = None,
) -> AsyncCallback[_T] | Callable[[Callable[..., Coroutine[Any, Any, _T]]], AsyncCallback[_T]]:
    """Wrap an async function as a widget callback; also a decorator, with or
    without arguments: ``@async_callback`` or ``@async_callback(on_busy="ignore")``.

    ``button = tk.Button(root, command=async_callback(fetch))``;
    ``button.clicked.connect(async_callback(fetch, on_busy="cancel"))``.
    """
    if fn is None:
        return functools.partial(AsyncCallback, on_busy=on_busy, loop=loop)
    return AsyncCallback(fn, on_busy=on_busy, loop=loop)
