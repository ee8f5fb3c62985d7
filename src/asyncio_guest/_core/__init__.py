"""The engine: a guest asyncio loop driven from another loop's thread.

Read in this order (each module says what it holds and who may touch it):

* ``lifecycle.py``: ``start_guest_run``, ``asyncio.run`` started beside a host:
  set-up, shutdown, outcome delivery (``RunLifecycle``);
* ``handover.py``: the ``Engine`` that drives the loop from host callbacks
  (ticks) and hands the OS wait to the backend thread, and back;
* ``backend.py``: the backend thread and the channel it shares with the host;
* ``fd_watch.py``: the other wait strategy (Unix): no backend thread, the host
  watches the selector's fd and one timer (``FdWatcher``);
* ``worker_wake.py``: the fd a worker's ``call_soon_threadsafe`` writes when
  the host watches it directly (that strategy, on Qt, GLib, wx and Trio);
* ``guest_loop.py``: the loop split into plan / wait / run-within-budget, and the
  host-side hooks that wake the backend (``GuestLoopMixin`` and its classes);
* ``linger.py``: a tick that ran callbacks waits briefly for the reply itself;
* ``asyncgen_hooks.py``: a run's async generators, the loop's or the host's;
* ``selector_wait.py``, ``iocp_wait.py``: how each kind of loop's OS wait is
  split between the backend thread (the blocking call) and the host (decoding);
* ``self_hosted.py``: ``run_forever`` of a guest loop, driven by its own
  ``reference_host.py`` (how unchanged asyncio code runs in guest mode);
* ``wake_queue.py``: a callback queue for hosts whose wake-up is a message;
* ``errors.py``: ``InternalError``.

Public names live in ``asyncio_guest`` and its host modules; nothing here is API.
"""

import os

#: The ``asyncio_guest`` package's directory: a frame whose file lies under it
#: is the library's own (Ctrl+C deferral in ``interrupts``, debug-mode creation
#: tracebacks in ``guest_loop``, warnings' stacklevel in ``lifecycle``).
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
