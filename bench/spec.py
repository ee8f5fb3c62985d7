"""What each benchmark reports and the bar it is held to (no heavy imports).

Shared by the parent (``run.py``, which builds the table) and the children
(``child.py``, which pick the workload size from ``Sizes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BarKind = Literal["ratio_min", "ratio_max", "guest_max", "info"]
Affinity = Literal["none", "one", "split"]
AFFINITIES: tuple[str, ...] = ("none", "one", "split")


@dataclass(frozen=True)
class Bar:
    """A pass/fail rule for one metric.

    * ``ratio_min``: guest/plain must be at least ``value`` (throughput);
    * ``ratio_max``: guest/plain must be at most ``value`` (latency);
    * ``guest_max``: the guest's own figure must be at most ``value`` (absolute);
    * ``info``: reported only.
    """

    kind: BarKind
    value: float = 0.0

    def describe(self, unit: str, scale: float) -> str:
        if self.kind == "ratio_min":
            return f">= {self.value:.2f}x"
        if self.kind == "ratio_max":
            return f"<= {self.value:.2f}x"
        if self.kind == "guest_max":
            return f"guest <= {self.value * scale:g} {unit}"
        return "(info)"


@dataclass(frozen=True)
class Metric:
    """One figure a benchmark child returns under ``key``."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    bar: Bar
    scale: float = 1.0  # display value = raw value * scale


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str  # module in bench/ that defines ``async def <name>(ctx)``
    metrics: tuple[Metric, ...]
    what: str
    # CPU placement (see harness.apply_affinity): "none" lets the OS decide;
    # "one" pins the whole child to one CPU; "split" pins the loop (and the
    # guest's backend thread) to one CPU and the helper (echo peer, worker
    # thread) to another.
    affinity: Affinity = "none"
    # False for a workload that runs its own loops (restart): it ignores --host,
    # and peer modes are not run for it.
    hosted: bool = True


INFO = Bar("info")
_THREADSAFE_METRICS = (
    Metric("median", "median latency", "us", False, Bar("ratio_max", 1.15), 1e6),
    Metric("p10", "p10 latency", "us", False, INFO, 1e6),
    Metric("p90", "p90 latency", "us", False, INFO, 1e6),
)

BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "spin", "bm_cpu",
        (Metric("rate", "sleep(0) iterations/s", "it/s", True, Bar("ratio_min", 1.0)),),
        "one task awaiting asyncio.sleep(0) in a loop",
    ),
    Benchmark(
        "echo", "bm_net",
        (Metric("rate", "round trips/s", "rt/s", True, Bar("ratio_min", 0.95)),),
        "64-byte TCP ping-pong, client and server in the same loop",
    ),
    Benchmark(
        "echo_ext", "bm_net",
        (Metric("rate", "round trips/s", "rt/s", True, Bar("ratio_min", 0.8)),),
        "64-byte TCP ping-pong against a blocking echo server in another process",
        affinity="split",
    ),
    Benchmark(
        "echo_timer", "bm_net",
        (Metric("rate", "round trips/s", "rt/s", True, Bar("ratio_min", 0.8)),),
        "echo_ext with one asyncio timer pending (a far sleep), as in most applications",
        affinity="split",
    ),
    Benchmark(
        "echo_timeout", "bm_net",
        (Metric("rate", "round trips/s", "rt/s", True, Bar("ratio_min", 0.8)),),
        "echo_ext with a timeout on each reply: the next deadline moves at every wait",
        affinity="split",
    ),
    Benchmark(
        "stream", "bm_net",
        (Metric("rate", "MB/s", "MB/s", True, Bar("ratio_min", 0.95)),),
        "bulk loopback transfer through streams, both ends in the loop",
    ),
    Benchmark(
        "restart", "bm_restart",
        (Metric("rate", "run_forever start/stop per s", "runs/s", True, Bar("ratio_min", 0.5)),),
        "loop.call_soon(loop.stop); loop.run_forever(), again and again on one loop",
        hosted=False,
    ),
    Benchmark(
        "threadsafe", "bm_latency",
        _THREADSAFE_METRICS,
        "worker thread -> call_soon_threadsafe -> callback on the loop thread",
    ),
    Benchmark(
        "threadsafe_timer", "bm_latency",
        _THREADSAFE_METRICS,
        "threadsafe with one loop timer pending (a far sleep), as in most applications",
    ),
    Benchmark(
        "host_wake", "bm_latency",
        tuple(Metric(m.key, m.label, m.unit, False, INFO, m.scale) for m in _THREADSAFE_METRICS),
        "threadsafe through the host's own thread-safe post, asyncio not involved: "
        "the host's floor under threadsafe (plain: call_soon_threadsafe)",
    ),
    Benchmark(
        "host_wake_fd", "bm_latency",
        tuple(Metric(m.key, m.label, m.unit, False, INFO, m.scale) for m in _THREADSAFE_METRICS),
        "host_wake through a pipe the host's fd watch sees: the zero-thread path's floor",
    ),
    Benchmark(
        "idle", "bm_latency",
        (
            Metric("cpu", "CPU s per 3 s idle", "s", False, Bar("guest_max", 0.002)),
            Metric("wakeups", "ctx switches per 3 s", "", False, INFO),
        ),
        "process CPU time while the only task sleeps",
    ),
    Benchmark(
        "timers", "bm_latency",
        (
            Metric("median", "sleep(2ms) overshoot median", "us", False, INFO, 1e6),
            Metric("p99", "sleep(2ms) overshoot p99", "us", False, INFO, 1e6),
        ),
        "how late asyncio.sleep(0.002) returns",
    ),
    Benchmark(
        "responsive", "bm_responsive",
        (
            Metric("median", "host timer lateness median", "ms", False,
                   Bar("guest_max", 0.001), 1e3),
            Metric("max", "host timer lateness max, unpreempted", "ms", False,
                   Bar("guest_max", 0.002), 1e3),
            Metric("max_raw", "host timer lateness max, all", "ms", False, INFO, 1e3),
            Metric("preempted", "timer periods that lost the CPU", "%", False, INFO, 100),
            Metric("unpreempted", "periods the max is over (a round needs 20)", "n", True,
                   INFO, 1),
        ),
        "lateness of the host's own timer while 200 tasks keep asyncio busy",
    ),
)

# The project's load target: "10 000 sockets with traffic, 100 000 pending timers,
# 1 000 000 call_soon_threadsafe from 8 threads, each through a guest run: nothing
# lost, memory bounded, time within 1.2x of plain asyncio in the same run."
# Each workload checks its own results (a failed check fails the measurement).
# All three run pinned to one CPU, both modes alike (bench/README.md, "Load
# benchmarks"). Not in BENCHMARKS: they take minutes, so they run only when
# asked for (run.py --load, or --only), and `make bench` keeps its duration.
_LOAD_TIME = Bar("ratio_max", 1.2)
_LOAD_RSS = Bar("ratio_max", 1.2)


def _rss_metrics() -> tuple[Metric, ...]:
    return (
        Metric("rss", "peak RSS", "MB", False, _LOAD_RSS),
        Metric("rss_growth", "RSS growth in the workload", "MB", False, INFO),
    )


