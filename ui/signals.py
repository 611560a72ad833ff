"""How `askpapers serve` stops.

Ctrl-C (SIGINT) stops at once: the server closes and the CLI exits 130, like any
interrupted command. SIGTERM (a service manager, `docker stop`, `kill`) stops gently: the
answers already being made finish, for up to DRAIN_S seconds, then the server closes and
the process exits 0.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

DRAIN_S = 10.0
_POLL_S = 0.2


def in_flight(app) -> int:
    """Requests the Gradio app is processing or holding in its queue (0 when it cannot tell)."""
    queue = getattr(app, "_queue", None)
    running = sum(len(jobs) for jobs in getattr(queue, "active_jobs", None) or [] if jobs)
    waiting = sum(len(q.queue) for q in (getattr(queue, "event_queue_per_concurrency_id", None)
                                         or {}).values())
    return running + waiting


def serve_until_stopped(start, drain_s: float = DRAIN_S) -> int:
    """Launch the app with `start()` (returns a launched gr.Blocks) and block while it
    serves; returns 0 after SIGTERM and a drain.

    Raises KeyboardInterrupt on SIGINT, after closing the server (the CLI exits 130).

    Both handlers only record the signal; the main thread acts on it. The default SIGINT
    handler raises KeyboardInterrupt wherever the main thread happens to be, and when that
    is a finalizer (a __del__ while Gradio starts), Python prints "Exception ignored" and
    the Ctrl-C is lost. They are installed before `start()`, so a signal during start-up
    stops the server as soon as it is up.
    """
    got: list[int] = []
    stop = threading.Event()

    def record(signum, frame):
        got.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        app = start()
        while not stop.wait(_POLL_S):
            pass
        if signal.SIGINT in got:
            app.close(verbose=False)
            raise KeyboardInterrupt
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    drain(app, drain_s)
    app.close(verbose=False)
    return 0


def drain(app, drain_s: float) -> None:
    """Wait until no request is in flight, or `drain_s` seconds, whichever comes first."""
    deadline = time.monotonic() + drain_s
    if busy := in_flight(app):
        print(f"askpapers: stopping: waiting up to {drain_s:.0f} s for {busy} answer(s) in "
              "flight", file=sys.stderr)
    while (busy := in_flight(app)) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    if busy:
        log.warning("stopped with %d request(s) still in flight after %.0f s", busy, drain_s)
