"""No output may destroy an input: the check every command (and ``numbamlp.fit``) runs on its
paths before it reads or writes anything.

Two paths name the same file when both exist and ``os.path.samefile`` says so (a symbolic link
to the file, or a hard link: the same st_dev and st_ino), or else when they resolve to the same
path. Messages name the parameters in backquotes (`` `save=m.npz` ``), which the command line
spells as its flags.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from numbamlp.errors import NumbamlpError

PathLike = str | os.PathLike[str]


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` are (or will be) one file: through links, or by their paths."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):  # a loop of links
        return os.path.abspath(a) == os.path.abspath(b)


def check_distinct_paths(
    outputs: Mapping[str, PathLike | None],
    inputs: Iterable[tuple[str, PathLike | None]] = (),
    derived: Iterable[tuple[str, PathLike | None]] = (),
) -> None:
    """Refuse (NumbamlpError) an output that is the same file as an input, or as another
    output. ``outputs`` maps each output's parameter to its path (None: not written);
    ``inputs`` gives (how the input is named, its path), where the name is a parameter
    (``model_path``) or a phrase naming one; ``derived`` likewise the files the command
    writes that no parameter names (a checkpoint in its directory). The fix names the output
    to rename."""
    named = [(name, path) for name, path in outputs.items() if path is not None]
    read = [(what, path) for what, path in inputs if path is not None]
    others = [(what, path) for what, path in derived if path is not None]
    for i, (name, path) in enumerate(named):
        for what, source in read:
            if same_file(path, source):
                raise NumbamlpError(
                    f"`{name}={path}` is the same file as {_shown(what, source)}, which this "
                    f"command reads: writing it would destroy it; choose another name for "
                    f"`{name}`"
                )
        for other, other_path in named[:i] + others:
            if same_file(path, other_path):
                raise NumbamlpError(
                    f"`{name}={path}` is the same file as {_shown(other, other_path)}, which "
                    f"this command also writes: one output would overwrite the other; choose "
                    f"another name for `{name}`"
                )


def _shown(what: str, path: PathLike) -> str:
    """An input as the message names it: `name=path`, or a phrase with the path."""
    if what.isidentifier():
        return f"`{what}={path}`"
    return f"{path} ({what})"