LOAD_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "load_sockets", "bm_load",
        (
            Metric("time", "connect + echo + close, all sockets", "s", False, _LOAD_TIME),
            Metric("connect", "connect + accept", "s", False, INFO),
            Metric("traffic", "echo round trips", "s", False, INFO),
            Metric("close", "EOF + close", "s", False, INFO),
            Metric("cpu", "process CPU time", "s", False, INFO),
            *_rss_metrics(),
        ),
        "TCP loopback connections, both ends in the loop, every one echoing messages",
        affinity="one",
    ),
    Benchmark(
        "load_timers", "bm_load",
        (
            Metric("time", "first call_at to last timer fired", "s", False, _LOAD_TIME),
            Metric("schedule", "call_at + cancel calls", "s", False, INFO),
            Metric("late", "lateness of the last timer", "ms", False, INFO, 1e3),
            Metric("cpu", "process CPU time", "s", False, INFO),
            *_rss_metrics(),
        ),
        "pending timers with spread deadlines, some cancelled, all fired in order",
        affinity="one",
    ),
    Benchmark(
        "load_threadsafe", "bm_load",
        (
            Metric("time", "first post to last callback", "s", False, _LOAD_TIME),
            Metric("post", "first post to last post returned", "s", False, INFO),
            Metric("cpu", "process CPU time", "s", False, INFO),
            Metric("backlog", "max callbacks queued (sampled)", "", False, INFO),
            *_rss_metrics(),
        ),
        "call_soon_threadsafe from 8 threads at once, each run exactly once, in order",
        affinity="one",
    ),
)

BY_NAME: dict[str, Benchmark] = {b.name: b for b in BENCHMARKS + LOAD_BENCHMARKS}
MODES: tuple[str, str] = ("plain", "guest")
# The guest mode's host: the reference host (asyncio_guest.run), Trio
# (asyncio_guest.trio.run: asyncio inside trio.run), Tk (asyncio_guest.tk.run on a
# real root; needs a display) or Qt (asyncio_guest.qt.run in a QApplication; the
# binding from ASYNCIO_GUEST_QT, default PySide6), GLib (asyncio_guest.glib.run on a
# GLib.MainLoop; no display needed) or wx (asyncio_guest.wx.run in a wx.App with a
# frame; Debian's wxPython on the system Python 3.11, a display). Plain mode is the
# same for all.
HOSTS: tuple[str, ...] = ("reference", "trio", "tk", "qt", "glib", "wx")
# What a user would pick instead of asyncio-guest on each host (run.py --peers
# adds a mode "peer:NAME" for each; bench/peers.py runs them).
PEERS: dict[str, tuple[str, ...]] = {
    "reference": (),
    "trio": ("trio-asyncio", "aioguest", "trio-guest"),
    "tk": ("async-tkinter-loop", "aioguest"),
    "qt": ("qasync", "qtasyncio", "aioguest"),
    "glib": ("gi-events",),
    "wx": ("wxasync",),
}


@dataclass(frozen=True)
class Sizes:
    """Workload sizes; ``quick`` shrinks everything so a run takes under a minute."""

    duration: float  # seconds of timed work for rate benchmarks
    threadsafe_n: int
    idle_seconds: float
    timers_n: int
    responsive_seconds: float
    # load_sockets: connections (2 sockets each), round trips each, message bytes
    load_connections: int
    load_trips: int
    load_message: int
    # load_timers: how many; deadlines spread over [delay, delay + spread] s
    load_timers: int
    load_timer_delay: float
    load_timer_spread: float
    # load_threadsafe: worker threads, calls in all
    load_threads: int
    load_calls: int

    @staticmethod
    def for_run(quick: bool) -> Sizes:
        if quick:
            return Sizes(
                duration=0.3, threadsafe_n=600, idle_seconds=1.0, timers_n=150,
                responsive_seconds=1.0,
                load_connections=1000, load_trips=10, load_message=128,
                load_timers=20_000, load_timer_delay=0.02, load_timer_spread=0.1,
                load_threads=8, load_calls=200_000,
            )
        return Sizes(
            duration=1.0, threadsafe_n=2500, idle_seconds=3.0, timers_n=400,
            responsive_seconds=2.5,
            load_connections=5000, load_trips=10, load_message=128,
            load_timers=100_000, load_timer_delay=0.1, load_timer_spread=0.4,
            load_threads=8, load_calls=1_000_000,
        )
