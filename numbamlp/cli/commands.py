"""The ``numbamlp`` command line.

Only click is imported at start-up, so ``numbamlp --help`` is fast; numpy, Numba and the kernels
load inside the command that needs them. Every user-fixable problem is a NumbamlpError (or a
click usage error): one line on stderr starting ``error:``, exit status 2, no traceback
(_Group).
"""

from __future__ import annotations

import re
import sys
from typing import Any, cast

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


#: Raised by click ≥ 8.2 for a bare ``numbamlp``, whose answer is the help, not a line.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _Group(click.Group):
    """Every user error of every command ends the same way: one line on stderr, ``error: …``
    (``error: --option: …`` where an option is concerned), exit status 2, no traceback. Click's
    own errors (a bad value, an unknown or missing option, a bad choice) are formatted here
    (error_line) instead of click's usage block; a NumbamlpError is put in the command line's
    words (cli_message). Output that the terminal's encoding cannot show is spelled in ASCII
    (console.py) rather than crash."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        from numbamlp.cli.console import fitted_streams

        with fitted_streams():
            if not standalone_mode:  # the caller handles click's exceptions itself
                return super().main(args, prog_name, complete_var, False, **extra)
            try:
                # Not standalone: click hands its exceptions here instead of printing its
                # usage block; it returns the status of ctx.exit (--help, --version, ours)
                # or the command's return value (None: success).
                code = super().main(args, prog_name, complete_var, False, **extra)
            except _NO_ARGS_IS_HELP as exc:  # a bare `numbamlp` shows the help (click ≥ 8.2)
                exc.show()
                code = exc.exit_code
            except click.ClickException as exc:
                click.echo(f"error: {error_line(exc)}", err=True)
                code = EXIT_USER_ERROR
            except click.Abort:  # Ctrl-C outside a command (click has echoed the newline)
                click.echo("interrupted", err=True)
                code = EXIT_INTERRUPTED
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            # an error of the subcommand's options: the command's name, for the help hint
            if getattr(exc, "ctx", None) is None and ctx.invoked_subcommand:
                exc.command_path = f"{ctx.command_path} {ctx.invoked_subcommand}"  # type: ignore[attr-defined]
            raise
        except user_error_type() as exc:
            command = self.get_command(ctx, ctx.invoked_subcommand or "")
            message = cli_message(str(exc), command)
            cluster = getattr(exc, "cluster", None)  # set by fit on a distributed run
            if cluster is None:
                click.echo(f"error: {message}", err=True)
            else:  # a distributed run: every rank must end (distributed.fail)
                from numbamlp.engines.cluster import fail

                fail(cluster, exc, message, lambda line: click.echo(line, err=True))
            ctx.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def _sentence(message: str) -> str:
    """Click's message as a clause of our line: no capital (unless an acronym), no full stop."""
    message = message.strip()
    if message.endswith(".") and not message.endswith(".."):
        message = message[:-1]
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        message = message[0].lower() + message[1:]
    return message


def _flag(param: click.Parameter) -> str:
    """How the line names a parameter: an option by its longest flag, as cli_message does."""
    if isinstance(param, click.Option) and param.opts:
        return max(param.opts, key=len)
    return param.human_readable_name


def _metavar(param: click.Parameter, ctx: click.Context | None) -> str:
    make = cast(Any, param).make_metavar
    try:
        return str(make(ctx))  # click ≥ 8.2
    except TypeError:
        return str(make())


def _did_you_mean(possibilities: list[str] | None) -> str:
    """Click's suggestions for a misspelt name, as the end of a clause."""
    if not possibilities:
        return ""
    names = sorted(possibilities)
    if len(names) == 1:
        return f"; did you mean {names[0]}?"
    return f"; did you mean one of {', '.join(names)}?"


def error_line(exc: click.ClickException) -> str:
    """The text after ``error: `` for a click error: ``--option: message`` where an option is
    concerned, and the command's help named where the message does not say what to type."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else getattr(exc, "command_path", None)
    see = f" (see `{path} --help`)" if path else ""
    if isinstance(exc, click.MissingParameter):
        param = exc.param
        if param is None:
            return f"{_sentence(exc.format_message())}{see}"
        flag = _flag(param)
        return f"{flag}: missing; give {flag} {_metavar(param, ctx)}".rstrip() + see
    if isinstance(exc, click.BadParameter):
        hint = exc.param_hint
        if isinstance(hint, str):
            name: str | None = hint.strip("'\"")
        elif hint is not None:
            name = " / ".join(hint)
        elif exc.param is not None:
            name = _flag(exc.param)
        else:
            name = None
        message = _sentence(exc.message)
        return f"{name}: {message}" if name else message
    if isinstance(exc, click.NoSuchOption):
        line = f"{exc.option_name}: no such option"
        if exc.message != f"No such option {exc.option_name!r}.":
            line = f"{exc.option_name}: {_sentence(exc.message)}"
        return line + _did_you_mean(exc.possibilities) + see
    if hasattr(exc, "command_name"):  # click ≥ 8.4's NoSuchCommand
        possibilities = getattr(exc, "possibilities", None)
        return _sentence(exc.message) + _did_you_mean(possibilities) + see
    if isinstance(exc, click.BadOptionUsage):
        message = exc.message
        prefix = f"Option {exc.option_name!r} "
        if message.startswith(prefix):
            return f"{exc.option_name}: {_sentence(message[len(prefix) :])}{see}"
        return f"{exc.option_name}: {_sentence(message)}{see}"
    if isinstance(exc, click.UsageError):  # a command or an argument that does not exist
        return f"{_sentence(exc.format_message())}{see}"
    return _sentence(exc.format_message())


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
