"""``restart``: what one ``run_forever`` start/stop costs (no running loop around it).

Unchanged asyncio code and test suites run a loop many times
(``run_until_complete`` per test step, ``run_forever`` with a stop callback);
in guest mode each of those is a hosted run through the engine. The loop is
made once; each round schedules ``loop.stop`` and runs the loop. Starts per
second. (Synchronous: the harness calls it outside any running loop.)
"""

from __future__ import annotations

import asyncio

from harness import Ctx, Metrics, now

_CHUNK = 200


def restart(ctx: Ctx) -> Metrics:
    if ctx.mode == "guest":
        import asyncio_guest.testing

        loop = asyncio_guest.testing.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        stop = loop.stop
        call_soon = loop.call_soon
        run_forever = loop.run_forever
        for _ in range(5 * _CHUNK):  # warm-up (and the guest's backend thread, if any)
            call_soon(stop)
            run_forever()
        loop.run_until_complete(asyncio.sleep(0.001))
        n = 0
        t0 = now()
        end = t0 + ctx.sizes.duration
        while True:
            for _ in range(_CHUNK):
                call_soon(stop)
                run_forever()
            n += _CHUNK
            t = now()
            if t >= end:
                break
    finally:
        loop.close()
    return {"rate": n / (t - t0)}
