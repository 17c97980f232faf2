"""A network small enough to do by hand (scikit-learn's ``test_fit`` style): every number of one
forward pass, one backward pass and one SGD step is written below, with its arithmetic.

Network (FB §2 with L = 2): d = (2, 2, 2), φ_1 = σ (A.1), softmax head (F.3), M = 2 classes.
Minibatch of B = 2 samples (s = 1, 2 in the notes; rows 0, 1 here):

    x_1 = (1, 2),    Y_1 = 1  (class index 0)
    x_2 = (0.5, −1), Y_2 = 2  (class index 1)

    W^1 = [[ 0.1, 0.2],   b^1 = [0.0,  0.1]
           [−0.3, 0.4]]
    W^2 = [[ 0.5, −0.6],  b^2 = [0.1, −0.1]
           [ 0.7,  0.8]]

With two classes softmax reduces to a sigmoid of the logit gap: f_1 = σ(z_1 − z_2), f_2 = 1 − f_1.
The literals were worked out with scalar arithmetic (math.exp, one operation at a time) and
cross-checked once against the matrix-form oracle (``test_literals_agree_with_the_oracle``).
"""

from __future__ import annotations

import numpy as np
import pytest

from numbamlp.kernels.forward import gather_batch
from numbamlp.kernels.optimizers import Optimizer
from numbamlp.model import passes
from numbamlp.model.mlp import MLP
from numbamlp.model.network import Architecture, Parameters
from numbamlp.model.reference import loss_and_gradient
from numbamlp.model.workspace import Workspace
from numbamlp.training.trainer import TrainConfig, Trainer

X = [[1.0, 2.0], [0.5, -1.0]]
Y = [0, 1]
W1 = [[0.1, 0.2], [-0.3, 0.4]]
B1 = [0.0, 0.1]
W2 = [[0.5, -0.6], [0.7, 0.8]]
B2 = [0.1, -0.1]

# --- Forward pass ------------------------------------------------------------------------------
# (F.1) z^1_s = b^1 + W^1 x_s
#   z^1_1 = (0 + 0.1·1 + 0.2·2,   0.1 − 0.3·1 + 0.4·2)   = (0.5, 0.6)
#   z^1_2 = (0 + 0.1·0.5 − 0.2·1, 0.1 − 0.3·0.5 − 0.4·1) = (−0.15, −0.45)
Z1 = [[0.5, 0.6], [-0.15, -0.45]]
# (F.2) h^1 = σ(z^1) = 1 / (1 + e^{−z^1})
#   σ(0.5)   = 1/(1 + 0.6065306597) = 0.6224593312   σ(0.6)   = 1/(1 + 0.5488116361) = 0.6456563062
#   σ(−0.15) = 1/(1 + 1.1618342427) = 0.4625701547   σ(−0.45) = 1/(1 + 1.5683121855) = 0.3893607661
H1 = [[0.6224593312, 0.6456563062], [0.4625701547, 0.3893607661]]
# (F.1) z^2_s = b^2 + W^2 h^1_s
#   z^2_1 = (0.1 + 0.5·0.6224593312 − 0.6·0.6456563062,  −0.1 + 0.7·0.6224593312 + 0.8·0.6456563062)
#         = (0.1 + 0.3112296656 − 0.3873937837,          −0.1 + 0.4357215318 + 0.5165250450)
#         = (0.0238358819, 0.8522465768)
#   z^2_2 = (0.1 + 0.2312850773 − 0.2336164596,          −0.1 + 0.3237991083 + 0.3114886128)
#         = (0.0976686177, 0.5352877211)
Z2 = [[0.0238358819, 0.8522465768], [0.0976686177, 0.5352877211]]
# (F.3) f_s = softmax(z^2_s): f_{s,1} = σ(z^2_{s,1} − z^2_{s,2})
#   f_1: σ(0.0238358819 − 0.8522465768) = σ(−0.8284106950) = 0.3039812252, f_{1,2} = 0.6960187748
#   f_2: σ(0.0976686177 − 0.5352877211) = σ(−0.4376191034) = 0.3923084353, f_{2,2} = 0.6076915647
F = [[0.3039812252, 0.6960187748], [0.3923084353, 0.6076915647]]
# (L.1) ℓ_s = −log f_{s,Y_s}
#   ℓ_1 = −log 0.3039812252 = 1.1907893387     ℓ_2 = −log 0.6076915647 = 0.4980878206
LOSSES = [1.1907893387, 0.4980878206]
# (S.1) ℓ = (1.1907893387 + 0.4980878206) / 2
LOSS = 0.8444385796

