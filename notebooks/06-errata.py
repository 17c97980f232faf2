# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Errata of the two documents
#
# The two course documents the project started from, FB and MMiDS (cited by section in
# [docs/derivation.md](../docs/derivation.md), the project's own derivation, which follows the
# corrected formulas), are transcriptions and contain typos. Each one is listed in
# `course/errata.py` with the document, section and line, the formula as the notes print it,
# the correction, and a function that demonstrates numerically — with numbamlp's own kernels,
# finite differences or the architecture's shapes — that the correction is right and, where
# the text can be evaluated at all, that the text as written is not.
# (`tests/course/test_errata.py` runs the same demonstrations and pins each quoted formula with its
# slip.)
#
# Columns of the demonstration: **corrected** is the error of the corrected formula against the
# truth (≈ 0); **as written** is the error of the text as written (— when it cannot be
# evaluated, e.g. a misplaced index).

# %%
import inspect
import sys

from IPython.display import Markdown, display

sys.path.insert(0, "..")  # course/, beside the package in the repository (it is not installed)
from course.errata import ERRATA, table  # noqa: E402

display(Markdown(table()))

# %% [markdown]
# ## Each erratum and its demonstration


# %%
def as_code(text):
    """Inline code, or a fenced block for the multi-line Flux cell."""
    if "\n" not in text:
        return f"`{text}`"
    block = "\n".join(["```", *text.splitlines(), "```"])
    return "\n\n" + "\n".join("  " + line for line in block.splitlines()) + "\n"


for number, e in enumerate(ERRATA, 1):
    demo = e.demonstrate()
    written = "—" if demo.written_error is None else f"{demo.written_error:.3g}"
    display(Markdown(
        f"### {number}. {e.document} {e.section}, line {e.line} ({e.kind})\n\n"
        f"- **as written:** {as_code(e.as_written)}\n"
        f"- **corrected:** {as_code(e.corrected)}\n"
        f"- **why:** {e.why}\n"
        f"- **demonstration:** {demo.summary}  \n"
        f"  error of the correction **{demo.corrected_error:.2g}** (tolerance {demo.tolerance:g}); "
        f"error as written **{written}**"
    ))  # fmt: skip
    assert demo.corrected_error <= demo.tolerance, e.key


# %% [markdown]
# ## The ones the code relies on
#
# Three corrections are load-bearing in numbamlp:
#
# * **FB §2 Q3's recursion starts at $f_\theta(X) - \mathbb 1_Y$** (and Q2's
#   $\nabla_{z^L}$, not $\nabla_{h^L}$): the [B.1](../docs/derivation.md#B.1) kernel
#   `backward.output_delta` computes $\delta^L = f - \mathbb 1_Y$; its check against finite
#   differences is in 02-backpropagation.
# * **$W^k \in \mathbb R^{d_k \times d_{k-1}}$ for every layer** (FB §1 Q1's copied
#   superscripts): `network.Architecture.layer_views` gives exactly these shapes.
# * **MMiDS's gradient in $\mathbf w$'s order** $(\mathbf p_1; \dots; \mathbf p_L)$ and the
#   block-wise $q_{i+1,k}$ in $\mathbf p_i$: `course.jacobian`
#   ([M.8](../docs/derivation.md#M.8), [M.9](../docs/derivation.md#M.9)), checked in
#   03-jacobian-view.
#
# One demonstration in full, to show what "numerically" means here — the recursion start:

# %%
from course.errata import BY_KEY  # noqa: E402

print(inspect.getsource(BY_KEY["FB2-Q3-recursion-start"].demonstrate))
print(BY_KEY["FB2-Q3-recursion-start"].demonstrate())
