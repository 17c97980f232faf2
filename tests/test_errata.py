"""The errata of the two documents (numbamlp.errata): each correction is shown right by a
numerical demonstration, and each text quoted as written is really in the document."""

from __future__ import annotations

import pytest

from numbamlp.errata import BY_KEY, DOCUMENTS, ERRATA, derivations_dir, table


def test_errata_are_well_formed():
    assert len(BY_KEY) == len(ERRATA) >= 15
    for e in ERRATA:
        assert e.document in DOCUMENTS and e.kind in ("typo", "inconsistency"), e.key
        assert e.section and e.line > 0 and e.quote and e.why
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


@pytest.mark.parametrize("erratum", ERRATA, ids=lambda e: e.key)
def test_quote_is_on_the_stated_line_of_the_document(erratum):
    folder = derivations_dir()
    if folder is None:
        pytest.skip("shared/derivations/ not found beside the repository")
    lines = (folder / DOCUMENTS[erratum.document]).read_text(encoding="utf-8").splitlines()
    first_line = erratum.quote.split("\n")[0]
    window = "\n".join(lines[erratum.line - 1 : erratum.line - 1 + erratum.quote.count("\n") + 1])
    assert first_line in lines[erratum.line - 1], (erratum.key, lines[erratum.line - 1][:80])
    assert erratum.quote in window, erratum.key


def test_table_has_a_row_per_erratum():
    rows = table().splitlines()
    assert len(rows) == 2 + len(ERRATA)
    assert all(row.count(" | ") >= 4 for row in rows[2:])