# --- Backward pass -----------------------------------------------------------------------------
# (B.1) δ^2_s = f_s − 1_{Y_s}
#   δ^2_1 = (0.3039812252 − 1, 0.6960187748 − 0) = (−0.6960187748,  0.6960187748)
#   δ^2_2 = (0.3923084353 − 0, 0.6076915647 − 1) = ( 0.3923084353, −0.3923084353)
DELTA2 = [[-0.6960187748, 0.6960187748], [0.3923084353, -0.3923084353]]
# (B.3)+(S.1) ∇W^2 = (1/2) Σ_s δ^2_s (h^1_s)ᵀ
#   ∇W^2_11 = (−0.6960187748·0.6224593312 + 0.3923084353·0.4625701547)/2
#           = (−0.4332433811 + 0.1814701736)/2 = −0.1258866037
#   ∇W^2_12 = (−0.6960187748·0.6456563062 + 0.3923084353·0.3893607661)/2
#           = (−0.4493889112 + 0.1527495129)/2 = −0.1483196992
#   row 2 = −row 1, since δ^2_{s,2} = −δ^2_{s,1} when M = 2
GRAD_W2 = [[-0.1258866037, -0.1483196992], [0.1258866037, 0.1483196992]]
# (B.2)+(S.1) ∇b^2 = (1/2) Σ_s δ^2_s = ((−0.6960187748 + 0.3923084353)/2, …) = (−0.1518551698, …)
GRAD_B2 = [-0.1518551698, 0.1518551698]
# (B.4) ∇_{h^1} ℓ_s = (W^2)ᵀ δ^2_s
#   s = 1: (0.5·(−0.6960187748) + 0.7·0.6960187748, −0.6·(−0.6960187748) + 0.8·0.6960187748)
#        = (0.2·0.6960187748, 1.4·0.6960187748) = (0.1392037550, 0.9744262847)
#   s = 2: (0.2·(−0.3923084353), 1.4·(−0.3923084353)) = (−0.0784616871, −0.5492318094)
# (A.1) σ′(z^1) = h^1 (1 − h^1)
#   s = 1: (0.6224593312·0.3775406688, 0.6456563062·0.3543436938) = (0.2350037122, 0.2287842405)
#   s = 2: (0.4625701547·0.5374298453, 0.3893607661·0.6106392339) = (0.2485990067, 0.2377589599)
# (B.4) δ^1_s = ∇_{h^1} ℓ_s ⊙ σ′(z^1_s)
#   δ^1_1 = (0.1392037550·0.2350037122, 0.9744262847·0.2287842405)
#         = (0.0327133992, 0.2229333774)
#   δ^1_2 = (−0.0784616871·0.2485990067, −0.5492318094·0.2377589599)
#         = (−0.0195054975, −0.1305847837)
DELTA1 = [[0.0327133992, 0.2229333774], [-0.0195054975, -0.1305847837]]
# (B.3)+(S.1) ∇W^1 = (1/2) Σ_s δ^1_s x_sᵀ
#   ∇W^1_11 = (0.0327133992·1 + (−0.0195054975)·0.5)/2
#           = (0.0327133992 − 0.0097527487)/2 = 0.0114803252
#   ∇W^1_12 = (0.0327133992·2 + (−0.0195054975)·(−1))/2
#           = (0.0654267983 + 0.0195054975)/2 = 0.0424661479
#   ∇W^1_21 = (0.2229333774·1 + (−0.1305847837)·0.5)/2
#           = (0.2229333774 − 0.0652923919)/2 = 0.0788204928
#   ∇W^1_22 = (0.2229333774·2 + (−0.1305847837)·(−1))/2
#           = (0.4458667549 + 0.1305847837)/2 = 0.2882257693
GRAD_W1 = [[0.0114803252, 0.0424661479], [0.0788204928, 0.2882257693]]
# (B.2)+(S.1) ∇b^1 = (1/2) Σ_s δ^1_s
#                  = ((0.0327133992 − 0.0195054975)/2, (0.2229333774 − 0.1305847837)/2)
GRAD_B1 = [0.0066039509, 0.0461742968]

# --- One SGD step, γ = 0.1 -----------------------------------------------------------------------
# (U.1) θ ← θ − 0.1 ∇θ
#   W^1 ← [[0.1 − 0.0011480325, 0.2 − 0.0042466148], [−0.3 − 0.0078820493, 0.4 − 0.0288225769]]
NEW_W1 = [[0.0988519675, 0.1957533852], [-0.3078820493, 0.3711774231]]
#   b^1 ← [0.0 − 0.0006603951, 0.1 − 0.0046174297]
NEW_B1 = [-0.0006603951, 0.0953825703]
#   W^2 ← [[0.5 + 0.0125886604, −0.6 + 0.0148319699], [0.7 − 0.0125886604, 0.8 − 0.0148319699]]
NEW_W2 = [[0.5125886604, -0.5851680301], [0.6874113396, 0.7851680301]]
#   b^2 ← [0.1 + 0.0151855170, −0.1 − 0.0151855170]
NEW_B2 = [0.1151855170, -0.1151855170]

DTYPES = ["float64", "float32"]
TOL = {"float64": 1e-9, "float32": 1e-6}  # the literals carry 10 decimals


