"""Errata of the two course documents, each with a numerical demonstration.

The documents (FB and MMiDS, see ``DOCUMENTS``) are not part of the repository; the project's
own derivation is docs/derivation.md, which follows the corrected formulas. Each ``Erratum``
names the document, the section, the line of the document's transcription (a citation only),
the text as the notes print it (``quote``: a short formula in the notes' LaTeX source, which
tests/course/test_errata.py pins), the same text and its correction in plain notation, and a
function that shows numerically, with numbamlp's own kernels, that the correction is right: it
returns
the error of the corrected formula against an independent truth (finite differences, the kernel
that implements the equation, or the shapes the architecture gives) and, where the written text
can be evaluated at all, the error of the text as written.

``kind`` is "typo" for a slip in a formula and "inconsistency" where the documents disagree
with themselves (MMiDS's theory vs its own Flux code).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from course import jacobian as jac
from numbamlp.kernels.backward import output_delta
from numbamlp.kernels.forward import (
    activation_forward,
    affine_forward,
    cross_entropy,
    softmax_forward,
)
from numbamlp.kernels.sampling import Sampler
from numbamlp.model import reference
from numbamlp.model.gradcheck import central_jacobian, numerical_gradient
from numbamlp.model.mlp import MLP
from numbamlp.model.network import Architecture

#: The two course documents, cited by section (and by line of their transcriptions, the files
#: named here): they are references, not inputs of numbamlp or its tests.
DOCUMENTS = {
    "FB": 'exercise sheet "Feed forward neural networks" (feedforward-and-backprop.md)',
    "MMiDS": 'S. Roch, MMiDS ch. 7 "Neural networks" (mmids-neural-networks.md)',
}


@dataclass(frozen=True)
class Demonstration:
    """What a demonstration computed: ``corrected_error`` ≈ 0 shows the correction holds;
    ``written_error`` > 0 shows the text as written does not (None: it cannot be evaluated,
    e.g. a misplaced index)."""

    summary: str
    corrected_error: float
    written_error: float | None
    tolerance: float = 1e-6  # how close to 0 corrected_error must be (sampling: statistical)


@dataclass(frozen=True)
class Erratum:
    key: str
    kind: str  # "typo" or "inconsistency"
    document: str  # "FB" or "MMiDS"
    section: str
    line: int  # line of the document's transcription: a citation, nothing reads the file
    quote: str  # the text as the notes print it (their LaTeX source), short
    as_written: str
    corrected: str
    why: str
    demonstrate: Callable[[], Demonstration]


# -- small fixtures --------------------------------------------------------------------------


def _network(sizes=(4, 5, 3, 6), head="softmax", seed=0) -> MLP:
    """A float64 network with random nonzero parameters, for the demonstrations."""
    rng = np.random.default_rng(seed)
    hidden = list(sizes[1:-1])
    n_classes = sizes[-1] + (1 if head == "modified-softmax" else 0)
    model = MLP.create(sizes[0], hidden, n_classes, head=head, dtype="float64", rng=rng)
    model.params.theta[:] = rng.normal(size=model.params.theta.shape)
    return model


def _sample(model: MLP, seed=1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(1, model.architecture.n_inputs))
    y = np.array([int(rng.integers(model.architecture.n_classes))])
    return X, y


def _softmax(z: np.ndarray) -> np.ndarray:
    """(F.3) numbamlp's softmax kernel on one vector."""
    out = np.empty((1, z.shape[0]))
    softmax_forward(out, np.ascontiguousarray(z, dtype=np.float64)[None, :])
    return out[0]


def _loss_of_logits(z: np.ndarray, label: int) -> float:
    """(L.1) numbamlp's cross-entropy kernel on one vector of logits."""
    losses = np.empty(1)
    cross_entropy(losses, np.ascontiguousarray(z)[None, :], np.array([label]), z.shape[0])
    return float(losses[0])


def _shape_mismatches(shape, expected) -> float:
    return float(tuple(shape) != tuple(expected))


# -- FB §1 ------------------------------------------------------------------------------------


def _demo_hidden_argument() -> Demonstration:
    """h^1 is φ_1(z^1) at the same input X_i, not at another x."""
    model = _network()
    X = np.random.default_rng(2).normal(size=(2, 4))  # X_i and some other x
    Z, H, _ = reference.forward(model.architecture, model.params.W, model.params.b, X)
    h1 = np.empty_like(Z[1])
    activation_forward(h1, Z[1], model.architecture.activation_codes[1])  # (F.2)
    corrected = np.abs(h1[0] - H[1][0]).max()
    written = np.abs(h1[1] - H[1][0]).max()  # h^1 at x ≠ X_i against φ_1(z^1(X_i))
    return Demonstration(
        "h^1 at X_i equals φ_1(z^1(X_i)); at another input x it does not", corrected, written
    )


