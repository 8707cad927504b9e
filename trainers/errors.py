"""Errors about the user's setup (data on disk, named callables) that the user can fix.

``trainers`` cannot import ``search``; the study builder turns a ``SetupError`` into the
command line's ``ConfigError`` (exit status 2, one line, no traceback).
"""
from __future__ import annotations


class SetupError(ValueError):
    """The named data set, model or callable cannot be used; the message says what to do."""


def error_summary(exc: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message`` (cut to ``limit``), or the type alone: how an error
    from a library shows inside one of our one-line messages."""
    lines = str(exc).splitlines()
    text = lines[0][:limit] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
