"""The ``numbamlp`` command line.

Only click is imported at start-up, so ``numbamlp --help`` is fast; numpy, Numba and the kernels
load inside the command that needs them. Every user-fixable problem is a NumbamlpError (or a
click usage error): one message on stderr, exit status 2, no traceback.
"""

from __future__ import annotations

import re
from typing import Any

import click

from numbamlp.cli.models import evaluate, export_model, predict
from numbamlp.cli.options import (
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    OLD_NAME,
)
from numbamlp.cli.tools import gradcheck, info, precompile
from numbamlp.cli.train import train

# The choices are the registries' names (tests/test_conventions.py checks it).
from numbamlp.training.config import ACTIVATIONS


def user_error_type() -> type[Exception]:
    from numbamlp.errors import NumbamlpError

    return NumbamlpError


class _Group(click.Group):
    """Turns NumbamlpError into one line on stderr and exit status 2, in the command line's
    words (cli_message); output that the terminal's encoding cannot show is spelled in ASCII
    (console.py) rather than crash."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        from numbamlp.cli.console import fitted_streams

        with fitted_streams():
            return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (user_error_type(), click.ClickException) as exc:
            cluster = getattr(exc, "cluster", None)  # set by fit on a distributed run
            if cluster is None and isinstance(exc, click.ClickException):
                raise
            if isinstance(exc, click.ClickException):
                message = exc.format_message()
            else:
                command = self.get_command(ctx, ctx.invoked_subcommand or "")
                message = cli_message(str(exc), command)
            if cluster is None:
                click.echo(f"error: {message}", err=True)
            else:  # a distributed run: every rank must end (distributed.fail)
                from numbamlp.engines.cluster import fail

                fail(cluster, exc, message, lambda line: click.echo(line, err=True))
            ctx.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="numbamlp")
def main() -> None:
    """Train small MLPs whose backprop is the textbook index formulas, compiled with Numba.

    Start with `numbamlp train` (the MMiDS §7.3 MNIST experiment), or `numbamlp gradcheck`.
    """


def cli_message(message: str, command: click.Command | None) -> str:
    """A library message in the command line's words: `name=value` becomes ``--flag value``
    and `name` ``--flag``, for every parameter that is an option of ``command`` (or else of
    ``train``, whose options name every run parameter)."""
    flags: dict[str, str] = {}
    for source in (train, command):
        for param in source.params if source is not None else ():
            if param.name and param.opts and not param.name.startswith(OLD_NAME):
                flags[param.name] = max(param.opts, key=len)

    def flag(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(3)
        if name not in flags:
            return match.group(0)
        return flags[name] if value is None else f"{flags[name]} {value}"

    return re.sub(r"`([A-Za-z_][A-Za-z0-9_]*)(=([^`]*))?`", flag, message)


for command in (train, evaluate, predict, export_model, gradcheck, info, precompile):
    main.add_command(command)

__all__ = ["ACTIVATIONS", "cli_message", "main", "train", "evaluate", "predict"]

if __name__ == "__main__":  # pragma: no cover
    main()
