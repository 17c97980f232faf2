"""The one exception type a user sees.

Anything that is the user's to fix (a missing or corrupt file, a bad option, diverging training)
raises :class:`NumbamlpError` with a message that names the problem and the fix. The CLI prints
that message alone (no traceback) and exits with status 2. Any other exception is a bug.
"""

from __future__ import annotations


class NumbamlpError(Exception):
    """A problem with the user's input or options, explained in the message."""
