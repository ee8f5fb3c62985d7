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
