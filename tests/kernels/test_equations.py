"""The equation registry (numbamlp.equations), the code and docs/derivation.md agree.

Every tag the code cites, such as ``(B.4)`` or a range ``A.1–A.6``, is registered; every
registered tag is cited next to code (in a function's or class's docstring, its comments, or the
comment block right above it) somewhere outside equations.py; every kernel of the forward
pass, the backward pass, the optimizers and the sampler names the equation it implements; and
docs/derivation.md derives exactly the registered equations, one anchor per tag.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from numba.core.dispatcher import Dispatcher

import numbamlp
from numbamlp.equations import DERIVATION, EQUATIONS, describe, doc_link

PACKAGE = Path(numbamlp.__file__).parent
COURSE = PACKAGE.parent / "course"
SOURCES = sorted(
    p for p in [*PACKAGE.rglob("*.py"), *COURSE.glob("*.py")] if p.name != "equations.py"
)
DOC = PACKAGE.parent / DERIVATION
ANCHOR = re.compile(r'<a id="([^"]+)"></a>')
SECTION = re.compile(r"(?:FB|MMiDS) §\d+(?:\.\d+)?")
TAG = re.compile(r"\b[A-Z]\.\d+\b")

KERNEL_MODULES = [
    "numbamlp.kernels.forward",
    "numbamlp.kernels.backward",
    "numbamlp.kernels.optimizers",
    "numbamlp.kernels.sampling",
    "course.jacobian",
]
# Kernels that implement no equation of the notes, with the reason. Keep this list short.
NOT_AN_EQUATION: dict[str, str] = {}


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """(name, text) of every function and class in a file: its source lines, including the
    docstring and comments, plus the comment lines immediately above it (activations.py
    documents each scalar φ that way)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    blocks = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            while first > 0 and lines[first - 1].lstrip().startswith("#"):
                first -= 1
            blocks.append((node.name, "\n".join(lines[first : node.end_lineno])))
    return blocks


def test_registry_is_well_formed():
    """Tags are unique and of the form X.n; each entry names its formula and its source."""
    tags = [eq.tag for eq in EQUATIONS.values()]
    assert len(tags) == len(set(tags)) == len(EQUATIONS)
    for tag, eq in EQUATIONS.items():
        assert tag == eq.tag and re.fullmatch(r"[A-Z]\.\d+", tag)
        assert eq.name and eq.formula and eq.source
        assert describe(tag).startswith(f"({tag}) {eq.name}: ")


def test_sources_point_at_sections_the_notes_have():
    """FB has §1 (Q1–Q3) and §2 (Q1–Q3); MMiDS has §7.1–§7.3; anything else says "standard"."""
    for tag, eq in EQUATIONS.items():
        src = eq.source
        assert "FB §" in src or "MMiDS §" in src or src.startswith("standard"), (tag, src)
        for section in re.findall(r"FB §(\d+)", src):
            assert section in {"1", "2"}, (tag, src)
        for question in re.findall(r"\bQ(\d+)", src):
            assert question in {"1", "2", "3"}, (tag, src)
        for section in re.findall(r"MMiDS §(\d+(?:\.\d+)?)", src):
            assert section in {"7", "7.1", "7.2", "7.3"}, (tag, src)


def test_the_notes_core_equations_are_registered():
    """The backprop chain of FB §2 and the heads of both notes are all present."""
    for tag in ("F.1", "F.2", "F.3", "F.4", "J.1", "L.1", "S.1", "B.1", "B.2", "B.3", "B.4"):
        assert tag in EQUATIONS
    assert "f" in EQUATIONS["B.1"].formula and "1_{Y_s=i}" in EQUATIONS["B.1"].formula


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_cited_tag_is_registered(path):
    """No comment or docstring cites an equation the registry does not have."""
    cited = set(TAG.findall(path.read_text(encoding="utf-8")))
    unknown = cited - set(EQUATIONS)
    assert not unknown, f"{path.name} cites unregistered tags {sorted(unknown)}"


def test_every_registered_tag_is_cited_next_to_code():
    """Each equation is implemented somewhere: its tag appears in a function or class (or the
    comments right above one) outside equations.py, not only in a module docstring."""
    cited: dict[str, list[str]] = {}
    for path in SOURCES:
        for name, block in code_blocks(path):
            for tag in TAG.findall(block):
                cited.setdefault(tag, []).append(f"{path.relative_to(PACKAGE.parent)}:{name}")
    missing = sorted(set(EQUATIONS) - set(cited))
    assert not missing, f"registered but never cited next to code: {missing}"


def module_path(module_name: str) -> Path:
    return Path(importlib.import_module(module_name).__file__ or "")