def _bias_shapes_demo(layer: int) -> Callable[[], Demonstration]:
    def demo() -> Demonstration:
        d, d1, d2, M = 5, 4, 3, 6
        arch = Architecture((d, d1, d2, M), ("sigmoid", "sigmoid"))
        W, b = arch.layer_views(np.zeros(arch.n_parameters))
        rows, cols = {2: (d2, d1), 3: (M, d2)}[layer]
        corrected = _shape_mismatches(b[layer].shape, (rows,)) + _shape_mismatches(
            W[layer].shape, (rows, cols)
        )
        written = _shape_mismatches(b[1].shape, (rows,)) + _shape_mismatches(
            W[1].shape, (rows, cols)
        )
        return Demonstration(
            f"(d, d_1, d_2, M) = {(d, d1, d2, M)}: b^{layer} has shape {b[layer].shape}, "
            f"W^{layer} {W[layer].shape}; b^1 has {b[1].shape}, W^1 {W[1].shape}",
            corrected,
            written,
        )

    return demo


def _demo_minibatch_indices() -> Demonstration:
    """A fresh set (I^p_1..I^p_B) at every step p, i.i.d. uniform on {1..n}."""
    n, B, epochs = 10, 5, 400
    sampler = Sampler("iid", n, B, np.random.default_rng(0))
    draws = []
    for _ in range(epochs):
        sampler.epoch()
        draws.append(sampler.index_matrix.copy())
    I = np.concatenate(draws)  # row p is (I^p_1, …, I^p_B)
    frequencies = np.bincount(I.ravel(), minlength=n) / I.size
    distinct_rows = len({tuple(row) for row in I})
    uniform_gap = float(np.abs(frequencies - 1 / n).max())
    return Demonstration(
        f"{I.shape[0]} steps of B = {B}: {distinct_rows} distinct index sets; frequencies "
        f"within {uniform_gap:.4f} of 1/n = {1 / n}",
        uniform_gap if distinct_rows > 1 else 1.0,
        None,
        tolerance=0.03,  # 4000 draws: the frequencies' standard deviation is about 0.005
    )


# -- FB §2 ------------------------------------------------------------------------------------


def _demo_activation_index() -> Demonstration:
    """φ_m (subscript: the layer) applied elementwise is what F.2 computes for layer m."""
    model = _network(sizes=(4, 5, 3, 6))
    arch = model.architecture
    X, _ = _sample(model)
    Z, H, _ = reference.forward(arch, model.params.W, model.params.b, X)
    worst = 0.0
    for m in range(1, arch.L):
        h = np.empty_like(Z[m])
        activation_forward(h, Z[m], arch.activation_codes[m])  # (F.2)
        worst = max(worst, float(np.abs(h - reference.PHI[arch.activations[m - 1]](Z[m])).max()))
    return Demonstration("φ_m of layer m, elementwise, against the F.2 kernel", worst, None)


def _demo_softmax_sum_index() -> Demonstration:
    """Read literally, Σ_{j=1}^M e^{z_j} with the free j gives M e^{z_j}: φ_L(z)_j = 1/M."""
    z = np.random.default_rng(3).normal(size=6)
    truth = _softmax(z)
    corrected = np.exp(z) / np.exp(z).sum()  # Σ_ℓ e^{z_ℓ}
    written = np.exp(z) / (z.shape[0] * np.exp(z))  # Σ_{j=1}^M e^{z_j} with j fixed
    # The derivative on l.73 read the same way, against finite differences of softmax:
    numeric = np.diag(central_jacobian(_softmax, z))
    M, e = z.shape[0], np.exp(z)
    written_derivative = (e * M * e - e * e) / e.sum() ** 2
    corrected_derivative = (e * e.sum() - e * e) / e.sum() ** 2
    return Demonstration(
        "softmax and ∂_{z_j} softmax_j with Σ_ℓ (corrected) and with the index j reused",
        float(max(np.abs(corrected - truth).max(), np.abs(corrected_derivative - numeric).max())),
        float(max(np.abs(written - truth).max(), np.abs(written_derivative - numeric).max())),
    )


def _output_gradients():
    """f, 1_Y, the logits z^L and ℓ for one sample of a small softmax network."""
    model = _network()
    arch = model.architecture
    X, y = _sample(model)
    Z, _, F = reference.forward(arch, model.params.W, model.params.b, X)
    zL, f, label = Z[arch.L][0], F[0], int(y[0])
    return model, X, y, zL, f, label


