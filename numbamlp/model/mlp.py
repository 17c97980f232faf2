"""MLP: an architecture, its parameters θ and a dtype, with predict / loss / gradient."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from numbamlp.errors import NumbamlpError
from numbamlp.kernels.dropout import Dropout
from numbamlp.kernels.forward import gather_batch, predict_classes, sample_weight_factors
from numbamlp.kernels.metrics import r2_score
from numbamlp.model import passes
from numbamlp.model.network import DTYPES, Architecture, Parameters
from numbamlp.model.workspace import Workspace

EVAL_CHUNK = 1024


class MLP:
    """A feed-forward network Dense(d_0 => d_1, φ_1) → … → Dense(d_{L−1} => d_L) → head.

    >>> import numpy as np
    >>> MLP.create(784, [32], 10, rng=np.random.default_rng(0))
    MLP(Dense(784 => 32, sigmoid) → Dense(32 => 10) → softmax; 25,450 parameters, float32)
    """

    def __init__(self, architecture: Architecture, params: Parameters) -> None:
        self.architecture = architecture
        self.params = params
        self._eval_ws: Workspace | None = None

    @classmethod
    def create(
        cls,
        n_inputs: int,
        hidden: Sequence[int],
        n_outputs: int,
        *,
        activations: str | Sequence[str] = "sigmoid",
        head: str = "softmax",
        dtype: str = "float32",
        rng: np.random.Generator,
    ) -> MLP:
        """A network with Glorot-uniform weights and zero biases (N.1), drawn from ``rng``:
        a classifier of ``n_outputs`` classes, or with ``head="identity"`` a regressor of
        ``n_outputs`` targets."""
        if dtype not in DTYPES:
            raise NumbamlpError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
        arch = Architecture.for_classes(n_inputs, hidden, n_outputs, activations, head)
        return cls(arch, Parameters.glorot_uniform(arch, dtype, rng))

    def __getstate__(self) -> dict:
        """Pickle the architecture and θ; the evaluation buffers are made again when needed."""
        return {**self.__dict__, "_eval_ws": None}

    @property
    def dtype(self) -> np.dtype:
        return self.params.theta.dtype

    def __repr__(self) -> str:
        return (
            f"MLP({self.architecture.describe()}; {self.architecture.n_parameters:,} "
            f"parameters, {self.dtype})"
        )

    # -- inputs ----------------------------------------------------------------------------

    def check_inputs(self, X: np.ndarray, what: str = "input", raw: bool = False) -> np.ndarray:
        """X as a C-contiguous (n, d_0) array of the model's dtype, or a clear error.

        With ``raw=True`` integer data (e.g. uint8 pixels, scaled by the kernels as they
        gather a batch) is kept as it is instead of being converted.
        """
        X = np.asarray(X)
        if X.ndim != 2:
            raise NumbamlpError(
                f"{what} must be a 2-d array (samples × features), got shape {X.shape}"
            )
        if X.shape[1] != self.architecture.n_inputs:
            raise NumbamlpError(
                f"{what} has {X.shape[1]} features but the model expects "
                f"{self.architecture.n_inputs}"
            )
        if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
            raise NumbamlpError(f"{what} must be numeric, got dtype {X.dtype}")
        if raw and X.dtype.kind in "iu":
            return np.ascontiguousarray(X)
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if not np.isfinite(X).all():
            bad = np.argwhere(~np.isfinite(X))[0]
            raise NumbamlpError(
                f"{what} contains NaN or Inf (first at row {bad[0]}, column {bad[1]})"
            )
        return X

    def check_labels(self, y: np.ndarray, n: int, what: str = "labels") -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != n:
            raise NumbamlpError(
                f"{what} must be a 1-d array of {n} class indices, got shape {y.shape}"
            )
        if y.size and (y.min() < 0 or y.max() >= self.architecture.n_classes):
            raise NumbamlpError(
                f"{what} must lie in 0..{self.architecture.n_classes - 1}, "
                f"found {int(y.min())}..{int(y.max())}"
            )
        return np.ascontiguousarray(y, dtype=np.int64)

    def check_targets(self, y: np.ndarray, n: int, what: str = "targets") -> np.ndarray:
        """What the loss compares f with: int64 labels (n,) for a classifier (``check_labels``);
        for a regressor C-contiguous (n, T) targets of the model's dtype ((n,) accepted for
        T = 1), finite, or a clear error."""
        if self.architecture.task == "classification":
            return self.check_labels(y, n, what)
        T = self.architecture.n_outputs
        y = np.asarray(y)
        if y.ndim == 1 and T == 1:
            y = y.reshape(-1, 1)
        if y.ndim != 2 or y.shape != (n, T):
            raise NumbamlpError(
                f"{what} must be an array of {n} rows × {T} target(s), got shape {y.shape}"
            )
        if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
            raise NumbamlpError(f"{what} must be numeric, got dtype {y.dtype}")
        y = np.ascontiguousarray(y, dtype=self.dtype)
        if not np.isfinite(y).all():
            bad = np.argwhere(~np.isfinite(y))[0]
            raise NumbamlpError(f"{what} contain NaN or Inf (first at row {bad[0]})")
        return y

    @staticmethod
    def check_sample_weight(
        sample_weight: np.ndarray, n: int, what: str = "`sample_weight`"
    ) -> np.ndarray:
        """w as float64 (n,): finite, non-negative, with a positive sum (S.2), or a clear error."""
        w = np.asarray(sample_weight)
        if w.ndim != 1 or w.shape[0] != n:
            raise NumbamlpError(
                f"{what} must hold one weight per sample ({n}), got shape {w.shape}"
            )
        if not np.issubdtype(w.dtype, np.number) or np.issubdtype(w.dtype, np.complexfloating):
            raise NumbamlpError(f"{what} must be numeric, got dtype {w.dtype}")
        w = np.ascontiguousarray(w, dtype=np.float64)
        if not np.isfinite(w).all() or (w < 0).any():
            raise NumbamlpError(f"{what} must be finite and non-negative")
        if not w.sum() > 0:
            raise NumbamlpError(f"{what} must have a positive sum")
        return w

    # -- evaluation ------------------------------------------------------------------------

    def _eval_workspace(self) -> Workspace:
        if self._eval_ws is None or self._eval_ws.f.dtype != self.dtype:
            self._eval_ws = Workspace(self.architecture, EVAL_CHUNK, self.dtype)
        return self._eval_ws

    def _forward_chunks(self, X: np.ndarray, scale: float):
        """Yield (start, workspace view) after a forward pass on each chunk of X · scale."""
        ws_full = self._eval_workspace()
        c = self.dtype.type(scale)
        for start in range(0, X.shape[0], EVAL_CHUNK):
            n = min(EVAL_CHUNK, X.shape[0] - start)
            ws = ws_full.rows(n)
            ws.indices[:] = np.arange(start, start + n)
            gather_batch(ws.h[0], X, ws.indices, c)
            passes.forward(ws, self.params)
            yield start, ws

    def predict_values(self, X: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """The outputs f_θ(x) of the inputs x = X · scale: class probabilities (n, M), or the
        identity head's values (n, T) (F.5)."""
        X = self.check_inputs(X, raw=True)
        out = np.empty((X.shape[0], self.architecture.n_classes), self.dtype)
        for start, ws in self._forward_chunks(X, scale):
            out[start : start + ws.batch_size] = ws.f
        return out

    def predict_proba(self, X: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Class probabilities f_θ(x) of the inputs x = X · scale, shape (n, M)."""
        if self.architecture.task == "regression":
            raise NumbamlpError("a regression model has no class probabilities; use `predict`")
        return self.predict_values(X, scale)

    def predict(self, X: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """onecold(f_θ(x)) for x = X · scale: the most probable class of each row, shape (n,);
        for a regressor the outputs f_θ(x), shape (n, T), in the model's dtype (the standardised
        target units: inverting Z.2 is the caller's)."""
        if self.architecture.task == "regression":
            return self.predict_values(X, scale)
        X = self.check_inputs(X, raw=True)
        out = np.empty(X.shape[0], np.int64)
        for start, ws in self._forward_chunks(X, scale):
            predict_classes(ws.classes, ws.f)
            out[start : start + ws.batch_size] = ws.classes
        return out

    def accuracy(self, X: np.ndarray, y: np.ndarray, scale: float = 1.0) -> float:
        """Fraction of rows whose predicted class is y; for a regressor R² (E.3, in the model's
        units), the score that takes accuracy's place."""
        X = self.check_inputs(X, raw=True)
        y = self.check_targets(y, X.shape[0])
        if self.architecture.task == "regression":
            return r2_score(y, self.predict_values(X, scale))
        return float(np.mean(self.predict(X, scale) == y))

    def loss(
        self,
        X: np.ndarray,
        y: np.ndarray,
        scale: float = 1.0,
        weight_decay: float = 0.0,
        sample_weight: np.ndarray | None = None,
    ) -> float:
        """Mean loss over all rows of X · scale — cross-entropy (L.1) of labels y, or squared
        error (L.2) of targets y for the identity head — plus the weight decay's penalty
        (λ/2) Σ_m ‖W^m‖² when ``weight_decay`` λ ≠ 0 (R.1): ℓ_λ. With ``sample_weight`` w the
        mean is Σ_s w_s ℓ_s / Σ_s w_s (S.2)."""
        X = self.check_inputs(X, raw=True)
        y = self.check_targets(y, X.shape[0])
        w = None if sample_weight is None else self.check_sample_weight(sample_weight, X.shape[0])
        total = 0.0
        for start, ws in self._forward_chunks(X, scale):
            stop = start + ws.batch_size
            mean = passes.loss(ws, self.params, y[start:stop])
            if w is None:
                total += mean * ws.batch_size
            else:  # (S.2) Σ_s w_s ℓ_s, of the unweighted ℓ_s the pass left in ws.losses
                total += float(np.dot(w[start:stop], ws.losses.astype(np.float64)))
        n = X.shape[0] if w is None else float(w.sum())
        return total / n + passes.penalty(self.params, weight_decay)

    def loss_and_accuracy(
        self, X: np.ndarray, y: np.ndarray, scale: float = 1.0
    ) -> tuple[float, float]:
        """``loss`` and ``accuracy`` of X · scale in one forward pass over its rows (the same
        sums, so the same numbers); for a regressor ``loss`` and R² (E.3, in the model's
        units)."""
        X = self.check_inputs(X, raw=True)
        y = self.check_targets(y, X.shape[0])
        if self.architecture.task == "regression":
            total = 0.0
            f = np.empty(y.shape, self.dtype)
            for start, ws in self._forward_chunks(X, scale):
                stop = start + ws.batch_size
                total += passes.loss(ws, self.params, y[start:stop]) * ws.batch_size
                f[start:stop] = ws.f
            return total / X.shape[0], r2_score(y, f)
        total, right = 0.0, 0
        for start, ws in self._forward_chunks(X, scale):
            labels = y[start : start + ws.batch_size]
            total += passes.loss(ws, self.params, labels) * ws.batch_size
            predict_classes(ws.classes, ws.f)  # (P.1)
            right += int(np.count_nonzero(ws.classes == labels))
        return total / X.shape[0], right / X.shape[0]

    def loss_and_gradient(
        self,
        X: np.ndarray,
        y: np.ndarray,
        weight_decay: float = 0.0,
        sample_weight: np.ndarray | None = None,
        dropout: Dropout | None = None,
        step: int = 1,
    ) -> tuple[float, Parameters]:
        """ℓ(θ) = (1/n) Σ_s ℓ_s and ∇θ ℓ for one batch holding all rows of X (labels, or the
        identity head's targets y); with ``weight_decay`` λ ≠ 0, ℓ_λ and ∇θ ℓ_λ (R.1); with
        ``sample_weight`` w, the weighted mean Σ_s w_s ℓ_s / Σ_s w_s and its gradient (S.2);
        with ``dropout``, those of the thinned network of step ``step`` (D.1–D.3: row s of X is
        sample i_s = s), whose masks are fixed by (seed, step, s, m, j)."""
        X = self.check_inputs(X)
        y = self.check_targets(y, X.shape[0])
        ws = Workspace(self.architecture, X.shape[0], self.dtype)
        ws.indices[:] = np.arange(X.shape[0])
        gather_batch(ws.h[0], X, ws.indices, self.dtype.type(1.0))
        omega = None
        if sample_weight is not None:
            w = self.check_sample_weight(sample_weight, X.shape[0])
            sample_weight_factors(ws.omega, w, ws.indices)  # (S.2) ω_s
            omega = ws.omega
        grads = Parameters.zeros(self.architecture, self.dtype)
        passes.forward(ws, self.params, dropout, ws.indices, step)
        value = passes.loss(ws, self.params, y, omega) + passes.penalty(self.params, weight_decay)
        passes.backward(ws, self.params, grads, y, weight_decay, omega, dropout, ws.indices, step)
        return value, grads
