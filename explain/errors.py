"""The one error type of `explain/`: a problem the user can fix (unknown kind, wrong input shape).

It subclasses `ValueError` so plain Python callers can catch it without knowing this package;
the framework turns it into one readable line and exit code 2. Bugs are not `ExplainError`s.
"""

from __future__ import annotations


class ExplainError(ValueError):
    """A user-facing problem with what was asked to be explained; the message is one clear line."""