def _demo_gradient_wrt_h_or_z() -> Demonstration:
    """∇ of ℓ = −log h^L_Y: w.r.t. z^L it is f − 1_Y; w.r.t. h^L = f it is −1_Y/f (M.6)."""
    _, _, _, zL, f, label = _output_gradients()
    onehot = reference.onehot(np.array([label]), f.shape[0])[0]
    grad_z = central_jacobian(lambda z: _loss_of_logits(z, label), zL)[0]
    grad_h = central_jacobian(lambda h: -np.log(h[label]), f)[0]
    claimed = f - onehot
    return Demonstration(
        "f − 1_Y against finite differences of ℓ w.r.t. z^L (corrected) and w.r.t. h^L (written)",
        float(np.abs(claimed - grad_z).max()),
        float(np.abs(claimed - grad_h).max()),
    )


def _demo_derivation_phi_index() -> Demonstration:
    """The last line of the ∂_{z_j} ℓ derivation: the j ≠ k term is φ_L(z)_j, not φ_L(z)_k."""
    _, _, _, zL, f, label = _output_gradients()
    M = f.shape[0]
    numeric = central_jacobian(lambda z: _loss_of_logits(z, label), zL)[0]

    def line4(phi_in_second_term: Callable[[int, int], float]) -> np.ndarray:
        out = np.empty(M)
        for j in range(M):
            total = 0.0
            for k in range(M):
                indicator = 1.0 if label == k else 0.0
                total += indicator * ((1 - f[k]) * (j == k) - phi_in_second_term(j, k) * (j != k))
            out[j] = -total
        return out

    written = line4(lambda j, k: f[k])
    corrected = line4(lambda j, k: f[j])
    return Demonstration(
        "−Σ_k 1_{Y=k}{(1 − φ_k)1_{j=k} − φ_? 1_{j≠k}} against finite differences of ℓ",
        float(np.abs(corrected - numeric).max()),
        float(np.abs(written - numeric).max()),
    )


def _demo_weight_gradient_uses_f() -> Demonstration:
    """∂_{W^L_{ij}} ℓ = (f − 1_Y)_i h^{L−1}_j; (ℓ − 1_Y)_i h^{L−1}_j is something else."""
    model = _network()
    arch = model.architecture
    X, y = _sample(model)
    numeric = arch.layer_views(numerical_gradient(model, X, y))[0][arch.L]
    Z, H, F = reference.forward(arch, model.params.W, model.params.b, X)
    delta = np.empty_like(F)
    output_delta(delta, F, y)  # (B.1) f − 1_Y
    loss = float(reference.cross_entropy(Z[arch.L], y, arch.n_classes)[0])
    h = H[arch.L - 1][0]
    corrected = np.outer(delta[0], h)
    written = np.outer(loss - reference.onehot(y, arch.n_classes)[0], h)
    return Demonstration(
        "∇W^L by finite differences against (f − 1_Y) hᵀ (corrected) and (ℓ − 1_Y) hᵀ (written)",
        float(np.abs(corrected - numeric).max()),
        float(np.abs(written - numeric).max()),
    )


def _demo_mu_is_theta() -> Demonstration:
    """z^{m+1}_θ = b^{m+1} + W^{m+1} h^m_θ with θ's own W, b: what F.1 computes."""
    model = _network()
    arch = model.architecture
    X, _ = _sample(model)
    Z, H, _ = reference.forward(arch, model.params.W, model.params.b, X)
    worst = 0.0
    for m in range(1, arch.L):
        z = np.empty_like(Z[m + 1])
        affine_forward(z, model.params.W[m + 1], model.params.b[m + 1], H[m])  # (F.1)
        worst = max(worst, float(np.abs(z - Z[m + 1]).max()))
    return Demonstration(
        "z^{m+1} = b^{m+1} + W^{m+1} h^m (θ's parameters) against F.1", worst, None
    )


def _demo_recursion_start() -> Demonstration:
    """∇_{z^L} ℓ = f − 1_Y (B.1), not ℓ − 1_Y (ℓ is the scalar loss)."""
    _, _, y, zL, f, label = _output_gradients()
    delta = np.empty((1, f.shape[0]))
    output_delta(delta, f[None, :], y)  # (B.1)
    numeric = central_jacobian(lambda z: _loss_of_logits(z, label), zL)[0]
    loss = _loss_of_logits(zL, label)
    written = loss - reference.onehot(y, f.shape[0])[0]
    return Demonstration(
        "∇_{z^L} ℓ by finite differences against f − 1_Y (B.1 kernel) and against ℓ − 1_Y",
        float(np.abs(delta[0] - numeric).max()),
        float(np.abs(written - numeric).max()),
    )


