"""What every engine provides (``Engine``), what it is built from (``EngineSetup``), and the
part the CPU engines share (``HostEngine``). No equation here.

An engine makes the training steps of one run: the minibatches of the current epoch, their
losses, the updates of θ and of the optimizer's state. Everything else — drawing the
minibatches and the step sizes, the epoch and minibatch position, checkpoints, divergence —
is ``training.Trainer``'s, the same for every engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from numbamlp.kernels.dropout import Dropout
from numbamlp.kernels.memory import aligned_zeros
from numbamlp.kernels.optimizers import OPTIMIZERS, Optimizer
from numbamlp.kernels.sampling import Sampler
from numbamlp.model.mlp import MLP

#: Steps per call into an engine that makes many per call (fused, CUDA): few enough that Python
#: gets control back (progress bar, throttled evaluation, Ctrl-C) often, enough that the calls
#: cost no measurable speed (docs/performance.md, "Figures moved out of the code").
FUSED_CHUNK = 32


@dataclass(frozen=True)
class EngineSetup:
    """The arrays and objects of one run that an engine reads and writes, all owned by the
    Trainer. The engine keeps references: the sampler refills its index matrix in place every
    epoch, and the Trainer fills ``lrs`` then."""

    model: MLP  # θ is model.params.theta, updated in place (on a device: by to_host)
    X: np.ndarray  # the training inputs, (n, d_0): θ's dtype, or uint8 pixels
    scale: np.floating  # h^0 = scale · X_{I_s}, in θ's dtype
    y: np.ndarray  # int64 labels, (n,) (zero-length for regression)
    optimizer: Optimizer  # hyperparameters, state arrays, the step counter p
    sampler: Sampler  # index_matrix[q, :batch_sizes[q]] is minibatch q of the epoch
    lrs: np.ndarray  # float64 (steps,): γ of the step made on minibatch q
    batch_losses: np.ndarray  # float64 (steps,): receives ℓ of minibatch q (S.1)
    batch_correct: np.ndarray  # int64 (steps,): receives its samples classified right (P.1)
    weight_decay: float = 0.0  # λ of R.1
    # The identity head's targets y_{s,:}, (n, T) in θ's dtype; zero rows for a classifier.
    targets: np.ndarray | None = None
    # The sample weights w_s of S.2, float64 (n,); zero-length: unweighted (S.1 alone).
    weights: np.ndarray | None = None
    # Dropout (D.1–D.3) on the hidden layers; None, or rate 0 everywhere: none.
    dropout: Dropout | None = None

    def __post_init__(self) -> None:
        """The arrays left out become zero-length dummies of the types the kernels take (one
        type signature per dtype, whichever arrays a run uses)."""
        if self.targets is None:
            d_L = self.model.architecture.n_outputs
            object.__setattr__(self, "targets", np.zeros((0, d_L), self.model.dtype))
        if self.weights is None:
            object.__setattr__(self, "weights", np.zeros(0, np.float64))

    @property
    def weighted(self) -> bool:
        """Whether the steps take the weighted minibatch mean (S.2)."""
        assert self.weights is not None
        return self.weights.shape[0] > 0


@runtime_checkable
class Engine(Protocol):
    """The training steps of one run, on one kind of hardware.

    ``run`` is the one method that trains; the others move θ and the optimizer's state
    between the engine and the host, and answer what the Trainer asks of the current θ.
    """

    #: The most minibatches the Trainer asks ``run`` for at once (1: one call per step).
    chunk: int
    #: The optimizer's state as one (n_state, P) array on the host, whose rows the optimizer's
    #: state arrays are views of (current after ``to_host``).
    state: np.ndarray

    def start_epoch(self) -> None:
        """The epoch's minibatches and step sizes are drawn (in the setup's sampler and lrs);
        an engine on a device uploads them here."""

    def run(self, first: int, count: int) -> int:
        """Make the steps on minibatches first, …, first+count−1 of the epoch: write each one's
        loss and correct count into the setup's batch_losses and batch_correct, update θ and the
        optimizer's state, and advance the optimizer's step counter p by one per step made.
        Returns the number of steps made: count, or fewer when the loss of minibatch
        first + made was not finite (its loss is written; its update is not made)."""
        ...

    def to_host(self) -> None:
        """Make θ (model.params.theta) and the optimizer's state current on the host."""

    def from_host(self) -> None:
        """Make the host's θ and optimizer state the engine's (after they were loaded there)."""

    def all_finite(self) -> bool:
        """Whether every component of θ is finite."""
        ...

    def accuracy(self, X: np.ndarray, y: np.ndarray, scale: float = 1.0) -> float:
        """Fraction of (X · scale, y) that the current θ classifies right (P.1); for a regressor
        (y targets) R² (E.3)."""
        ...


def adopt_state(optimizer: Optimizer, n_parameters: int, dtype: np.dtype) -> np.ndarray:
    """The optimizer's state as one (n_state, P) array, starting on a cache line. The
    optimizer's arrays become views of its rows (their values kept), so that the optimizer and
    the engine share one state."""
    names = OPTIMIZERS[optimizer.name][0]
    state = aligned_zeros((len(names), n_parameters), dtype)
    for r, name in enumerate(names):
        state[r] = optimizer.state[name]
        optimizer.state[name] = state[r]
    return state


class HostEngine:
    """What the CPU engines share: θ and the optimizer's state live on the host already."""

    chunk = 1
    state: np.ndarray

    def __init__(self, setup: EngineSetup) -> None:
        self.setup = setup

    def start_epoch(self) -> None:
        """Nothing to do: the steps read the sampler's matrix and the step sizes in place."""

    def to_host(self) -> None:
        """Nothing to do: the host's arrays are the engine's."""

    def from_host(self) -> None:
        """Nothing to do: the host's arrays are the engine's."""

    def all_finite(self) -> bool:
        return bool(np.isfinite(self.setup.model.params.theta).all())

    def accuracy(self, X: np.ndarray, y: np.ndarray, scale: float = 1.0) -> float:
        """Fraction classified right (P.1); for a regressor R² (E.3)."""
        if self.setup.model.architecture.task == "regression":
            return self.setup.model.accuracy(X, y, scale)
        return float(np.mean(self.setup.model.predict(X, scale) == y))
