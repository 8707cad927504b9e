"""Ctrl-C and SIGTERM that a run does not lose.

Python turns SIGINT into a ``KeyboardInterrupt`` wherever the program happens to be; when that is
inside a weak-reference callback or a finaliser (frequent while torch imports), Python prints
"Exception ignored in ..." and carries on: the run went on to train the whole study after the
user had pressed Ctrl-C. The handlers installed here remember the request as well as raising, and
the trial loop calls ``raise_if_requested`` at its safe points (before the trials start, after
each trial), so a swallowed interrupt ends the run there instead.

SIGTERM (a scheduler's stop, ``terminate()`` of a worker process) is handled like Ctrl-C: the
running trial is marked interrupted and queued again, the tables are written. A second signal
within a few seconds of the first is the same stop and is ignored; a later one interrupts again.
"""
from __future__ import annotations

import signal
import threading
import time
from typing import Any, Callable

_requested = False
_first_at = -float("inf")
REPEAT_GRACE_S = 3.0   # a repeat this soon is the same stop: let the cleanup finish


def _stop(signum: int, frame: object) -> None:
    # One stop often arrives twice: `timeout` signals the command and then its process group, a
    # worker gets the group's Ctrl-C and then terminate() from the first process. Raising again
    # would cut the cleanup (the interrupted trial queued again) with a second traceback.
    global _requested, _first_at
    now = time.monotonic()
    if _requested and now - _first_at < REPEAT_GRACE_S:
        return
    _requested, _first_at = True, now
    raise KeyboardInterrupt


def install() -> Callable[[], None]:
    """Install the handlers for SIGINT and SIGTERM in this process (main thread only; elsewhere
    nothing); returns a function that puts the previous handlers back."""
    global _requested, _first_at
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    _requested, _first_at = False, -float("inf")
    previous: dict[int, Any] = {sig: signal.signal(sig, _stop)
                                for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:   # and forget the request: a later run in this process starts anew
        global _requested
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _requested = False
    return restore


def release_heartbeats() -> None:
    """Let Optuna's heartbeat threads end. One starts in ``with get_heartbeat_thread(...)`` around
    each trial and is not a daemon: an interrupt that lands between its start and the ``with``
    block's entry skips its stop, and the process then hung at exit waiting for it (seen once:
    a worker printed "interrupted" and never ended). Called on the way out of an interrupt."""
    for thread in threading.enumerate():
        if getattr(getattr(thread, "_target", None), "__name__", "") != "_record_heartbeat":
            continue
        for arg in getattr(thread, "_args", ()):
            if isinstance(arg, threading.Event):
                arg.set()


def raise_if_requested() -> None:
    """Raise ``KeyboardInterrupt`` if a stop was requested (and possibly swallowed) before."""
    if _requested:
        raise KeyboardInterrupt


__all__ = ["install", "raise_if_requested", "release_heartbeats"]