def _demo_bias_gradient_scalar() -> Demonstration:
    """∂_{b^m_i} ℓ = δ^m_i: a number per i; the loss ℓ_θ(X,Y) has no component i."""
    model = _network()
    X, y = _sample(model)
    _, grads = model.loss_and_gradient(X, y)
    _, b = model.architecture.layer_views(numerical_gradient(model, X, y))
    worst = max(float(np.abs(grads.b[m] - b[m]).max()) for m in range(1, model.architecture.L + 1))
    return Demonstration("∇b^m = δ^m (B.2) against finite differences, every layer", worst, None)


# -- MMiDS -----------------------------------------------------------------------------------


def _demo_rows_of_W() -> Demonstration:
    """𝒲_i has n_{i+1} rows w_i^{(1)}..w_i^{(n_{i+1})}, so r_i = n_{i+1}(n_i + 1)."""
    net = jac.to_mmids(_network().params)
    mismatches = 0.0
    for i in range(1, net.L + 1):
        n_i, n_next = net.sizes[i - 1], net.sizes[i]
        mismatches += _shape_mismatches(net.weights[i].shape, (n_next, n_i + 1))
    r = [net.weights[i].size for i in range(1, net.L + 1)]
    return Demonstration(
        f"sizes n_i = {net.sizes}: 𝒲_i shapes {[net.weights[i].shape for i in range(1, net.L + 1)]}"
        f", r_i = {r}",
        mismatches + float(net.flat().shape[0] != sum(r)),
        None,
    )


def _mmids_record(sizes=(4, 5, 4), seed=0):
    rng = np.random.default_rng(seed)
    net = jac.MmidsNetwork.sigmoid(sizes, rng, scale=2.0)
    x, label = rng.normal(size=sizes[0]), 1
    y = jac.onehot_vector(label, net.n_classes)
    return net, x, label, y, jac.forward_loop(net, x, y)


def _demo_loss_argument() -> Demonstration:
    """The loss takes z_{L+2} = γ̃(z_{L+1}) ∈ R^K, not z_{L+1} ∈ R^{K−1}."""
    net, _, label, y, rec = _mmids_record()
    L = net.L
    truth = _loss_of_logits(np.append(rec.z[L + 1], 0.0), label)  # (L.1) on (z_{L+1}; 0)
    corrected = -np.sum(y * np.log(rec.z[L + 2]))
    written = -np.sum(y[: rec.z[L + 1].shape[0]] * np.log(rec.z[L + 1]))  # i ≤ K − 1 only
    return Demonstration(
        f"K = {net.n_classes}: z_{{L+1}} has {rec.z[L + 1].shape[0]} entries, z_{{L+2}} has "
        f"{rec.z[L + 2].shape[0]}; −Σ y_i log z_i against L.1",
        float(abs(corrected - truth)),
        float(abs(written - truth)),
    )


def _demo_summary_subscripts() -> Demonstration:
    """MMiDS's z_{i+1} (subscript: the layer) is FB's h^i; FB's superscripts do not mix in."""
    model = _network(head="modified-softmax")
    arch = model.architecture
    X, y = _sample(model)
    Z, H, F = reference.forward(arch, model.params.W, model.params.b, X)
    net = jac.to_mmids(model.params)
    rec = jac.forward_loop(net, X[0], jac.onehot_vector(int(y[0]), arch.n_classes))
    worst = max(float(np.abs(rec.z[i + 1] - H[i][0]).max()) for i in range(arch.L))
    worst = max(worst, float(np.abs(rec.z[arch.L + 1] - Z[arch.L][0]).max()))
    worst = max(worst, float(np.abs(rec.z[arch.L + 2] - F[0]).max()))
    return Demonstration(
        "MMiDS z_{i+1} = FB h^i (i < L), z_{L+1} = z^L, z_{L+2} = f: forward loop vs kernels",
        worst,
        None,
    )


