"""The errata of the two course documents (course.errata): each correction is shown right by
a numerical demonstration, and each erratum quotes the formula the notes print, with its slip.

The documents themselves are not in the repository and nothing here reads them: ``AS_PRINTED``
below holds, for each erratum, the short formula as the notes print it (their LaTeX source, at
the section and line the erratum cites), the slip within it, and what the correction puts in the
slip's place.
"""

from __future__ import annotations

import re

import pytest

from course.errata import BY_KEY, DOCUMENTS, ERRATA, table

#: key → (the formula as the notes print it, the slip in it, the fix in ``corrected``)
AS_PRINTED: dict[str, tuple[str, str, str]] = {
    # FB §1 Q1
    "FB1-hidden-argument": (
        r"h_{\theta}^{1}(x) = \varphi_{1}(z_{\theta}^{1}(X_{i}))",
        r"h_{\theta}^{1}(x)",
        "h^1_θ(X_i)",
    ),
    "FB1-layer2-superscripts": (
        r"b^{1} \in \mathbb{R}^{d_{2}}, W^{1} \in \mathbb{R}^{d_{2} \times d_{1}}",
        r"b^{1} \in \mathbb{R}^{d_{2}}",
        "b^2 ∈ R^{d_2}",
    ),
    "FB1-layer3-superscripts": (
        r"b^{1} \in \mathbb{R}^{M}, W^{1} \in \mathbb{R}^{M \times d_{2}}",
        r"b^{1} \in \mathbb{R}^{M}",
        "b^3 ∈ R^M",
    ),
    # FB §1 Q2
    "FB1-minibatch-index": (
        r"(I_i)_{1\leqslant p,1\leqslant i\leqslant B}",
        r"(I_i)",
        "(I^p_i)",
    ),
    # FB §2
    "FB2-activation-index": ("activation functions φ^m", "φ^m", "φ_m"),
    "FB2-Q1-summation-index": (
        r"\frac{\mathrm{e}^{z_j}}{\sum_{j=1}^M \mathrm{e}^{z_j}}",
        r"\sum_{j=1}^M \mathrm{e}^{z_j}",
        "Σ_{ℓ=1}^M e^{z_ℓ}",
    ),
    "FB2-Q2-gradient-wrt-z": (
        r"\nabla_{h^L} \ell_{\theta}(X, Y) = f_{\theta}(X) - \mathbb{1}_Y",
        r"\nabla_{h^L}",
        "∇_{z^L_θ(X)} ℓ_θ(X, Y) = f_θ(X) − 1_Y",
    ),
    "FB2-Q2-derivation-index": (
        r"- \varphi_{L}(z_{\theta}^{L}(X))_{k} \mathbbm{1}_{j\neq k}",
        r"(X))_{k} \mathbbm{1}_{j\neq k}",
        "φ_L(z^L)_j 1_{j≠k}",
    ),
    "FB2-Q2-weight-gradient-uses-f": (
        r"(\ell_{\theta}(X,Y) - \mathbbm{1}_Y)_k",
        r"\ell_{\theta}(X,Y) - ",
        "(f_θ(X) − 1_Y)_k",
    ),
    "FB2-Q3-mu-for-theta": (r"\nabla_{z_{\mu}^{m}(X)}", r"z_{\mu}", "z_θ^m(X)"),
    "FB2-Q3-recursion-start": (
        r"\nabla_{z^L(X)} \ell_{\theta}(X,Y) = \ell_{\theta}(X,Y) - \mathbb{1}_Y",
        r"= \ell_{\theta}(X,Y) - \mathbb{1}_Y",
        "= f_θ(X) − 1_Y",
    ),
    "FB2-Q3-bias-stray-index": (
        r"\partial_{(z_{\theta}^m(X))_i} \ell_{\theta}(X,Y)_i",
        r"\ell_{\theta}(X,Y)_i",
        "ℓ_θ(X,Y)  (B.2)",
    ),
    # MMiDS §7.1–§7.3
    "MMiDS71-rows-of-W": (r"\mathbf{w}^{(n+{i+1})}_i", r"(n+{i+1})", "w_i^{(n_{i+1})}"),
    "MMiDS71-loss-argument": (
        r"\ell_{\mathbf{y}}(\mathbf{z}_{L+1}) = H(\mathbf{y}, \mathbf{z}_{L+1})",
        r"\ell_{\mathbf{y}}(\mathbf{z}_{L+1})",
        "ℓ_y(z_{L+2})",
    ),
    "MMiDS72-summary-superscripts": (
        r"\mathbf{z}^{i+1} &:= g_i(\mathbf{w}^i;\mathbf{z}^i)",
        r"\mathbf{z}^{i+1}",
        "z_{i+1} := g_i(w_i; z_i)",
    ),
    "MMiDS72-p-hadamard": (
        r"\mathbf{z}_i^{;1} \right) \odot \mathbf{q}_{i+1}",
        r"\odot \mathbf{q}_{i+1}",
        "q_{i+1,1} σ′",
    ),
    "MMiDS72-gradient-order": (
        r"(\mathbf{p}_L;\ldots;\mathbf{p}_1)",
        r"(\mathbf{p}_L;\ldots;\mathbf{p}_1)",
        "(p_1; …; p_L)",
    ),
    "MMiDS73-chain-softmax": ("  Dense(32, 10),\nChain(", "Dense(32, 10),\nChain(", "  softmax)"),
    "MMiDS7-sigmoid-on-layer-L": (r"layer $L$ has $K-1$ outputs", "$K-1$ outputs", "without σ"),
}


