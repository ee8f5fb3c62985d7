"""Child processes for the Ctrl+C tests.

A real SIGINT can only be sent to a real process: each of these tests runs a
small program in a child, waits until it says ``ready``, sends SIGINT and reads
how the program ended. The three steps every such test repeats live here: start
a child that reports ``ready``, send one Ctrl+C and collect the output with the
time it took, and never let a child outlive its test (a hung child is killed,
its output read, so the assertion that follows shows what it printed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_child(
    script: str, *args: str, flags: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """Run ``script`` (``python -c``) with this checkout's package and its tests
    importable, in the checkout's directory; ``flags`` go to the interpreter."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "src"), ROOT]))
    return subprocess.Popen(
        [sys.executable, *flags, "-c", script, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def expect_line(proc: subprocess.Popen[bytes], expected: bytes) -> None:
    """Read the child's next line of output; fail with its stderr unless it is
    ``expected`` (the child ends, or is killed, if it is not)."""
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    if line != expected:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
        raise AssertionError((line, err))


def ready_child(
    script: str, *args: str, flags: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """``start_child``, returned once the child printed ``ready``."""
    proc = start_child(script, *args, flags=flags)
    expect_line(proc, b"ready\n")
    return proc


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Kill the child at the end of the block if it still runs (an assertion
    failed, or it hung past ``ctrl_c``'s timeout), and wait for it."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def second_ctrl_c(
    proc: subprocess.Popen[bytes],
    timeout: float,
    wait: float = 0.5,
    *,
    first_seen: bytes | None = None,
) -> tuple[bytes, bytes, float]:
    """A first Ctrl+C (it cancels ``main``), a check that the child still runs
    ``wait`` s later (else the test proves nothing), then ``ctrl_c``: the second.

    ``first_seen``: the line the child prints once the first Ctrl+C took effect
    (its shutdown began); it is awaited before the ``wait``, which then only
    has to let the shutdown reach its own wait, not cover a loaded machine's
    slowest response to the first signal."""
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    if first_seen is not None:
        expect_line(proc, first_seen)
    time.sleep(wait)
    assert proc.poll() is None, "the first Ctrl+C ended the child (the test proves nothing)"
    return ctrl_c(proc, timeout)


def ctrl_c(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bytes, float]:
    """Send SIGINT and wait for the child to end: its stdout, its stderr, and the
    seconds from the signal to its end. ``subprocess.TimeoutExpired`` if it did
    not end within ``timeout``."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return out, err, time.monotonic() - sent
