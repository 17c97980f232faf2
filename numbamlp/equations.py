"""The registry of equations numbamlp implements, each under a stable tag.

Every loop that implements an equation carries its tag and index form in a comment, e.g.
``# (B.4) δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · φ′_m(z^m_{s,j})``. Tests check that each
tag cited in the code exists here and that each tag here is implemented somewhere.

Notation is the notes' own: layers k = 1..L, h^0 = x, W^k of shape (d_k, d_{k−1}); i indexes
units of the layer being computed, j units of the layer below, and s the sample of a minibatch.
The notes count from 1, the code from 0.

The derivation of every equation, in index form and in the project's own words, is
docs/derivation.md: each tag has its anchor there, ``doc_link("B.4")`` is
``docs/derivation.md#B.4``, and tests/kernels/test_equations.py checks that the page and this registry
list the same tags.

``source`` cites the section of the course document the equation comes from (the documents are
not part of the repository; docs/derivation.md says what each section contains):
  FB    the exercise sheet "Feed forward neural networks" — §1 warm-up, §2 backpropagation
        (Q1–Q3 each)
  MMiDS S. Roch, Mathematical Methods in Data Science, ch. 7 "Neural networks" — §7.1
        background, §7.2 computing the gradient, §7.3 implementation
Equations marked "standard" are not in the notes (optimizers the notes only name, schedules,
initialisation); their source is the paper or library whose definition is followed. R.1 (weight
decay) and D.1–D.3 (dropout) are extensions of the notes' network; their sources say so.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The page that derives every equation; each tag is an anchor on it.
DERIVATION = "docs/derivation.md"


@dataclass(frozen=True)
class Equation:
    tag: str
    name: str
    formula: str
    source: str

    @property
    def doc(self) -> str:
        """The equation's derivation: ``docs/derivation.md#<tag>`` (relative to the repository)."""
        return f"{DERIVATION}#{self.tag}"