def test_errata_are_well_formed():
    assert len(BY_KEY) == len(ERRATA) >= 15
    for e in ERRATA:
        assert e.document in DOCUMENTS and e.kind in ("typo", "inconsistency"), e.key
        assert e.section and e.line > 0 and e.quote and e.why
        assert re.match(r"§\d", e.section), (e.key, e.section)  # cited as "§2 Q3", "§7.2", …
        assert e.as_written != e.corrected, e.key


def test_the_issue_s_two_examples_are_listed():
    """Issue 4 names "b^1 ∈ R^{d_2}" and "∇_{z^L} ℓ = ℓ_θ(X,Y) − 1_Y"."""
    assert "b^2 ∈ R^{d_2}" in BY_KEY["FB1-layer2-superscripts"].corrected
    assert "f_θ(X) − 1_Y" in BY_KEY["FB2-Q3-recursion-start"].corrected


@pytest.mark.parametrize("erratum", ERRATA, ids=lambda e: e.key)
def test_correction_holds_and_the_text_as_written_does_not(erratum):
    demo = erratum.demonstrate()
    assert demo.summary
    assert demo.corrected_error <= demo.tolerance, (erratum.key, demo)
    if demo.written_error is not None:
        assert demo.written_error > max(1e-3, 100 * demo.tolerance), (erratum.key, demo)


def test_every_erratum_has_its_printed_formula_here():
    assert set(AS_PRINTED) == set(BY_KEY)


@pytest.mark.parametrize("erratum", ERRATA, ids=lambda e: e.key)
def test_quote_is_the_formula_as_printed_with_its_slip(erratum):
    """The quote is the notes' formula as printed and contains the slip; the correction puts
    the fix in its place, and the plain-notation text as written does not have the fix."""
    printed, slip, fix = AS_PRINTED[erratum.key]
    assert erratum.quote == printed, erratum.key
    assert slip in erratum.quote, erratum.key
    assert fix in erratum.corrected, (erratum.key, erratum.corrected)
    assert fix not in erratum.as_written, (erratum.key, erratum.as_written)


def test_table_has_a_row_per_erratum():
    rows = table().splitlines()
    assert len(rows) == 2 + len(ERRATA)
    assert all(row.count(" | ") >= 4 for row in rows[2:])