def hand_model(dtype: str) -> MLP:
    arch = Architecture((2, 2, 2), ("sigmoid",), "softmax")
    params = Parameters.zeros(arch, dtype)
    params.W[1][...], params.b[1][...] = W1, B1
    params.W[2][...], params.b[2][...] = W2, B2
    return MLP(arch, params)


def run_passes(dtype: str):
    """Forward, loss and backward on the two samples, keeping every intermediate buffer."""
    model = hand_model(dtype)
    ws = Workspace(model.architecture, 2, dtype)
    ws.indices[:] = [0, 1]
    gather_batch(ws.h[0], np.array(X, dtype=dtype), ws.indices, np.dtype(dtype).type(1.0))
    y = np.array(Y, dtype=np.int64)
    passes.forward(ws, model.params)
    loss = passes.loss(ws, model.params, y)
    grads = Parameters.zeros(model.architecture, dtype)
    passes.backward(ws, model.params, grads, y)
    return model, ws, loss, grads


def approx(values, dtype):
    return pytest.approx(np.array(values), abs=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_pass_by_hand(dtype):
    """FB §2 (def.): z^1 (F.1), h^1 = σ(z^1) (F.2, A.1), z^2 (F.1), f = softmax(z^2) (F.3),
    ℓ_s (L.1) and the minibatch mean (S.1)."""
    _, ws, loss, _ = run_passes(dtype)
    assert ws.z[1] == approx(Z1, dtype)
    assert ws.h[1] == approx(H1, dtype)
    assert ws.z[2] == approx(Z2, dtype)
    assert ws.f == approx(F, dtype)
    assert ws.losses == approx(LOSSES, dtype)
    assert loss == pytest.approx(LOSS, abs=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_pass_by_hand(dtype):
    """FB §2 Q2–Q3: δ^2 = f − 1_Y (B.1), ∇W^2 (B.3), ∇b^2 (B.2), δ^1 = (W^2)ᵀδ^2 ⊙ σ′(z^1)
    (B.4), ∇W^1 (B.3), ∇b^1 (B.2), each the mean over the two samples (S.1)."""
    _, ws, _, grads = run_passes(dtype)
    assert ws.delta[2] == approx(DELTA2, dtype)
    assert grads.W[2] == approx(GRAD_W2, dtype)
    assert grads.b[2] == approx(GRAD_B2, dtype)
    assert ws.delta[1] == approx(DELTA1, dtype)
    assert grads.W[1] == approx(GRAD_W1, dtype)
    assert grads.b[1] == approx(GRAD_B1, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_sgd_step_by_hand(dtype):
    """FB §1 Q2 (U.1): θ_1 = θ_0 − γ ∇θ ℓ(θ_0) with γ = 0.1, applied by the optimizer."""
    model, _, _, grads = run_passes(dtype)
    Optimizer.create("sgd", model.architecture.n_parameters, model.dtype, lr=0.1).step(
        model.params.theta, grads.theta, 0.1
    )
    assert model.params.W[1] == approx(NEW_W1, dtype)
    assert model.params.b[1] == approx(NEW_B1, dtype)
    assert model.params.W[2] == approx(NEW_W2, dtype)
    assert model.params.b[2] == approx(NEW_B2, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_training_step_by_hand(dtype):
    """The same step through the training loop: one epoch of one minibatch holding both samples
    (their order within the batch does not change the mean)."""
    model = hand_model(dtype)
    config = TrainConfig(epochs=1, batch_size=2, optimizer="sgd", lr=0.1, sampling="shuffle")
    trainer = Trainer(model, np.array(X), np.array(Y), config, np.random.default_rng(0))
    metrics = trainer.train_epoch()
    assert trainer.step_count == 1
    assert metrics.train_loss == pytest.approx(LOSS, abs=TOL[dtype])  # ℓ(θ_0), before the step
    assert metrics.lr == 0.1
    assert model.params.W[1] == approx(NEW_W1, dtype)
    assert model.params.b[1] == approx(NEW_B1, dtype)
    assert model.params.W[2] == approx(NEW_W2, dtype)
    assert model.params.b[2] == approx(NEW_B2, dtype)


def test_literals_agree_with_the_oracle():
    """Provenance of the literals: the matrix-form oracle gives the same loss and gradient."""
    arch = Architecture((2, 2, 2), ("sigmoid",), "softmax")
    W = [None, np.array(W1), np.array(W2)]
    b = [None, np.array(B1), np.array(B2)]
    loss, gW, gb = loss_and_gradient(arch, W, b, np.array(X), np.array(Y))
    assert loss == pytest.approx(LOSS, abs=1e-10)
    for got, expected in ((gW[1], GRAD_W1), (gb[1], GRAD_B1), (gW[2], GRAD_W2), (gb[2], GRAD_B2)):
        assert got == pytest.approx(np.array(expected), abs=1e-10)