_EQUATIONS = [
    # Forward pass
    Equation(
        "F.1",
        "affine map",
        "z^k_{s,i} = b^k_i + Σ_j W^k_{ij} h^{k−1}_{s,j}",
        "FB §2 (def.), FB §1 Q1",
    ),
    Equation("F.2", "activation", "h^k_{s,i} = φ_k(z^k_{s,i})", "FB §2 (def.), MMiDS §7.1"),
    Equation(
        "F.3",
        "softmax output",
        "f_{s,i} = e^{z^L_{s,i}} / Σ_j e^{z^L_{s,j}}",
        "FB §2 (def. of φ_L)",
    ),
    Equation(
        "F.4",
        "modified softmax γ̃ (K−1 logits, class K is the reference with logit 0)",
        "f_{s,i} = e^{z^L_{s,i}} / (1 + Σ_{j<K} e^{z^L_{s,j}}),  f_{s,K} = 1 / (1 + Σ_{j<K} e^{z^L_{s,j}})",
        "MMiDS §7.1 (layer L+1)",
    ),
    Equation("P.1", "prediction (onecold)", "ŷ_s = argmax_k f_{s,k}", "MMiDS §7.3 (onecold)"),
    Equation(
        "J.1",
        "softmax Jacobian",
        "∂_{z_i} softmax(z)_j = softmax(z)_i (1_{i=j} − softmax(z)_j)",
        "FB §2 Q1",
    ),
    Equation(
        "J.2",
        "modified softmax Jacobian 𝕮_K = J_γ̃ (K rows, K−1 columns)",
        "𝕮_K[z]_{i,j} = ∂γ̃(z)_i/∂z_j = γ̃(z)_i (1_{i=j} − γ̃(z)_j),  1 ≤ i ≤ K, 1 ≤ j ≤ K−1",
        "MMiDS §7.2 (B_{L+1})",
    ),
    # Loss
    Equation(
        "L.1",
        "cross-entropy",
        "ℓ_s = −Σ_k 1_{Y_s=k} log f_{s,k} = log Σ_k e^{z_{s,k}} − z_{s,Y_s}",
        "FB §2 Q2, MMiDS §7.1",
    ),
    Equation("S.1", "minibatch mean", "ℓ = (1/B) Σ_s ℓ_s,  ∇θ ℓ = (1/B) Σ_s ∇θ ℓ_s", "FB §1 Q2"),
    # Regularisation (an extension: not in the notes)
    Equation(
        "R.1",
        "L2 weight decay (coupled: the penalty's gradient is added to ∇ℓ before any update)",
        "ℓ_λ(θ) = ℓ(θ) + (λ/2) Σ_m Σ_{i,j} (W^m_{ij})²,  "
        "∂ℓ_λ/∂W^m_{ij} = (1/B) Σ_s δ^m_{s,i} h^{m−1}_{s,j} + λ W^m_{ij},  "
        "∂ℓ_λ/∂b^m_i = ∂ℓ/∂b^m_i  (biases not decayed)",
        "not in the notes — an extension: FB §1 Q2's objective ℓ plus an L2 penalty on the "
        "weights (biases not decayed, as scikit-learn's alpha and Keras's kernel_regularizer; "
        "coupled, as PyTorch's Adam(weight_decay=λ), not AdamW — PyTorch's weight_decay also "
        "decays the biases unless parameter groups leave them out)",
    ),
    # Dropout (an extension: not in the notes)
    Equation(
        "D.1",
        "dropout mask, a pure function of five integers (Philox4x32-10)",
        "r^m_{s,j} = 1[u(seed, p, i_s, m, j) ≥ p_m],  u = word (j mod 4) of "
        "Philox4x32-10(counter (p, i_s, m, ⌊j/4⌋), key (seed mod 2^32, ⌊seed/2^32⌋)) / 2^32",
        "standard (not in the notes: an extension of FB §2's network): Srivastava et al., "
        "JMLR 15 (2014); the generator Salmon et al., SC'11 (Random123)",
    ),
    Equation(
        "D.2",
        "inverted dropout on hidden layer m (training only; the layer above reads h̃^m)",
        "h̃^m_{s,j} = h^m_{s,j} · r^m_{s,j} / (1 − p_m)",
        "standard (not in the notes: an extension of FB §2's F.2): inverted dropout, as "
        "PyTorch's and Keras's Dropout",
    ),
    Equation(
        "D.3",
        "the delta recursion through a dropped layer",
        "δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · r^m_{s,j} / (1 − p_m) · φ′_m(z^m_{s,j})",
        "standard (not in the notes): FB §2 Q3's B.4 through D.2",
    ),
    # Regression head and loss (not in the notes: FB §2's network with φ_L the identity)
    Equation(
        "F.5",
        "identity output (regression: one unit per target)",
        "f_{s,i} = z^L_{s,i}",
        "standard (FB §2 with φ_L = identity; scikit-learn's MLPRegressor)",
    ),
    Equation(
        "L.2",
        "squared error",
        "ℓ_s = ½ Σ_i (f_{s,i} − y_{s,i})²",
        "standard (the Gaussian negative log-likelihood up to constants; scikit-learn's "
        "squared_loss)",
    ),
    Equation(
        "S.2",
        "weighted minibatch mean (sample weights w_s ≥ 0)",
        "ℓ = Σ_s w_s ℓ_s / Σ_s w_s,  ∇θ ℓ = Σ_s w_s ∇θ ℓ_s / Σ_s w_s;  computed as "
        "ω_s = B w_s / Σ_{s′} w_{s′}, ℓ_s ← ω_s ℓ_s, δ^L_s ← ω_s δ^L_s, then S.1",
        "standard (FB §1 Q2's objective with weighted observations; scikit-learn's sample_weight)",
    ),
    Equation(
        "C.1",
        "balanced class weights",
        "w_s = n / (M · n_{Y_s}),  n_k = #{r : Y_r = k}",
        "standard (scikit-learn's class_weight='balanced')",
    ),
    # Backward pass
    Equation(
        "B.1", "output delta", "δ^L_{s,i} = ∂ℓ_s/∂z^L_{s,i} = f_{s,i} − 1_{Y_s=i}", "FB §2 Q2"
    ),
    Equation(
        "B.5",
        "output delta of the squared error",
        "δ^L_{s,i} = ∂ℓ_s/∂z^L_{s,i} = f_{s,i} − y_{s,i}",
        "standard (FB §2 Q2's computation with L.2 in place of L.1)",
    ),
    Equation("B.2", "bias gradient", "∂ℓ_s/∂b^m_i = δ^m_{s,i}", "FB §2 Q2 (m=L), Q3"),
    Equation(
        "B.3", "weight gradient", "∂ℓ_s/∂W^m_{ij} = δ^m_{s,i} h^{m−1}_{s,j}", "FB §2 Q2 (m=L), Q3"
    ),
    Equation(
        "B.4",
        "delta recursion",
        "δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · φ′_m(z^m_{s,j})",
        "FB §2 Q3",
    ),
    # The Jacobian (vector–Jacobian product) view of MMiDS §7.2, one sample (course.jacobian)
    Equation(
        "M.1",
        "MMiDS parameter layout (bias as the last column, rows stacked)",
        "𝒲_i = [W^i | b^i] ∈ R^{n_{i+1}×(n_i+1)},  w_i = (w_i^{(1)}; …; w_i^{(n_{i+1})}), w_i^{(k)} = row k of 𝒲_i",
        "MMiDS §7.1 (defined), §7.2 (used)",
    ),
    Equation(
        "M.2",
        "layer g_i",
        "z_{i+1,k} = φ(Σ_{j=1}^{n_i} w^{(k)}_{i,j} z_{i,j} + w^{(k)}_{i,n_i+1}),  i.e. z_{i+1} = φ_⊙(𝒲_i z_i^{;1})",
        "MMiDS §7.1, §7.2 (φ = σ there)",
    ),
    Equation(
        "M.3",
        "weight Jacobian A_i = Ã_{n_i,n_{i+1}}[w_i; z_i]",
        "(A_i)_{k,(k′,j)} = σ′((w_i^{(k)})ᵀ z_i^{;1}) 1_{k=k′} (z_i^{;1})_j",
        "MMiDS §7.2",
    ),
    Equation(
        "M.4",
        "input Jacobian B_i = B̃_{n_i,n_{i+1}}[w_i; z_i]",
        "(B_i)_{k,j} = σ′((w_i^{(k)})ᵀ z_i^{;1}) w^{(k)}_{i,j},  j ≤ n_i",
        "MMiDS §7.2",
    ),
    Equation(
        "M.5",
        "loss on the output probabilities",
        "z_{L+3} = ℓ_y(z_{L+2}) = −Σ_{i=1}^K y_i log z_{L+2,i}",
        "MMiDS §7.2",
    ),
    Equation(
        "M.6",
        "gradient of the loss at the output",
        "q_{L+2} = ∇ℓ_y(z_{L+2}) = [−y_i / z_{L+2,i}]_{i=1}^K",
        "MMiDS §7.2",
    ),
    Equation(
        "M.7",
        "backward step through the inputs",
        "q_i = B_iᵀ q_{i+1}: q_{i,j} = Σ_k (B_i)_{k,j} q_{i+1,k}  (i = L+1, L, …, 1)",
        "MMiDS §7.2",
    ),
    Equation(
        "M.8",
        "backward step to the parameters",
        "p_i = A_iᵀ q_{i+1}: p_{i,c} = Σ_k (A_i)_{k,c} q_{i+1,k}",
        "MMiDS §7.2",
    ),
    Equation(
        "M.9",
        "gradient assembly",
        "∇f_{x,y}(w) = (p_1; …; p_L), in the order of w = (w_1; …; w_L)",
        "MMiDS §7.2",
    ),
    # Preprocessing (not in the notes: the notes' MNIST pixels are already in [0, 1])
    Equation(
        "Z.1",
        "input standardisation (over the n training rows; σ_j := 1 for a constant feature)",
        "x̃_{s,j} = (x_{s,j} − μ_j)/σ_j,  μ_j = (1/n) Σ_r x_{r,j},  "
        "σ_j = √((1/n) Σ_r (x_{r,j} − μ_j)²)",
        "standard (scikit-learn's StandardScaler)",
    ),
    Equation(
        "Z.2",
        "target standardisation (regression) and its inverse at prediction",
        "ỹ_{s,i} = (y_{s,i} − μ^y_i)/σ^y_i,  ŷ_{s,i} = μ^y_i + σ^y_i f_{s,i}",
        "standard (scikit-learn's TransformedTargetRegressor with a StandardScaler)",
    ),
    # Metrics (evaluation only)
    Equation(
        "E.1",
        "mean squared error (averaged over the T targets)",
        "MSE = (1/(nT)) Σ_s Σ_i (ŷ_{s,i} − y_{s,i})²",
        "standard (scikit-learn's mean_squared_error)",
    ),
    Equation(
        "E.2",
        "mean absolute error (averaged over the T targets)",
        "MAE = (1/(nT)) Σ_s Σ_i |ŷ_{s,i} − y_{s,i}|",
        "standard (scikit-learn's mean_absolute_error)",
    ),
    Equation(
        "E.3",
        "coefficient of determination (averaged over the T targets)",
        "R² = (1/T) Σ_i (1 − Σ_s (y_{s,i} − ŷ_{s,i})² / Σ_s (y_{s,i} − ȳ_i)²)",
        "standard (scikit-learn's r2_score, uniform average)",
    ),
    Equation(
        "E.4",
        "per-class precision, recall and F1 (0 where a denominator is 0)",
        "P_k = C_{kk} / Σ_a C_{ak},  R_k = C_{kk} / Σ_b C_{kb},  F1_k = 2 P_k R_k / (P_k + R_k)",
        "standard (scikit-learn's precision_recall_fscore_support, zero_division=0)",
    ),
    # Activations φ and φ′
    Equation("A.1", "sigmoid", "σ(t) = 1/(1+e^{−t}),  σ′(t) = σ(t)(1−σ(t))", "MMiDS §7.1"),
    Equation("A.2", "tanh", "tanh(t),  tanh′(t) = 1 − tanh²(t)", "standard (FB §2: any φ)"),
    Equation("A.3", "relu", "max(t, 0),  1_{t>0}", "standard (FB §2: any φ)"),
    Equation("A.4", "leaky relu", "t if t>0 else αt,  1 if t>0 else α  (α = 0.01)", "standard"),
    Equation("A.5", "softplus", "log(1+e^t),  σ(t)", "standard (FB §2: any φ)"),
    Equation("A.6", "identity", "t,  1", "standard (FB §2: any φ)"),
    # Training: sampling, step sizes, updates
    Equation("I.1", "i.i.d. minibatch", "I^p_s ~ Uniform{1..n} i.i.d., s = 1..B", "FB §1 Q2"),
    Equation(
        "I.2",
        "shuffled epochs",
        "I^p = the p-th block of B in a fresh permutation of 1..n",
        "standard, MMiDS §7.3 (DataLoader shuffle=true)",
    ),
    Equation("U.1", "SGD", "θ_p = θ_{p−1} − γ_p ∇ℓ(θ_{p−1})", "FB §1 Q2"),
    Equation(
        "U.2", "momentum", "v_p = μ v_{p−1} + g_p,  θ_p = θ_{p−1} − γ_p v_p", "standard (Polyak)"
    ),
    Equation(
        "U.3",
        "Adagrad",
        "G_p = G_{p−1} + g_p²,  θ_p = θ_{p−1} − γ_p g_p / (√G_p + ε)",
        "standard (Duchi 2011)",
    ),
    Equation(
        "U.4",
        "Adadelta",
        "E_p = ρE_{p−1} + (1−ρ)g_p²,  Δ_p = −√(D_{p−1}+ε)/√(E_p+ε) g_p,  "
        "D_p = ρD_{p−1} + (1−ρ)Δ_p²,  θ_p = θ_{p−1} + γ_p Δ_p",
        "standard (Zeiler 2012)",
    ),
    Equation(
        "U.5",
        "RMSprop",
        "E_p = ρE_{p−1} + (1−ρ)g_p²,  θ_p = θ_{p−1} − γ_p g_p / (√E_p + ε)",
        "standard (Hinton 2012)",
    ),
    Equation(
        "U.6",
        "Adam",
        "m_p = β₁m_{p−1} + (1−β₁)g_p,  v_p = β₂v_{p−1} + (1−β₂)g_p²,  "
        "θ_p = θ_{p−1} − γ_p (m_p/(1−β₁^p)) / (√(v_p/(1−β₂^p)) + ε)",
        "standard (Kingma & Ba 2015), MMiDS §7.3 ADAM()",
    ),
    Equation("G.1", "constant step", "γ_p = γ_0", "FB §1 Q2"),
    Equation("G.2", "step decay", "γ_p = γ_0 · r^{⌊(p−1)/P⌋}", "standard"),
    Equation("G.3", "inverse time", "γ_p = γ_0 / (1 + (p−1)/τ)", "standard (Robbins–Monro)"),
    Equation(
        "G.4",
        "cosine",
        "γ_p = γ_min + (γ_0 − γ_min)(1 + cos(π (p−1)/T))/2",
        "standard (Loshchilov 2017)",
    ),
    Equation(
        "N.1",
        "Glorot-uniform initialisation",
        "W^k_{ij} ~ U(−a, a), a = √(6/(d_k + d_{k−1})),  b^k = 0",
        "standard (Glorot 2010), Flux Dense default",
    ),
]

EQUATIONS: dict[str, Equation] = {eq.tag: eq for eq in _EQUATIONS}


def doc_link(tag: str) -> str:
    """Where the equation is derived: ``docs/derivation.md#<tag>``; KeyError for unknown tags."""
    return EQUATIONS[tag].doc


def describe(tag: str) -> str:
    """One line: tag, name, index form and source."""
    eq = EQUATIONS[tag]
    return f"({eq.tag}) {eq.name}: {eq.formula}   [{eq.source}]"
