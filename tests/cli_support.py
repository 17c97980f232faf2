"""What the command-line tests share: running a command in-process, and the one-line error
check (exit 2, exactly one line starting ``error:``, no traceback)."""

from __future__ import annotations

import re

from click.testing import CliRunner, Result

from numbamlp.cli.commands import main


def run(*args: object) -> Result:
    """``numbamlp ARGS`` in this process."""
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result: Result, *fragments: str) -> str:
    """Assert exit status 2, one ``error:`` line, no traceback, every fragment in the output;
    return the output."""
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert len(re.findall(r"^error:", output, flags=re.M)) == 1, output
    for fragment in fragments:
        assert fragment in output, output
    return output
