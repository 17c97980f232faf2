"""Architecture (d_0..d_L, φ_1..φ_{L−1}, the output head) and parameters θ.

θ = (b^1, W^1, …, b^L, W^L) is stored as ONE flat vector, in the notes' order, and W^k, b^k
are views into it: optimizers update θ in a single loop, a model file stores one array, and the
gradient has the same layout. Lists are indexed by the notes' layer numbers: ``W[k]`` is W^k
for k = 1..L and ``W[0]`` is None (there is no layer 0; h^0 = x).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from numbamlp.errors import NumbamlpError
from numbamlp.kernels.activations import CODES
from numbamlp.kernels.memory import aligned

HEADS = ("softmax", "modified-softmax", "identity")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Architecture:
    """Layer widths d_0..d_L, hidden activations φ_1..φ_{L−1}, and the output head.

    With the ``softmax`` head d_L = M classes (FB §2). With ``modified-softmax`` (MMiDS γ̃)
    d_L = K − 1 and class K is the reference with logit 0. With ``identity`` (regression, F.5)
    d_L = T targets and f = z^L.
    """

    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    head: str = "softmax"

    def __post_init__(self) -> None:
        if len(self.sizes) < 2:
            raise NumbamlpError("a network needs at least an input and an output layer")
        for k, d in enumerate(self.sizes):
            if int(d) != d or d < 1:
                raise NumbamlpError(f"layer width d_{k} must be a positive integer, got {d}")
        if len(self.activations) != len(self.sizes) - 2:
            raise NumbamlpError(
                f"{len(self.sizes) - 2} hidden layer(s) need as many activations, "
                f"got {len(self.activations)}"
            )
        for name in self.activations:
            if name not in CODES:
                raise NumbamlpError(
                    f"unknown activation {name!r}; choose one of: {', '.join(CODES)}"
                )
        if self.head not in HEADS:
            raise NumbamlpError(
                f"unknown output head {self.head!r}; choose one of: {', '.join(HEADS)}"
            )
        if self.task == "classification" and self.n_classes < 2:
            raise NumbamlpError("a classifier needs at least 2 classes")

    @classmethod
    def for_classes(
        cls,
        n_inputs: int,
        hidden: Sequence[int],
        n_classes: int,
        activations: str | Sequence[str] = "sigmoid",
        head: str = "softmax",
    ) -> Architecture:
        """Build d_0..d_L from the input width, hidden widths and the number of classes (for the
        identity head: of targets, d_L = n_classes)."""
        if isinstance(activations, str):
            activations = [activations] * len(hidden)
        elif len(activations) == 1 and len(hidden) > 1:
            activations = list(activations) * len(hidden)
        d_L = n_classes - 1 if head == "modified-softmax" else n_classes
        return cls(tuple(int(d) for d in (n_inputs, *hidden, d_L)), tuple(activations), head)

    @property
    def L(self) -> int:
        """Number of layers with parameters."""
        return len(self.sizes) - 1

    @property
    def n_inputs(self) -> int:
        return self.sizes[0]

    @property
    def task(self) -> str:
        """ "regression" for the identity head, else "classification"."""
        return "regression" if self.head == "identity" else "classification"

    @property
    def n_outputs(self) -> int:
        """d_L: the logits of a classifier, the targets T of a regressor."""
        return self.sizes[-1]

    @property
    def n_classes(self) -> int:
        """M, the classes (the width of f); for the identity head d_L too (callers check
        ``task``)."""
        return self.sizes[-1] + (1 if self.head == "modified-softmax" else 0)

    @property
    def n_parameters(self) -> int:
        return sum(self.sizes[k] * (self.sizes[k - 1] + 1) for k in range(1, self.L + 1))

    @property
    def activation_codes(self) -> tuple[int, ...]:
        """Codes of φ_m indexed by the layer number m (index 0 and L are unused)."""
        return (-1, *(CODES[a] for a in self.activations), -1)

    def layer_views(self, flat: np.ndarray) -> tuple[list, list]:
        """Views (W, b) into a flat θ-shaped vector; W[k] has shape (d_k, d_{k−1})."""
        W: list = [None]
        b: list = [None]
        offset = 0
        for k in range(1, self.L + 1):
            d_k, d_prev = self.sizes[k], self.sizes[k - 1]
            b.append(flat[offset : offset + d_k])
            offset += d_k
            W.append(flat[offset : offset + d_k * d_prev].reshape(d_k, d_prev))
            offset += d_k * d_prev
        return W, b

    def describe(self) -> str:
        """Flux-style summary, e.g. ``Dense(784 => 32, sigmoid) → Dense(32 => 10) → softmax``."""
        layers = []
        for k in range(1, self.L + 1):
            act = f", {self.activations[k - 1]}" if k < self.L else ""
            layers.append(f"Dense({self.sizes[k - 1]} => {self.sizes[k]}{act})")
        head = {"modified-softmax": "γ̃ (modified softmax)", "identity": "identity"}.get(
            self.head, "softmax"
        )
        return " → ".join([*layers, head])


class Parameters:
    """θ as one flat vector plus the per-layer views W[k], b[k] (k = 1..L).

    θ starts on a cache line (``memory.aligned``: the given vector itself if it does, else a
    copy), so that the fused engine's vector loads of the rows of W^k do not straddle lines.
    """

    def __init__(self, architecture: Architecture, theta: np.ndarray) -> None:
        if theta.ndim != 1 or theta.shape[0] != architecture.n_parameters:
            raise NumbamlpError(
                f"parameter vector has {theta.size} entries, the architecture needs "
                f"{architecture.n_parameters}"
            )
        self.architecture = architecture
        self.theta = aligned(theta)
        self.W, self.b = architecture.layer_views(self.theta)

    @classmethod
    def zeros(cls, architecture: Architecture, dtype: np.dtype | str) -> Parameters:
        return cls(architecture, np.zeros(architecture.n_parameters, dtype=dtype))

    @classmethod
    def glorot_uniform(
        cls, architecture: Architecture, dtype: np.dtype | str, rng: np.random.Generator
    ) -> Parameters:
        """(N.1) W^k_{ij} ~ U(−a, a), a = √(6/(d_k + d_{k−1})); b^k = 0 (Flux's Dense default).

        Drawn in float64 then rounded, so float32 and float64 runs with one seed start alike.
        """
        params = cls.zeros(architecture, dtype)
        for k in range(1, architecture.L + 1):
            d_k, d_prev = architecture.sizes[k], architecture.sizes[k - 1]
            a = np.sqrt(6.0 / (d_k + d_prev))
            params.W[k][...] = rng.uniform(-a, a, size=(d_k, d_prev))
        return params

    def copy(self) -> Parameters:
        return Parameters(self.architecture, self.theta.copy())

    def __reduce__(self) -> tuple:
        """Pickle θ alone and rebuild the views from it: pickling W[k], b[k] as arrays would
        unpickle them as copies, no longer views of θ, and an update of θ would miss them."""
        return (Parameters, (self.architecture, self.theta))