def kernels(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    return [
        (name, obj)
        for name, obj in vars(module).items()
        if isinstance(obj, Dispatcher) and obj.py_func.__module__ == module.__name__
    ]


@pytest.mark.parametrize("module_name", KERNEL_MODULES)
def test_every_kernel_carries_a_tag(module_name):
    """Each compiled kernel of forward.py, backward.py, optimizers.py, sampling.py and
    jacobian.py names the equation it implements (in its docstring or its loop comments)."""
    found = kernels(module_name)
    assert found, f"no kernels found in {module_name}"
    path = module_path(module_name)
    blocks = dict(code_blocks(path))
    untagged = [
        name for name, _ in found if not TAG.search(blocks[name]) and name not in NOT_AN_EQUATION
    ]
    assert not untagged, f"kernels without an equation tag in {module_name}.py: {untagged}"


def test_untagged_allowlist_is_current():
    """Every exemption names an existing kernel that really has no tag (the list cannot rot)."""
    all_kernels = {}
    for module_name in KERNEL_MODULES:
        blocks = dict(code_blocks(module_path(module_name)))
        for name, _ in kernels(module_name):
            all_kernels[name] = blocks[name]
    for name in NOT_AN_EQUATION:
        assert name in all_kernels, name
        assert not TAG.search(all_kernels[name]), f"{name} is tagged now; drop its exemption"


def test_kernel_tags_match_what_the_kernel_computes():
    """Spot checks that the tag on each backprop kernel is the right one."""
    expected = {
        ("forward", "affine_forward"): "F.1",
        ("forward", "activation_forward"): "F.2",
        ("forward", "softmax_forward"): "F.3",
        ("forward", "modified_softmax_forward"): "F.4",
        ("forward", "cross_entropy"): "L.1",
        ("forward", "batch_mean"): "S.1",
        ("backward", "output_delta"): "B.1",
        ("backward", "bias_gradient"): "B.2",
        ("backward", "weight_gradient"): "B.3",
        ("backward", "hidden_delta"): "B.4",
        ("backward", "softmax_jacobian"): "J.1",
        ("optimizers", "sgd_update"): "U.1",
        ("optimizers", "momentum_update"): "U.2",
        ("optimizers", "adagrad_update"): "U.3",
        ("optimizers", "adadelta_update"): "U.4",
        ("optimizers", "rmsprop_update"): "U.5",
        ("optimizers", "adam_update"): "U.6",
        ("sampling", "uniform_indices"): "I.1",
        ("jacobian", "layer_forward"): "M.2",
        ("jacobian", "weight_jacobian"): "M.3",
        ("jacobian", "input_jacobian"): "M.4",
        ("jacobian", "modified_softmax_jacobian"): "J.2",
        ("jacobian", "output_loss"): "M.5",
        ("jacobian", "output_loss_gradient"): "M.6",
        ("jacobian", "input_vjp"): "M.7",
        ("jacobian", "weight_vjp"): "M.8",
    }
    where = {
        "forward": "numbamlp.kernels.forward",
        "backward": "numbamlp.kernels.backward",
        "optimizers": "numbamlp.kernels.optimizers",
        "sampling": "numbamlp.kernels.sampling",
        "jacobian": "course.jacobian",
    }
    for (module_name, name), tag in expected.items():
        block = dict(code_blocks(module_path(where[module_name])))[name]
        assert tag in TAG.findall(block), (module_name, name, tag)


# -- docs/derivation.md ----------------------------------------------------------------------


def derivation_blocks() -> dict[str, str]:
    """tag → the text of docs/derivation.md from the tag's anchor to the next anchor."""
    text = DOC.read_text(encoding="utf-8")
    starts = [(m.start(), m.group(1)) for m in ANCHOR.finditer(text)]
    ends = [start for start, _ in starts[1:]] + [len(text)]
    return {tag: text[start:end] for (start, tag), end in zip(starts, ends, strict=True)}


def test_every_registered_tag_has_one_anchor_in_the_derivation():
    """docs/derivation.md has an anchor ``<a id="B.4"></a>`` for each tag, and no tag twice."""
    anchors = ANCHOR.findall(DOC.read_text(encoding="utf-8"))
    tags = [a for a in anchors if TAG.fullmatch(a)]
    duplicated = sorted({a for a in tags if tags.count(a) > 1})
    assert not duplicated, f"anchors given twice in {DERIVATION}: {duplicated}"
    missing = sorted(set(EQUATIONS) - set(tags))
    assert not missing, f"registered but not derived in {DERIVATION}: {missing}"


def test_the_derivation_cites_only_registered_tags():
    """No anchor, heading or cross-reference in docs/derivation.md names an unknown tag, and
    each in-page link to a tag (``](#B.1)``) has its anchor."""
    text = DOC.read_text(encoding="utf-8")
    unknown = set(TAG.findall(text)) - set(EQUATIONS)
    assert not unknown, f"{DERIVATION} cites unregistered tags {sorted(unknown)}"
    anchors = set(ANCHOR.findall(text))
    links = set(re.findall(r"\]\(#([A-Z]\.\d+)\)", text))
    assert links <= anchors, sorted(links - anchors)


def test_doc_link_points_at_the_anchor():
    blocks = derivation_blocks()
    for tag, eq in EQUATIONS.items():
        assert doc_link(tag) == eq.doc == f"docs/derivation.md#{tag}"
        path, anchor = eq.doc.split("#")
        assert PACKAGE.parent / path == DOC and anchor in blocks
    with pytest.raises(KeyError):
        doc_link("Z.9")


def test_each_derivation_cites_the_registry_s_sources():
    """Each tag's entry on the page names the sections its registry source cites (FB §2,
    MMiDS §7.2, …), says "standard" where the registry does, and shows its index form."""
    blocks = derivation_blocks()
    for tag, eq in EQUATIONS.items():
        block = blocks[tag]
        cited = set(SECTION.findall(eq.source))
        assert cited <= set(SECTION.findall(block)), (tag, sorted(cited))
        if eq.source.startswith("standard"):
            assert "standard" in block, tag
        assert "```math" in block, f"{tag}: no displayed formula"
