"""Regression small enough to do by hand, in test_hand_worked.py's style: the identity head
(F.5), the squared error (L.2), its output delta (B.5) and the weighted minibatch mean (S.2),
every number written below with its arithmetic.

Network: L = 1, d = (2, 2): f = z^1 = b^1 + W^1 x, T = 2 targets. Minibatch of B = 2 samples:

    x_1 = (1, 2),    y_1 = (1, −1)
    x_2 = (0.5, −1), y_2 = (0, 2)

    W^1 = [[ 0.1, 0.2],   b^1 = [0.0, 0.1]
           [−0.3, 0.4]]

Every literal is a short decimal, exact to the digits written (binary rounding aside).
"""

from __future__ import annotations

import numpy as np
import pytest

from numbamlp.kernels.forward import gather_batch, sample_weight_factors
from numbamlp.model import passes, reference
from numbamlp.model.mlp import MLP
from numbamlp.model.network import Architecture, Parameters
from numbamlp.model.workspace import Workspace
from numbamlp.training.trainer import TrainConfig, Trainer

X = [[1.0, 2.0], [0.5, -1.0]]
Y = [[1.0, -1.0], [0.0, 2.0]]
W1 = [[0.1, 0.2], [-0.3, 0.4]]
B1 = [0.0, 0.1]

# --- Forward pass ------------------------------------------------------------------------------
# (F.1) z^1_s = b^1 + W^1 x_s
#   z^1_1 = (0 + 0.1·1 + 0.2·2,   0.1 − 0.3·1 + 0.4·2)   = (0.5, 0.6)
#   z^1_2 = (0 + 0.1·0.5 − 0.2·1, 0.1 − 0.3·0.5 − 0.4·1) = (−0.15, −0.45)
# (F.5) f_s = z^1_s
F = [[0.5, 0.6], [-0.15, -0.45]]
# (L.2) ℓ_s = ½ Σ_i (f_{s,i} − y_{s,i})²
#   ℓ_1 = ½((0.5 − 1)² + (0.6 + 1)²)     = ½(0.25 + 2.56)     = 1.405
#   ℓ_2 = ½((−0.15 − 0)² + (−0.45 − 2)²) = ½(0.0225 + 6.0025) = 3.0125
LOSSES = [1.405, 3.0125]
# (S.1) ℓ = (1.405 + 3.0125)/2
LOSS = 2.20875

# --- Backward pass -----------------------------------------------------------------------------
# (B.5) δ^1_s = f_s − y_s
#   δ_1 = (0.5 − 1, 0.6 + 1) = (−0.5, 1.6)     δ_2 = (−0.15 − 0, −0.45 − 2) = (−0.15, −2.45)
DELTA = [[-0.5, 1.6], [-0.15, -2.45]]
# (B.3)+(S.1) ∇W^1 = (1/2) Σ_s δ_s x_sᵀ
#   ∇W_11 = (−0.5·1 + (−0.15)·0.5)/2   = (−0.5 − 0.075)/2 = −0.2875
#   ∇W_12 = (−0.5·2 + (−0.15)·(−1))/2  = (−1 + 0.15)/2    = −0.425
#   ∇W_21 = (1.6·1 + (−2.45)·0.5)/2    = (1.6 − 1.225)/2  = 0.1875
#   ∇W_22 = (1.6·2 + (−2.45)·(−1))/2   = (3.2 + 2.45)/2   = 2.825
GRAD_W = [[-0.2875, -0.425], [0.1875, 2.825]]
# (B.2)+(S.1) ∇b^1 = (1/2) Σ_s δ_s = ((−0.5 − 0.15)/2, (1.6 − 2.45)/2)
GRAD_B = [-0.325, -0.425]
# (U.1) one SGD step, γ = 0.1: θ ← θ − 0.1 ∇θ
#   W ← [[0.1 + 0.02875, 0.2 + 0.0425], [−0.3 − 0.01875, 0.4 − 0.2825]];  b ← [0.0325, 0.1425]
NEW_W = [[0.12875, 0.2425], [-0.31875, 0.1175]]
NEW_B = [0.0325, 0.1425]

# --- The same batch with sample weights w = (1, 3) (S.2) ----------------------------------------
# (S.2) ω_s = B w_s / Σ_{s'} w_{s'} = 2·(1, 3)/4 = (0.5, 1.5)
OMEGA = [0.5, 1.5]
# (S.2) ℓ = Σ_s w_s ℓ_s / Σ_s w_s = (1·1.405 + 3·3.0125)/4 = 10.4425/4
#       = (1/B) Σ_s ω_s ℓ_s = (0.5·1.405 + 1.5·3.0125)/2 = (0.7025 + 4.51875)/2
WEIGHTED_LOSS = 2.610625
# (S.2) δ_s ← ω_s δ_s: δ_1 = 0.5·(−0.5, 1.6) = (−0.25, 0.8)
#                      δ_2 = 1.5·(−0.15, −2.45) = (−0.225, −3.675)
WEIGHTED_DELTA = [[-0.25, 0.8], [-0.225, -3.675]]
# (B.3)+(S.1) ∇W^1 = (1/2) Σ_s δ_s x_sᵀ
#   ∇W_11 = (−0.25·1 + (−0.225)·0.5)/2  = (−0.25 − 0.1125)/2 = −0.18125
#   ∇W_12 = (−0.25·2 + (−0.225)·(−1))/2 = (−0.5 + 0.225)/2   = −0.1375
#   ∇W_21 = (0.8·1 + (−3.675)·0.5)/2    = (0.8 − 1.8375)/2   = −0.51875
#   ∇W_22 = (0.8·2 + (−3.675)·(−1))/2   = (1.6 + 3.675)/2    = 2.6375
WEIGHTED_GRAD_W = [[-0.18125, -0.1375], [-0.51875, 2.6375]]
# (B.2)+(S.1) ∇b^1 = ((−0.25 − 0.225)/2, (0.8 − 3.675)/2)
WEIGHTED_GRAD_B = [-0.2375, -1.4375]
# (U.1) γ = 0.1: W ← [[0.1 + 0.018125, 0.2 + 0.01375], [−0.3 + 0.051875, 0.4 − 0.26375]]
WEIGHTED_NEW_W = [[0.118125, 0.21375], [-0.248125, 0.13625]]
WEIGHTED_NEW_B = [0.02375, 0.24375]
WEIGHTS = [1.0, 3.0]

