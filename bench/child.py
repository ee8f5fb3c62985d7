"""One measurement: ``child.py NAME MODE [--quick] [--seed N]`` prints one JSON line.

Each (benchmark, mode, round) runs in its own fresh process so allocator,
import and loop state cannot leak from one mode's measurement into the other's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from harness import Ctx, Workload, apply_affinity, run_in_mode, warm_allocator
from spec import AFFINITIES, BY_NAME, HOSTS, MODES, Sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("name", choices=sorted(BY_NAME))
    ap.add_argument("mode", choices=(*MODES, "tk"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--affinity", choices=AFFINITIES, default=None,
                    help="CPU placement (default: the benchmark's own)")
    ap.add_argument("--host", choices=HOSTS, default="reference",
                    help="the guest mode's host loop")
    args = ap.parse_args(argv)

    bench = BY_NAME[args.name]
    workload: Workload = getattr(importlib.import_module(bench.module), bench.name)
    if args.mode in ("guest", "tk"):
        # Import cost outside the timed part.
        if args.host == "trio":
            import asyncio_guest.trio
        else:
            import asyncio_guest  # noqa: F401
    warm_allocator()
    ctx = Ctx(
        mode=args.mode,
        sizes=Sizes.for_run(args.quick),
        seed=args.seed,
        affinity=args.affinity or bench.affinity,
        host_kind=args.host,
    )
    apply_affinity(ctx)
    metrics = run_in_mode(ctx, workload)
    json.dump({"metrics": metrics, "extra": ctx.extra}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