def _demo_p_hadamard() -> Demonstration:
    """p_i = A_iᵀ q_{i+1}: block k is q_{i+1,k} σ′(·) z_i^{;1}; '⊙ q_{i+1}' has the wrong length."""
    net, _, _, y, rec = _mmids_record()
    back = jac.backward_loop(net, rec, y)
    i = 1
    z_ext = np.append(rec.z[i], 1.0)  # z_i^{;1}
    slopes = reference.PHI_PRIME["sigmoid"](net.weights[i] @ z_ext)  # σ′((w_i^{(k)})ᵀ z_i^{;1})
    blocks = np.kron(slopes, z_ext)  # (σ′(·) z_i^{;1}; …): n_{i+1}(n_i + 1) entries
    q = back.q[i + 1]
    corrected = blocks * np.repeat(q, z_ext.shape[0])  # q_{i+1,k} on block k
    # "⊙ q_{i+1}" between lengths n_{i+1}(n_i+1) and n_{i+1} has no meaning; the nearest
    # reading that runs, cycling q_{i+1} along the vector, gives a different vector:
    written = blocks * np.resize(q, blocks.shape[0])
    return Demonstration(
        f"lengths {blocks.shape[0]} and {q.shape[0]}: block-wise q_{{i+1,k}} against "
        "A_iᵀ q_{i+1} (M.8), and q_{i+1} cycled",
        float(np.abs(corrected - back.p[i]).max()),
        float(np.abs(written - back.p[i]).max()),
    )


def _demo_gradient_order() -> Demonstration:
    """∇f lines up with w = (w_1; …; w_L) as (p_1; …; p_L)."""
    net, x, label, y, rec = _mmids_record()
    back = jac.backward_loop(net, rec, y)
    numeric = central_jacobian(lambda w: jac.loss_only(net.with_flat(w), x, label), net.flat())[0]
    corrected = np.concatenate(back.p[1:])
    written = np.concatenate(back.p[:0:-1])
    return Demonstration(
        "(p_1; …; p_L) and (p_L; …; p_1) against finite differences of f_{x,y}(w)",
        float(np.abs(corrected - numeric).max()),
        float(np.abs(written - numeric).max()),
    )


def _demo_flux_softmax() -> Demonstration:
    """crossentropy(m(x), y) = −Σ y log m(x) needs probabilities: without softmax it gets
    logits, some negative (log → NaN)."""
    rng = np.random.default_rng(0)
    model = MLP.create(784, [32], 10, dtype="float64", rng=rng)  # Dense(784,32,σ) → Dense(32,10)
    X = rng.uniform(0, 1, size=(64, 784))
    y = rng.integers(0, 10, size=64)
    arch = model.architecture
    Z, _, F = reference.forward(arch, model.params.W, model.params.b, X)
    rows = np.arange(64)
    with np.errstate(invalid="ignore"):
        written = -np.log(Z[arch.L][rows, y])  # crossentropy on the raw Dense(32, 10) output
    corrected = -np.log(F[rows, y])
    losses = np.array([_loss_of_logits(Z[arch.L][s], int(y[s])) for s in range(64)])  # L.1
    nan_fraction = float(np.isnan(written).mean())
    finite = ~np.isnan(written)
    written_error = float(np.abs(written[finite] - losses[finite]).max()) if finite.any() else 0.0
    return Demonstration(
        f"64 inputs: crossentropy of the logits is NaN for {nan_fraction:.0%}, "
        f"off by up to {written_error:.2f} elsewhere; with softmax it equals L.1",
        float(np.abs(corrected - losses).max()),
        max(nan_fraction, written_error),
    )


def _demo_sigmoid_last_layer() -> Demonstration:
    """With σ on layer L (MMiDS §7.1–7.2) the logits of γ̃ lie in (0, 1): no class can get
    probability above e/(e + K − 1) (0.23 for K = 10), so the loss stays above 1.46; the §7.3
    code (and numbamlp) has an affine last layer."""
    K = 10
    bound = np.e / (np.e + K - 1)
    rng = np.random.default_rng(0)
    net = jac.MmidsNetwork.sigmoid((20, 32, K - 1), rng, scale=30.0)  # huge weights: saturated σ
    best = 0.0
    for _ in range(200):
        rec = jac.forward_loop(net, rng.normal(size=20) * 5, jac.onehot_vector(0, K))
        best = max(best, float(rec.z[net.L + 2].max()))
    affine = jac.MmidsNetwork(net.weights, (-1, net.codes[1], 5), "modified-softmax")
    affine_best = 0.0
    for _ in range(200):
        rec = jac.forward_loop(affine, rng.normal(size=20) * 5, jac.onehot_vector(0, K))
        affine_best = max(affine_best, float(rec.z[affine.L + 2].max()))
    return Demonstration(
        f"largest probability over 200 inputs: σ last layer {best:.4f} ≤ e/(e+K−1) = "
        f"{bound:.4f} (loss ≥ {-np.log(bound):.2f}); affine last layer {affine_best:.4f}",
        float(max(0.0, 0.9 - affine_best)),  # the affine head reaches confident predictions
        float(max(0.0, 0.9 - best)),  # the σ head cannot
    )


