"""MMiDS §7.2: the gradient as a chain of explicit Jacobians (the vector–Jacobian view).

This is the teaching path, not the training path. MMiDS writes layer i as
g_i(w_i; z_i) = σ_⊙(𝒲_i z_i^{;1}) with z_i^{;1} = (z_i; 1), so the bias is the LAST column of
𝒲_i, and w_i = (w_i^{(1)}; …; w_i^{(n_{i+1})}) stacks the rows of 𝒲_i (row-wise flattening).
The forward loop stores z_{i+1} and the Jacobians (A_i  B_i) = J_{g_i}(w_i; z_i); then
γ̃ (or softmax) and the loss; the backward loop multiplies by the transposed Jacobians:
q_{L+1} = B_{L+1}ᵀ q_{L+2}, and for i = L..1, p_i = A_iᵀ q_{i+1}, q_i = B_iᵀ q_{i+1}.

Numbering is the notes': layers i = 1..L (lists hold None at index 0), z_1 = x,
n_i = len(z_i), n_{L+1} = K − 1 for γ̃. One sample at a time, float64.

Where this differs from MMiDS on purpose:
* MMiDS puts σ on every layer, including layer L. numbamlp's networks (and the Flux model of
  MMiDS §7.3, ``Dense(32, 10)``) have no activation on the last layer, so each layer carries
  its own φ_i (an activation code); ``MmidsNetwork.sigmoid`` builds MMiDS's all-σ network.
* Besides γ̃ (``modified-softmax``, B_{L+1} = 𝕮_K) the ``softmax`` head of FB §2 is allowed,
  with B_{L+1} = J_softmax (J.1), so any numbamlp network converts.
* ∇f is returned in w's own order (p_1; …; p_L); MMiDS writes (p_L; …; p_1), the order the
  backward loop produces the blocks (see course.errata).

The kernels form every Jacobian explicitly, as dense matrices, because showing them is the
point; numbamlp's δ recursion (B.1–B.4) computes the same products without ever forming one.
They are serial njit loops: a single sample's Jacobians are too small to share among threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from numbamlp.errors import NumbamlpError
from numbamlp.kernels._jit import serial
from numbamlp.kernels.activations import CODES, IDENTITY, SIGMOID, phi, phi_prime
from numbamlp.kernels.backward import softmax_jacobian
from numbamlp.kernels.forward import modified_softmax_forward, softmax_forward
from numbamlp.model.network import Architecture, Parameters

# --------------------------------------------------------------------------------------------
# The parameter layout: 𝒲_i with the bias as the last column, w_i its rows stacked.


@dataclass
class MmidsNetwork:
    """Layers g_i(w_i; z_i) = φ_i(𝒲_i z_i^{;1}), i = 1..L, then the head (γ̃ or softmax).

    ``weights[i]`` is 𝒲_i of shape (n_{i+1}, n_i + 1); ``codes[i]`` the activation code of φ_i
    (σ for every layer in MMiDS). Index 0 of both lists is None: there is no layer 0.
    """

    weights: list
    codes: tuple[int, ...]
    head: str = "modified-softmax"

    def __post_init__(self) -> None:
        if self.head not in ("softmax", "modified-softmax"):
            raise NumbamlpError(f"unknown head {self.head!r}")
        for i in range(2, self.L + 1):
            if self.weights[i].shape[1] != self.weights[i - 1].shape[0] + 1:
                raise NumbamlpError(
                    f"𝒲_{i} has {self.weights[i].shape[1]} columns, layer {i - 1} gives "
                    f"{self.weights[i - 1].shape[0]} outputs (+1 for the bias)"
                )

    @property
    def L(self) -> int:
        return len(self.weights) - 1

    @property
    def sizes(self) -> tuple[int, ...]:
        """n_1, …, n_{L+1} (n_1 = d, the input width)."""
        return (
            self.weights[1].shape[1] - 1,
            *(self.weights[i].shape[0] for i in range(1, self.L + 1)),
        )

    @property
    def n_classes(self) -> int:
        """K: γ̃ turns n_{L+1} = K − 1 logits into K probabilities; softmax keeps the count."""
        return self.sizes[-1] + (1 if self.head == "modified-softmax" else 0)

    @classmethod
    def sigmoid(
        cls, sizes: Sequence[int], rng: np.random.Generator, scale: float = 1.0
    ) -> MmidsNetwork:
        """MMiDS's network: σ on every layer, γ̃ head; sizes = (n_1, …, n_{L+1} = K − 1).

        Entries of 𝒲_i are drawn from N(0, scale²/(n_i + 1)).
        """
        weights: list = [None]
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            weights.append(rng.normal(0.0, scale / np.sqrt(n_in + 1), size=(n_out, n_in + 1)))
        return cls(weights, (-1, *([SIGMOID] * (len(sizes) - 1))), "modified-softmax")

    def flat(self) -> np.ndarray:
        """w = (w_1; …; w_L), each w_i the rows of 𝒲_i stacked (M.1)."""
        return np.concatenate([self.weights[i].reshape(-1) for i in range(1, self.L + 1)])

    def with_flat(self, w: np.ndarray) -> MmidsNetwork:
        """The same architecture with parameters w = (w_1; …; w_L) (M.1)."""
        weights: list = [None]
        offset = 0
        for i in range(1, self.L + 1):
            rows, cols = self.weights[i].shape
            weights.append(np.array(w[offset : offset + rows * cols]).reshape(rows, cols))
            offset += rows * cols
        if offset != w.shape[0]:
            raise NumbamlpError(f"w has {w.shape[0]} entries, the network needs {offset}")
        return MmidsNetwork(weights, self.codes, self.head)


# (M.1) 𝒲_i = [W^i | b^i] (bias last), w_i = (w_i^{(1)}; …; w_i^{(n_{i+1})}), w_i^{(k)} = row k
def to_mmids(params: Parameters) -> MmidsNetwork:
    """numbamlp's θ = (b^1, W^1, …, b^L, W^L) as MMiDS's 𝒲_1..𝒲_L, in float64.

    Layer i of MMiDS is layer k = i of FB: 𝒲_i = [W^i | b^i]; φ_i is the hidden activation for
    i < L and the identity for i = L (numbamlp's last layer is affine; the head follows).
    """
    arch = params.architecture
    weights: list = [None]
    for k in range(1, arch.L + 1):
        weights.append(np.hstack([params.W[k], params.b[k][:, None]]).astype(np.float64))
    codes = (-1, *(CODES[a] for a in arch.activations), IDENTITY)
    return MmidsNetwork(weights, codes, arch.head)


# (M.1) the inverse: W^i = 𝒲_i[:, :n_i], b^i = 𝒲_i[:, n_i]
def from_mmids(net: MmidsNetwork, dtype: str = "float64") -> Parameters:
    """MMiDS's 𝒲_1..𝒲_L as numbamlp Parameters (the last layer's φ must be the identity)."""
    if net.codes[net.L] != IDENTITY:
        raise NumbamlpError(
            "numbamlp's last layer is affine: convert a network whose φ_L is the identity"
        )
    names = {code: name for name, code in CODES.items()}
    arch = Architecture(net.sizes, tuple(names[c] for c in net.codes[1 : net.L]), net.head)
    params = Parameters.zeros(arch, dtype)
    for k in range(1, net.L + 1):
        params.W[k][...] = net.weights[k][:, :-1]
        params.b[k][...] = net.weights[k][:, -1]
    return params


# --------------------------------------------------------------------------------------------
# One equation per kernel. t_i = 𝒲_i z_i^{;1} (the pre-activation) is kept from the forward
# step so the Jacobians need not recompute it.


@serial
def layer_forward(z_next, t, Wc, z, code):
    """(M.2) z_{i+1} = g_i(w_i; z_i) = φ_⊙(𝒲_i z_i^{;1}); also stores t = 𝒲_i z_i^{;1}."""
    n_out, n_in_plus_1 = Wc.shape
    n_in = n_in_plus_1 - 1
    for k in range(n_out):
        # (M.2) z_{i+1,k} = φ(Σ_{j=1}^{n_i} w^{(k)}_{i,j} z_{i,j} + w^{(k)}_{i,n_i+1})
        acc = Wc[k, n_in]
        for j in range(n_in):
            acc += Wc[k, j] * z[j]
        t[k] = acc
        z_next[k] = phi(code, acc)


@serial
def weight_jacobian(A, t, z, code):
    """(M.3) A_i = Ã_{n_i,n_{i+1}}[w_i; z_i], shape (n_{i+1}, n_{i+1}(n_i + 1)).

    Column (k′, j) ↦ k′(n_i + 1) + j, the position of w^{(k′)}_{i,j} in w_i; block k′ is
    σ′((w_i^{(k′)})ᵀ z_i^{;1}) e_{k′} (z_i^{;1})ᵀ, so row k is zero outside block k.
    """
    n_out = t.shape[0]
    n_in = z.shape[0]
    width = n_in + 1
    for k in range(n_out):
        for c in range(A.shape[1]):
            A[k, c] = 0.0
        slope = phi_prime(code, t[k])
        for j in range(width):
            z_ext = z[j] if j < n_in else 1.0  # z_i^{;1} = (z_i; 1)
            # (M.3) (A_i)_{k,(k,j)} = φ′((w_i^{(k)})ᵀ z_i^{;1}) (z_i^{;1})_j, zero for k′ ≠ k
            A[k, k * width + j] = slope * z_ext


@serial
def input_jacobian(Bm, t, Wc, code):
    """(M.4) B_i = B̃_{n_i,n_{i+1}}[w_i; z_i], shape (n_{i+1}, n_i): row k is
    σ′((w_i^{(k)})ᵀ z_i^{;1}) ((w_i^{(k)})^{:n_i})ᵀ — the bias column drops out."""
    n_out, n_in = Bm.shape
    for k in range(n_out):
        slope = phi_prime(code, t[k])
        for j in range(n_in):
            # (M.4) (B_i)_{k,j} = φ′((w_i^{(k)})ᵀ z_i^{;1}) w^{(k)}_{i,j},  j ≤ n_i
            Bm[k, j] = slope * Wc[k, j]


@serial
def modified_softmax_jacobian(C, g):
    """(J.2) 𝕮_K[z] = J_γ̃(z), shape (K, K − 1), from g = γ̃(z) (K entries, F.4).

    ∂γ̃(z)_i/∂z_j = γ̃(z)_i (1_{i=j} − γ̃(z)_j) for i ≤ K, j ≤ K − 1: the softmax Jacobian of
    (z; 0) with the column of the fixed reference logit removed.
    """
    K = g.shape[0]
    for i in range(K):
        for j in range(K - 1):
            # (J.2) 𝕮_K[z]_{i,j} = γ̃(z)_i (1_{i=j} − γ̃(z)_j)
            C[i, j] = g[i] * ((1.0 if i == j else 0.0) - g[j])


@serial
def output_loss(z_out, y):
    """(M.5) z_{L+3} = ℓ_y(z_{L+2}) = −Σ_i y_i log z_{L+2,i} (y one-hot, z_{L+2} probabilities)."""
    total = 0.0
    for i in range(z_out.shape[0]):
        if y[i] != 0.0:  # 0 · log 0 = 0
            # (M.5) z_{L+3} = −Σ_{i=1}^K y_i log z_{L+2,i}
            total -= y[i] * np.log(z_out[i])
    return total


@serial
def output_loss_gradient(q, z_out, y):
    """(M.6) q_{L+2} = ∇ℓ_y(z_{L+2}) = [−y_i / z_{L+2,i}]_{i=1}^K."""
    for i in range(q.shape[0]):
        # (M.6) q_{L+2,i} = −y_i / z_{L+2,i}
        q[i] = -y[i] / z_out[i]


@serial
def input_vjp(q_out, Bm, q_in):
    """(M.7) q_i = B_iᵀ q_{i+1} (and q_{L+1} = B_{L+1}ᵀ q_{L+2})."""
    n_rows, n_cols = Bm.shape
    for j in range(n_cols):
        acc = 0.0
        for k in range(n_rows):
            # (M.7) q_{i,j} = Σ_k (B_i)_{k,j} q_{i+1,k}
            acc += Bm[k, j] * q_in[k]
        q_out[j] = acc


@serial
def weight_vjp(p, A, q_in):
    """(M.8) p_i = A_iᵀ q_{i+1}: the block of ∇f for w_i."""
    n_rows, n_cols = A.shape
    for c in range(n_cols):
        acc = 0.0
        for k in range(n_rows):
            # (M.8) p_{i,c} = Σ_k (A_i)_{k,c} q_{i+1,k}
            acc += A[k, c] * q_in[k]
        p[c] = acc


# --------------------------------------------------------------------------------------------
# The two loops of MMiDS §7.2 (orchestration only: every number comes from a kernel above).


def modified_softmax(z: np.ndarray) -> np.ndarray:
    """(F.4) γ̃(z): K − 1 logits in, K probabilities out (numbamlp's kernel on one sample)."""
    z = np.ascontiguousarray(z, dtype=np.float64)
    out = np.empty((1, z.shape[0] + 1))
    modified_softmax_forward(out, z[None, :])
    return out[0]


def softmax(z: np.ndarray) -> np.ndarray:
    """(F.3) softmax(z) for one sample (numbamlp's kernel)."""
    z = np.ascontiguousarray(z, dtype=np.float64)
    out = np.empty((1, z.shape[0]))
    softmax_forward(out, z[None, :])
    return out[0]


def head_jacobian(head: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z_{L+2}, B_{L+1}): the head's output and its Jacobian J_{g_{L+1}}(z_{L+1}).

    γ̃: 𝕮_K[z] (J.2), shape (K, K − 1). softmax: J.1 gives J[i, j] = ∂_{z_i} softmax(z)_j, the
    transpose of the rows-are-outputs Jacobian; it is symmetric, so it is that Jacobian too.
    """
    if head == "modified-softmax":
        g = modified_softmax(z)
        C = np.empty((g.shape[0], g.shape[0] - 1))
        modified_softmax_jacobian(C, g)  # (J.2)
        return g, C
    g = softmax(z)
    J = np.empty((g.shape[0], g.shape[0]))
    softmax_jacobian(J, g)  # (J.1)
    return g, J


@dataclass
class ForwardRecord:
    """What the forward loop keeps: z_1..z_{L+2}, A_1..A_L, B_1..B_{L+1}, and z_{L+3}."""

    z: list = field(default_factory=list)  # z[i] = z_i, i = 1..L+2 (z[0] is None)
    A: list = field(default_factory=list)  # A[i], i = 1..L
    B: list = field(default_factory=list)  # B[i], i = 1..L+1
    loss: float = 0.0  # z_{L+3}


def onehot_vector(label: int, n_classes: int) -> np.ndarray:
    """y: the one-hot vector of a class index 0..K−1."""
    y = np.zeros(n_classes)
    y[label] = 1.0
    return y


def forward_loop(net: MmidsNetwork, x: np.ndarray, y: np.ndarray) -> ForwardRecord:
    """Initialisation z_1 := x; for i = 1..L: z_{i+1} (M.2), (A_i  B_i) (M.3, M.4); then
    z_{L+2} = γ̃(z_{L+1}) with B_{L+1} = 𝕮_K (J.2), and the loss z_{L+3} (M.5)."""
    rec = ForwardRecord(z=[None, np.ascontiguousarray(x, dtype=np.float64)], A=[None], B=[None])
    for i in range(1, net.L + 1):
        Wc, z = net.weights[i], rec.z[i]
        n_out, n_in = Wc.shape[0], z.shape[0]
        z_next, t = np.empty(n_out), np.empty(n_out)
        A, Bm = np.empty((n_out, n_out * (n_in + 1))), np.empty((n_out, n_in))
        layer_forward(z_next, t, Wc, z, net.codes[i])  # (M.2)
        weight_jacobian(A, t, z, net.codes[i])  # (M.3)
        input_jacobian(Bm, t, Wc, net.codes[i])  # (M.4)
        rec.z.append(z_next)
        rec.A.append(A)
        rec.B.append(Bm)
    z_out, B_head = head_jacobian(net.head, rec.z[net.L + 1])  # (F.4) and (J.2), or (F.3), (J.1)
    rec.z.append(z_out)
    rec.B.append(B_head)
    rec.loss = output_loss(z_out, np.asarray(y, dtype=np.float64))  # (M.5)
    return rec


@dataclass
class BackwardRecord:
    """q_1..q_{L+2} and p_1..p_L of the backward loop (index 0 unused)."""

    q: list
    p: list


def backward_loop(net: MmidsNetwork, rec: ForwardRecord, y: np.ndarray) -> BackwardRecord:
    """q_{L+2} (M.6); q_{L+1} = B_{L+1}ᵀ q_{L+2}; for i = L..1: p_i = A_iᵀ q_{i+1} (M.8),
    q_i = B_iᵀ q_{i+1} (M.7)."""
    L = net.L
    q: list = [None] * (L + 3)
    p: list = [None] * (L + 1)
    q[L + 2] = np.empty(rec.z[L + 2].shape[0])
    output_loss_gradient(q[L + 2], rec.z[L + 2], np.asarray(y, dtype=np.float64))  # (M.6)
    q[L + 1] = np.empty(rec.B[L + 1].shape[1])
    input_vjp(q[L + 1], rec.B[L + 1], q[L + 2])  # (M.7) q_{L+1} = B_{L+1}ᵀ q_{L+2}
    for i in range(L, 0, -1):
        p[i] = np.empty(rec.A[i].shape[1])
        weight_vjp(p[i], rec.A[i], q[i + 1])  # (M.8)
        q[i] = np.empty(rec.B[i].shape[1])
        input_vjp(q[i], rec.B[i], q[i + 1])  # (M.7)
    return BackwardRecord(q, p)


# (M.9) ∇f_{x,y}(w) = (p_1; …; p_L), in the order of w = (w_1; …; w_L)
def gradient_vector(back: BackwardRecord) -> np.ndarray:
    """∇f_{x,y}(w): the blocks p_i stacked in w's order (MMiDS prints them as (p_L; …; p_1))."""
    return np.concatenate(back.p[1:])


def loss_and_gradient(net: MmidsNetwork, x: np.ndarray, label: int) -> tuple[float, np.ndarray]:
    """f_{x,y}(w) and ∇f_{x,y}(w) for one sample with class index ``label`` (0..K−1)."""
    y = onehot_vector(label, net.n_classes)
    rec = forward_loop(net, x, y)
    back = backward_loop(net, rec, y)
    return rec.loss, gradient_vector(back)  # (M.9)


def mean_loss_and_gradient(
    net: MmidsNetwork, X: np.ndarray, labels: np.ndarray
) -> tuple[float, np.ndarray]:
    """(S.1) the minibatch means (1/B) Σ_s f_{x_s,y_s}(w) and (1/B) Σ_s ∇f_{x_s,y_s}(w)."""
    total_loss = 0.0
    total_grad = np.zeros(net.flat().shape[0])
    for s in range(X.shape[0]):
        value, grad = loss_and_gradient(net, X[s], int(labels[s]))
        total_loss += value
        total_grad += grad
    return total_loss / X.shape[0], total_grad / X.shape[0]


def loss_only(net: MmidsNetwork, x: np.ndarray, label: int) -> float:
    """f_{x,y}(w) by the forward loop alone (for finite differences)."""
    return forward_loop(net, x, onehot_vector(label, net.n_classes)).loss


# --------------------------------------------------------------------------------------------
# What forming the Jacobians costs, compared with the δ recursion (exact counts, not timings).


@dataclass(frozen=True)
class Cost:
    """Per-sample counts for one backward pass."""

    jacobian_entries: int  # entries of A_1..A_L, B_1..B_{L+1} the Jacobian view stores
    jacobian_flops: int  # multiply-adds of the products A_iᵀ q, B_iᵀ q
    delta_entries: int  # entries of δ^1..δ^L the δ recursion stores
    delta_flops: int  # multiply-adds of B.3 (∇W = δ hᵀ, per sample) and B.4


def backward_cost(sizes: Sequence[int], head: str = "modified-softmax") -> Cost:
    """Counts for widths n_1..n_{L+1} (MMiDS) = d_0..d_L (FB): A_i has n_{i+1}·r_i entries with
    r_i = n_{i+1}(n_i + 1), all but r_i of them zero; the δ form touches each weight once."""
    L = len(sizes) - 1
    jac_entries = jac_flops = delta_entries = delta_flops = 0
    for i in range(L):
        n_in, n_out = sizes[i], sizes[i + 1]
        r = n_out * (n_in + 1)
        jac_entries += n_out * r + n_out * n_in
        jac_flops += n_out * r + n_out * n_in
        delta_entries += n_out
        delta_flops += r + (n_out * n_in if i > 0 else 0)
    K = sizes[-1] + (1 if head == "modified-softmax" else 0)
    jac_entries += K * sizes[-1]
    jac_flops += K * sizes[-1]
    return Cost(jac_entries, jac_flops, delta_entries, delta_flops)
