"""Text for the terminal: output degrades to ASCII on a stream that cannot encode it.

The messages, the help and the model's repr use the notes' symbols (σ, →, γ̃, ∇, θ, ′, …). On a
stream whose encoding lacks them (``PYTHONIOENCODING=cp1252``, ``=ascii``, a Windows console)
Python raises UnicodeEncodeError mid-output. :func:`fitted_streams` puts a :class:`FittingWriter`
in front of sys.stdout and sys.stderr for the duration of a command: every write, whoever makes it
(click's help and usage errors, the progress bar, our messages), goes through :func:`fit`, which
keeps what the encoding has, spells the symbols out (:data:`ASCII`), decomposes the rest (ŷ → y,
² → 2) and replaces what is left with '?'. UTF streams are left untouched.

Only the standard library is imported: the CLI loads this before anything else.
"""

from __future__ import annotations

import codecs
import contextlib
import sys
import unicodedata
from collections.abc import Iterator
from typing import Any, TextIO

#: ASCII spellings of the symbols numbamlp prints (σ is the logistic sigmoid throughout).
ASCII: dict[str, str] = {
    "σ": "sigmoid", "Σ": "sum", "γ": "gamma", "β": "beta", "ε": "eps", "μ": "mu", "µ": "mu",
    "ρ": "rho", "δ": "delta", "Δ": "Delta", "θ": "theta", "τ": "tau", "φ": "phi", "α": "alpha",
    "π": "pi", "ℓ": "l", "∇": "grad ", "∂": "d", "\u0303": "~", "′": "'", "·": "*", "×": "x",
    "⊙": "(.)", "→": "->", "←": "<-", "⇒": "=>", "↦": "|->", "−": "-", "–": "-", "—": "--",
    "…": "...", "≤": "<=", "⩽": "<=", "≥": ">=", "⩾": ">=", "≠": "!=", "≈": "~", "∈": " in ",
    "√": "sqrt", "‖": "||", "⌊": "floor(", "⌋": ")", "⌈": "ceil(", "⌉": ")", "§": "section ",
    "‘": "'", "’": "'", "“": '"', "”": '"', "\u00a0": " ",
}  # fmt: skip


def _is_unicode(encoding: str) -> bool:
    """Whether ``encoding`` can encode every character (a UTF codec)."""
    try:
        return codecs.lookup(encoding).name.startswith("utf")
    except LookupError:
        return False


def _spell(ch: str, encoding: str) -> str:
    """One character the encoding lacks, in characters it has."""
    if ch in ASCII:
        return ASCII[ch]
    decomposed = unicodedata.normalize("NFKD", ch)
    kept = "".join(c for c in decomposed if c.isascii())
    return kept or "?"


def fit(text: str, encoding: str) -> str:
    """``text`` with every character ``encoding`` cannot encode spelled in ones it can."""
    try:
        text.encode(encoding)
        return text
    except UnicodeEncodeError:
        pass
    except LookupError:
        encoding = "ascii"
    out = []
    for ch in text:
        try:
            ch.encode(encoding)
            out.append(ch)
        except UnicodeEncodeError:
            out.append(_spell(ch, encoding))
    return "".join(out).encode(encoding, errors="replace").decode(encoding)


class FittingWriter:
    """A text stream that passes what it is given through :func:`fit` to ``stream``.

    It has no ``buffer``, so click writes to it rather than around it (click re-wraps an ASCII
    stream's byte buffer as UTF-8, which sends UTF-8 to a terminal that said it reads ASCII).
    """

    def __init__(self, stream: TextIO, encoding: str) -> None:
        self._stream = stream
        self.encoding = encoding
        self.errors = "strict"

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._stream.write(fit(text, self.encoding))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._stream.closed


@contextlib.contextmanager
def fitted_streams() -> Iterator[None]:
    """Within the block, sys.stdout and sys.stderr fit what they are given to their encoding
    (those that are not UTF: UTF streams are left as they are)."""
    saved = sys.stdout, sys.stderr
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        encoding = getattr(stream, "encoding", None)
        if stream is not None and isinstance(encoding, str) and not _is_unicode(encoding):
            setattr(sys, name, FittingWriter(stream, encoding))
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = saved