DTYPES = ["float64", "float32"]
TOL = {"float64": 1e-12, "float32": 1e-6}


def hand_model(dtype: str) -> MLP:
    arch = Architecture((2, 2), (), "identity")
    params = Parameters.zeros(arch, dtype)
    params.W[1][...], params.b[1][...] = W1, B1
    return MLP(arch, params)


def run_passes(dtype: str, weighted: bool):
    model = hand_model(dtype)
    ws = Workspace(model.architecture, 2, dtype)
    ws.indices[:] = [0, 1]
    gather_batch(ws.h[0], np.array(X, dtype=dtype), ws.indices, np.dtype(dtype).type(1.0))
    y = np.array(Y, dtype=dtype)
    omega = None
    if weighted:
        sample_weight_factors(ws.omega, np.array(WEIGHTS), ws.indices)
        omega = ws.omega
    passes.forward(ws, model.params)
    loss = passes.loss(ws, model.params, y, omega)
    grads = Parameters.zeros(model.architecture, dtype)
    passes.backward(ws, model.params, grads, y, 0.0, omega)
    return ws, loss, grads


def approx(values, dtype):
    return pytest.approx(np.array(values), abs=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_identity_head_and_squared_error_by_hand(dtype):
    """f = z^L (F.5), ℓ_s = ½‖f_s − y_s‖² (L.2), their mean (S.1)."""
    ws, loss, _ = run_passes(dtype, weighted=False)
    assert ws.f == approx(F, dtype)
    assert ws.losses == approx(LOSSES, dtype)
    assert loss == pytest.approx(LOSS, abs=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_squared_error_delta_by_hand(dtype):
    """δ^L = f − y (B.5), then ∇W^1 (B.3) and ∇b^1 (B.2), means over the batch (S.1)."""
    ws, _, grads = run_passes(dtype, weighted=False)
    assert ws.delta[1] == approx(DELTA, dtype)
    assert grads.W[1] == approx(GRAD_W, dtype)
    assert grads.b[1] == approx(GRAD_B, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weighted_mean_by_hand(dtype):
    """ω_s (S.2), the weighted loss Σ w_s ℓ_s / Σ w_s and its gradient."""
    ws, loss, grads = run_passes(dtype, weighted=True)
    assert ws.omega == approx(OMEGA, "float64")
    assert loss == pytest.approx(WEIGHTED_LOSS, abs=TOL[dtype])
    assert ws.delta[1] == approx(WEIGHTED_DELTA, dtype)
    assert grads.W[1] == approx(WEIGHTED_GRAD_W, dtype)
    assert grads.b[1] == approx(WEIGHTED_GRAD_B, dtype)


@pytest.mark.parametrize("engine", ["kernels", "fused"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_training_step_by_hand(dtype, weighted, engine):
    """The same step through the Trainer (one epoch of one minibatch, SGD γ = 0.1), with each
    CPU engine, without and with the weights."""
    model = hand_model(dtype)
    config = TrainConfig(epochs=1, batch_size=2, optimizer="sgd", lr=0.1, engine=engine)
    trainer = Trainer(
        model, np.array(X), np.array(Y), config, np.random.default_rng(0),
        sample_weight=np.array(WEIGHTS) if weighted else None,
    )  # fmt: skip
    metrics = trainer.train_epoch()
    assert metrics.train_accuracy is None
    assert metrics.train_loss == pytest.approx(WEIGHTED_LOSS if weighted else LOSS, abs=TOL[dtype])
    assert model.params.W[1] == approx(WEIGHTED_NEW_W if weighted else NEW_W, dtype)
    assert model.params.b[1] == approx(WEIGHTED_NEW_B if weighted else NEW_B, dtype)


def test_literals_agree_with_the_oracle():
    """Provenance: the matrix-form oracle gives the same losses and gradients."""
    arch = Architecture((2, 2), (), "identity")
    W, b = [None, np.array(W1)], [None, np.array(B1)]
    for weights, loss_, gW_, gb_ in (
        (None, LOSS, GRAD_W, GRAD_B),
        (np.array(WEIGHTS), WEIGHTED_LOSS, WEIGHTED_GRAD_W, WEIGHTED_GRAD_B),
    ):
        loss, gW, gb = reference.loss_and_gradient(
            arch, W, b, np.array(X), np.array(Y), sample_weight=weights
        )
        assert loss == pytest.approx(loss_, abs=1e-12)
        assert gW[1] == pytest.approx(np.array(gW_), abs=1e-12)
        assert gb[1] == pytest.approx(np.array(gb_), abs=1e-12)
