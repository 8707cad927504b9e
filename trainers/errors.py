"""Errors about the user's setup (data on disk, named callables) that the user can fix.

``trainers`` cannot import ``search``; the study builder turns a ``SetupError`` into the
command line's ``ConfigError`` (exit status 2, one line, no traceback).
"""
from __future__ import annotations


class SetupError(ValueError):
    """The named data set, model or callable cannot be used; the message says what to do."""
