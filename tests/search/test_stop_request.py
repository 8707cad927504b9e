"""Ctrl-C that Python swallows is not lost (``search.run.stop_request``)."""
from __future__ import annotations

import os
import signal
import sys

import pytest

from search.run import stop_request


class SignalledWhileCollected:
    """Receives SIGINT inside ``__del__``: Python prints "Exception ignored in ..." for the
    KeyboardInterrupt raised there and goes on, as it does in torch's weak-reference callbacks."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)


def test_an_interrupt_swallowed_in_a_finaliser_is_raised_at_the_next_safe_point(monkeypatch):
    swallowed = []
    monkeypatch.setattr(sys, "unraisablehook", swallowed.append)   # what prints "ignored"
    restore = stop_request.install()
    try:
        SignalledWhileCollected()          # collected at once: the interrupt is swallowed
        assert [type(s.exc_value) for s in swallowed] == [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt):
            stop_request.raise_if_requested()
    finally:
        restore()


def test_a_repeat_within_the_grace_is_the_same_stop(monkeypatch):
    before = signal.getsignal(signal.SIGINT)   # (a Ray Tune test earlier may have left its own)
    restore = stop_request.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)   # e.g. timeout's second signal: the cleanup goes on
        monkeypatch.setattr(stop_request, "REPEAT_GRACE_S", 0.0)
        with pytest.raises(KeyboardInterrupt):  # later, the user insists: it interrupts again
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        restore()
    assert signal.getsignal(signal.SIGINT) is before     # the handlers before are back
    stop_request.raise_if_requested()     # and the request is forgotten: a later run goes on


def test_without_a_request_nothing_is_raised():
    restore = stop_request.install()
    restore()
    stop_request.raise_if_requested()


def test_a_heartbeat_thread_left_running_by_an_interrupt_is_released():
    """An interrupt between the heartbeat thread's start and Optuna's ``with`` block left it
    running (not a daemon): the worker printed "interrupted" and never exited."""
    from optuna.storages._heartbeat import HeartbeatThread

    from search.run.stop_request import release_heartbeats

    class Beat:
        def get_heartbeat_interval(self):
            return 60

        def record_heartbeat(self, trial_id):
            pass

    beat = HeartbeatThread(0, Beat())
    beat.start()                 # and never joined, as after the interrupt
    assert beat._thread.is_alive()
    release_heartbeats()
    beat._thread.join(timeout=5)
    assert not beat._thread.is_alive()
