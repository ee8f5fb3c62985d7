"""``MainArgs``: the types of ``main``'s arguments in the public entries'
signatures (``run(main, *args)``, ``run_modal(fn, *args)``), so that a type
checker matches ``args`` against ``main``'s parameters, as it does for
``trio.run`` or ``loop.call_soon``.

For type checkers only: 3.10's ``typing`` has no ``TypeVarTuple``, and
``typing_extensions`` is no runtime dependency (type checkers ship its stubs).
Import it under ``TYPE_CHECKING``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import TypeVarTuple, Unpack

    MainArgs = TypeVarTuple("MainArgs")

    __all__ = ["MainArgs", "Unpack"]
