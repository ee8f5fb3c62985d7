"""Which cases of the exhaustive sweeps a run takes (``tests/interrupt_sweep.py``,
``tests/fault_injection.py``).

``ASYNCIO_GUEST_SWEEP_SAMPLE=N/K`` takes every N-th case, starting at K (0 <= K < N);
unset, every case. Only the line-by-line sweeps are sampled (the tests clear
it for the others, which are small). CI runs each sweep whole on some Pythons and split in
interleaved shares on others, so that together they still take every case
(the Makefile's ``SWEEP_SAMPLE_<version>``): the sweeps are the slowest part of
the suite, under Wine most of all.
"""

from __future__ import annotations

import os

ENV = "ASYNCIO_GUEST_SWEEP_SAMPLE"


def from_env() -> tuple[int, int]:
    """``(every, offset)`` from the environment; ``(1, 0)`` when unset."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return 1, 0
    try:
        every_s, offset_s = value.split("/")
        every, offset = int(every_s), int(offset_s)
    except ValueError:
        raise SystemExit(f"{ENV}={value!r}: expected N/K, e.g. 3/1") from None
    if every < 1 or not 0 <= offset < every:
        raise SystemExit(f"{ENV}={value!r}: need N >= 1 and 0 <= K < N")
    return every, offset


def chosen(index: int, every: int, offset: int) -> bool:
    return index % every == offset


def describe(every: int, offset: int) -> str:
    return "every case" if every == 1 else f"1 case in {every}, from case {offset} ({ENV})"
