"""``spin``: the cost of one bare loop iteration."""

from __future__ import annotations

import asyncio

from harness import Ctx, Metrics, now

_CHUNK = 1000  # iterations between clock reads


async def spin(ctx: Ctx) -> Metrics:
    """One task awaiting ``asyncio.sleep(0)``: each await is one full loop iteration
    (poll with a zero timeout, run the one ready callback). Iterations per second."""
    sleep = asyncio.sleep
    for _ in range(5 * _CHUNK):  # warm-up
        await sleep(0)
    n = 0
    t0 = now()
    end = t0 + ctx.sizes.duration
    while True:
        for _ in range(_CHUNK):
            await sleep(0)
        n += _CHUNK
        t = now()
        if t >= end:
            break
    return {"rate": n / (t - t0)}