ERRATA: list[Erratum] = [
    Erratum(
        "FB1-hidden-argument",
        "typo",
        "FB",
        "§1 Q1",
        19,
        r"h_{\theta}^{1}(x) = \varphi_{1}(z_{\theta}^{1}(X_{i}))",
        "h^1_θ(x) = φ_1(z^1_θ(X_i)), and h^2_θ(x) = φ_2(z^2_θ(X_i)) (l. 23)",
        "h^1_θ(X_i) = φ_1(z^1_θ(X_i)), h^2_θ(X_i) = φ_2(z^2_θ(X_i))",
        "every other layer of Q1 is a function of the sample X_i; x appears nowhere else",
        _demo_hidden_argument,
    ),
    Erratum(
        "FB1-layer2-superscripts",
        "typo",
        "FB",
        "§1 Q1",
        21,
        r"b^{1} \in \mathbb{R}^{d_{2}}, W^{1} \in \mathbb{R}^{d_{2} \times d_{1}}",
        "z^2 = b^2 + W^2 h^1,  b^1 ∈ R^{d_2}, W^1 ∈ R^{d_2×d_1}",
        "b^2 ∈ R^{d_2}, W^2 ∈ R^{d_2×d_1}",
        "the superscripts of layer 1 were copied; b^1 ∈ R^{d_1} (l. 17) cannot also be in R^{d_2}",
        _bias_shapes_demo(2),
    ),
    Erratum(
        "FB1-layer3-superscripts",
        "typo",
        "FB",
        "§1 Q1",
        25,
        r"b^{1} \in \mathbb{R}^{M}, W^{1} \in \mathbb{R}^{M \times d_{2}}",
        "z^3 = b^3 + W^3 h^2,  b^1 ∈ R^M, W^1 ∈ R^{M×d_2}",
        "b^3 ∈ R^M, W^3 ∈ R^{M×d_2}",
        "the same copied superscripts, for the output layer",
        _bias_shapes_demo(3),
    ),
    Erratum(
        "FB1-minibatch-index",
        "typo",
        "FB",
        "§1 Q2",
        35,
        r"(I_i)_{1\leqslant p,1\leqslant i\leqslant B}",
        "(I_i)_{1⩽p, 1⩽i⩽B} are i.i.d. uniform on {1, …, n}",
        "(I^p_i)_{p⩾1, 1⩽i⩽B} are i.i.d. uniform on {1, …, n}",
        "the update uses I^p_i: a fresh set of B indices at every step p (I.1)",
        _demo_minibatch_indices,
    ),
    Erratum(
        "FB2-activation-index",
        "typo",
        "FB",
        "§2",
        51,
        r"activation functions φ^m",
        "activation functions φ^m, 1 ≤ m ≤ L−1",
        "activation functions φ_m, 1 ≤ m ≤ L−1",
        "everywhere else the layer of φ is a subscript (φ_k, φ_m′); superscripts are for b, "
        "W, z, h",
        _demo_activation_index,
    ),
    Erratum(
        "FB2-Q1-summation-index",
        "typo",
        "FB",
        "§2 Q1",
        69,
        r"\frac{\mathrm{e}^{z_j}}{\sum_{j=1}^M \mathrm{e}^{z_j}}",
        "φ_L(z)_j = e^{z_j} / Σ_{j=1}^M e^{z_j}, and "
        "∂_{z_j}φ_L(z)_j = (e^{z_j} Σ_{j=1}^M e^{z_j} − …)/(…)² (l. 73)",
        "φ_L(z)_j = e^{z_j} / Σ_{ℓ=1}^M e^{z_ℓ}, "
        "∂_{z_j}φ_L(z)_j = (e^{z_j} Σ_ℓ e^{z_ℓ} − e^{z_j}e^{z_j}) / (Σ_ℓ e^{z_ℓ})²",
        "the summation index reuses the free index j (the denominator of l. 73 already uses ℓ)",
        _demo_softmax_sum_index,
    ),
    Erratum(
        "FB2-Q2-gradient-wrt-z",
        "typo",
        "FB",
        "§2 Q2",
        85,
        r"\nabla_{h^L} \ell_{\theta}(X, Y) = f_{\theta}(X) - \mathbb{1}_Y",
        "∇_{h^L} ℓ_θ(X, Y) = f_θ(X) − 1_Y",
        "∇_{z^L_θ(X)} ℓ_θ(X, Y) = f_θ(X) − 1_Y  (∇_{h^L} ℓ = −1_Y / f, MMiDS's q_{L+2})",
        "the proof that follows (l. 95) derives the gradient with respect to z^L, not h^L",
        _demo_gradient_wrt_h_or_z,
    ),
    Erratum(
        "FB2-Q2-derivation-index",
        "typo",
        "FB",
        "§2 Q2",
        91,
        r"- \varphi_{L}(z_{\theta}^{L}(X))_{k} \mathbbm{1}_{j\neq k}",
        "−Σ_k 1_{Y=k} {(1 − φ_L(z^L)_k) 1_{j=k} − φ_L(z^L)_k 1_{j≠k}}",
        "−Σ_k 1_{Y=k} {(1 − φ_L(z^L)_k) 1_{j=k} − φ_L(z^L)_j 1_{j≠k}}",
        "dividing −φ_L(z)_j φ_L(z)_k 1_{j≠k} (line 3) by φ_L(z)_k leaves φ_L(z)_j",
        _demo_derivation_phi_index,
    ),
    Erratum(
        "FB2-Q2-weight-gradient-uses-f",
        "typo",
        "FB",
        "§2 Q2",
        99,
        r"(\ell_{\theta}(X,Y) - \mathbbm{1}_Y)_k",
        "∂_{W^L_{i,j}} ℓ = Σ_k (ℓ_θ(X,Y) − 1_Y)_k 1_{i=k} (h^{L−1})_j",
        "∂_{W^L_{i,j}} ℓ = Σ_k (f_θ(X) − 1_Y)_k 1_{i=k} (h^{L−1})_j",
        "∂_{z^L_k} ℓ = (f_θ(X) − 1_Y)_k (l. 95); ℓ_θ(X,Y) is the scalar loss",
        _demo_weight_gradient_uses_f,
    ),
    Erratum(
        "FB2-Q3-mu-for-theta",
        "typo",
        "FB",
        "§2 Q3",
        119,
        r"\nabla_{z_{\mu}^{m}(X)}",
        "∇_{z_μ^m(X)}, and z_μ^{m+1}(X) = b^{m+1} + W^{m+1} h_μ^m(X) (l. 125)",
        "∇_{z_θ^m(X)}, z_θ^{m+1}(X) = b^{m+1} + W^{m+1} h_θ^m(X)",
        "the parameter is θ throughout; μ is defined nowhere",
        _demo_mu_is_theta,
    ),
    Erratum(
        "FB2-Q3-recursion-start",
        "typo",
        "FB",
        "§2 Q3",
        121,
        r"\nabla_{z^L(X)} \ell_{\theta}(X,Y) = \ell_{\theta}(X,Y) - \mathbb{1}_Y",
        "∇_{z^L(X)} ℓ_θ(X,Y) = ℓ_θ(X,Y) − 1_Y",
        "∇_{z_θ^L(X)} ℓ_θ(X,Y) = f_θ(X) − 1_Y  (B.1)",
        "Q2 proved ∇_{z^L} ℓ = f_θ(X) − 1_Y; a scalar minus 1_Y is not a gradient",
        _demo_recursion_start,
    ),
    Erratum(
        "FB2-Q3-bias-stray-index",
        "typo",
        "FB",
        "§2 Q3",
        151,
        r"\partial_{(z_{\theta}^m(X))_i} \ell_{\theta}(X,Y)_i",
        "∂_{b^m_i} ℓ = … = ∂_{(z_θ^m(X))_i} ℓ_θ(X,Y)_i",
        "∂_{b^m_i} ℓ = ∂_{(z_θ^m(X))_i} ℓ_θ(X,Y)  (B.2)",
        "the loss is a scalar: the trailing index i belongs to nothing",
        _demo_bias_gradient_scalar,
    ),
    Erratum(
        "MMiDS71-rows-of-W",
        "typo",
        "MMiDS",
        "§7.1",
        31,
        r"\mathbf{w}^{(n+{i+1})}_i",
        "w_i = (w_i^{(1)}; …; w_i^{(n+{i+1})})",
        "w_i = (w_i^{(1)}; …; w_i^{(n_{i+1})})",
        "𝒲_i has one row w_i^{(k)} per output, k = 1..n_{i+1}, so r_i = n_{i+1}(n_i + 1)",
        _demo_rows_of_W,
    ),
    Erratum(
        "MMiDS71-loss-argument",
        "typo",
        "MMiDS",
        "§7.1",
        55,
        r"\ell_{\mathbf{y}}(\mathbf{z}_{L+1}) = H(\mathbf{y}, \mathbf{z}_{L+1})",
        "ℓ_y(z_{L+1}) = H(y, z_{L+1}) = −Σ_{i=1}^K y_i log z_{L+1,i}",
        "ℓ_y(z_{L+2}) = H(y, z_{L+2}) = −Σ_{i=1}^K y_i log z_{L+2,i},  z_{L+2} = γ̃(z_{L+1})",
        "z_{L+1} has K − 1 entries (the input of γ̃); the loss takes γ̃'s K probabilities, as "
        "§7.2 writes (l. 113)",
        _demo_loss_argument,
    ),
    Erratum(
        "MMiDS72-summary-superscripts",
        "typo",
        "MMiDS",
        "§7.2",
        121,
        r"\mathbf{z}^{i+1} &:= g_i(\mathbf{w}^i;\mathbf{z}^i)",
        "z^{i+1} := g_i(w^i; z^i), J_{g_i}(w^i; z^i); and ℓ_y(z^{L+2}), ∇ℓ_y(z^{L+2}) (l. 127)",
        "z_{i+1} := g_i(w_i; z_i), J_{g_i}(w_i; z_i); ℓ_y(z_{L+2}), ∇ℓ_y(z_{L+2})",
        "MMiDS's layer index is a subscript everywhere else (z_{i+1}, 𝒲_i); MMiDS's z_{i+1} is "
        "FB's h^i, so superscripts invite a clash",
        _demo_summary_subscripts,
    ),
    Erratum(
        "MMiDS72-p-hadamard",
        "typo",
        "MMiDS",
        "§7.2",
        135,
        r"\mathbf{z}_i^{;1} \right) \odot \mathbf{q}_{i+1}",
        "p_i = (σ′((w_i^{(1)})ᵀ z_i^{;1}) z_i^{;1}; …; "
        "σ′((w_i^{(n_{i+1})})ᵀ z_i^{;1}) z_i^{;1}) ⊙ q_{i+1}",
        "p_i = (q_{i+1,1} σ′((w_i^{(1)})ᵀ z_i^{;1}) z_i^{;1}; …; q_{i+1,n_{i+1}} σ′(…) z_i^{;1}), "
        "i.e. the rows of (σ′_⊙(𝒲_i z_i^{;1}) ⊙ q_{i+1})(z_i^{;1})ᵀ stacked",
        "the left factor has n_{i+1}(n_i + 1) entries and q_{i+1} has n_{i+1}: ⊙ needs equal "
        "lengths; q_{i+1,k} multiplies block k (this outer product is FB's B.3, δ hᵀ)",
        _demo_p_hadamard,
    ),
    Erratum(
        "MMiDS72-gradient-order",
        "typo",
        "MMiDS",
        "§7.2",
        138,
        r"(\mathbf{p}_L;\ldots;\mathbf{p}_1)",
        "∇f_{x,y}(w) = (p_L; …; p_1)",
        "∇f_{x,y}(w) = (p_1; …; p_L)  (M.9)",
        "w = (w_1; …; w_L) (l. 49), so the gradient's blocks come in that order; p_L first is "
        "only the order the backward loop produces them",
        _demo_gradient_order,
    ),
    Erratum(
        "MMiDS73-chain-softmax",
        "typo",
        "MMiDS",
        "§7.3 In [4]",
        170,
        "  Dense(32, 10),\nChain(",
        "m = Chain(\n  Dense(28^2, 32, σ),\n  Dense(32, 10),",
        "m = Chain(\n  Dense(28^2, 32, σ),\n  Dense(32, 10),\n  softmax)",
        "the cell lost its last line: it does not parse, and its printed output (l. 171) shows "
        "the softmax; crossentropy(m(x), y) = −Σ y log m(x) needs probabilities",
        _demo_flux_softmax,
    ),
    Erratum(
        "MMiDS7-sigmoid-on-layer-L",
        "inconsistency",
        "MMiDS",
        "§7.1 vs §7.3",
        41,
        r"layer $L$ has $K-1$ outputs",
        "layers 1..L are all σ_⊙(𝒲_i z_i^{;1}); layer L has K − 1 outputs, then γ̃ (§7.1–7.2)",
        "§7.3 trains Dense(32, 10) without σ, then softmax with K outputs; numbamlp does the "
        "same (its last layer is affine; --head modified-softmax gives γ̃ on K − 1 logits)",
        "with σ on layer L the K − 1 logits lie in (0, 1) and no class can be predicted with "
        "probability above e/(e + K − 1)",
        _demo_sigmoid_last_layer,
    ),
]

BY_KEY: dict[str, Erratum] = {e.key: e for e in ERRATA}


def table(errata: list[Erratum] | None = None) -> str:
    """A Markdown table: document, section, line, as written, corrected."""
    rows = [
        "| document | section | line | as written | corrected |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in errata or ERRATA:
        written = e.as_written.replace("\n", " ").replace("|", "\\|")
        corrected = e.corrected.replace("\n", " ").replace("|", "\\|")
        rows.append(f"| {e.document} | {e.section} | {e.line} | {written} | {corrected} |")
    return "\n".join(rows)
