"""How `askpapers serve` reacts to signals (ui/signals.py), on a stand-in app: a fake
with the two things serve_until_stopped uses (close, and Gradio's queue for the drain).
The real server is stopped by signals in tests/test_hardening.py."""
from __future__ import annotations

import signal
import threading

import pytest

from ui.signals import serve_until_stopped


class FakeApp:
    """A stand-in for a launched gr.Blocks: records close(); nothing in flight."""

    def __init__(self):
        self.closed = 0

    def close(self, verbose: bool = True) -> None:
        self.closed += 1


def test_sigint_during_start_up_is_not_lost():
    app = FakeApp()

    def start():
        signal.raise_signal(signal.SIGINT)  # as if Ctrl-C came while Gradio was starting
        return app

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        serve_until_stopped(start)
    assert app.closed == 1
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is back


def test_sigterm_while_serving_drains_and_returns_0():
    app = FakeApp()
    timer = threading.Timer(0.3, signal.raise_signal, (signal.SIGTERM,))
    timer.start()
    try:
        assert serve_until_stopped(lambda: app, drain_s=1) == 0
    finally:
        timer.cancel()
    assert app.closed == 1


def test_a_failed_start_restores_the_handlers():
    before = signal.getsignal(signal.SIGTERM)

    def start():
        raise OSError("port busy")

    with pytest.raises(OSError):
        serve_until_stopped(start)
    assert signal.getsignal(signal.SIGTERM) is before
