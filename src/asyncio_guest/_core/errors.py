"""The error asyncio-guest reports when its own machinery fails."""

from __future__ import annotations


class InternalError(RuntimeError):
    """asyncio-guest's own machinery failed; the original error is ``__cause__``."""
