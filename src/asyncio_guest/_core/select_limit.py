"""The highest fd ``select()`` can wait on, plus one, where the limit exists.

``select()`` counts its timeout in microseconds, ``poll()`` and ``epoll_wait()``
in whole milliseconds, so the sub-millisecond waits (a tick's linger, the
reference host's sleep before a host timer) use ``select()`` while every fd they
wait on is below ``FD_SETSIZE``, and fall back or do without above it. Windows'
``select()`` takes sockets, not small integers: the limit does not apply there.
"""

from __future__ import annotations

SELECT_FD_LIMIT = 1024
"""FD_SETSIZE on Linux and macOS: ``select()`` takes no fd at or above this."""
