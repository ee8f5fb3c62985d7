"""The error asyncio-guest reports when its own machinery fails, and clean-up under failure."""

from __future__ import annotations

from collections.abc import Callable


class InternalError(RuntimeError):
    """asyncio-guest's own machinery failed; the original error is ``__cause__``."""


def cleanup_twice(step: Callable[[], object], errors: list[BaseException]) -> None:
    """Run an idempotent clean-up step; if it raises, record that and run it again.

    A clean-up cut short (an exception from the step itself, or a
    ``KeyboardInterrupt`` where no handler defers it) must not leave a thread,
    a descriptor or a changed process setting behind.
    """
    try:
        step()
    except BaseException as exc:
        errors.append(exc)
        try:
            step()
        except BaseException:
            pass


def raise_first(errors: list[BaseException]) -> None:
    """Raise the first of ``errors`` (and forget them all), if there is one.

    The host modules keep what their callbacks raised (a GUI loop would only
    print it) and raise it on the host thread once its loop has returned.
    """
    if errors:
        first = errors[0]
        errors.clear()
        raise first


def toolkit_missing(module: str, toolkit: str, how: str, exc: ImportError) -> ImportError:
    """The error a host module raises when importing its toolkit failed: which
    module needs what, and how to install it (the extra), with the import's
    own message (a toolkit installed but broken says why). A missing one stays
    a ``ModuleNotFoundError``, for code that tells the two apart."""
    kind = ModuleNotFoundError if isinstance(exc, ModuleNotFoundError) else ImportError
    return kind(f"{module} needs {toolkit}: {how} ({exc})", name=exc.name)
