"""L2 weight decay (R.1): ℓ_λ(θ) = ℓ(θ) + (λ/2) Σ_m Σ_{i,j} (W^m_{ij})², weights only.

Its gradient ∂ℓ_λ/∂W^m_{ij} = ∂ℓ/∂W^m_{ij} + λ W^m_{ij} (biases unchanged) against central
differences of ℓ_λ and against the matrix-form oracle; both engines agree with λ > 0 for every
optimizer; λ = 0 calls no decay code at all; the decay shrinks the weights; thread counts change
no bit; and the command line validates λ and keeps it across --resume.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from click.testing import CliRunner

from numbamlp.cli.commands import main
from numbamlp.engines.fused import FusedPlan
from numbamlp.errors import NumbamlpError
from numbamlp.kernels.optimizers import OPTIMIZERS, Optimizer
from numbamlp.model import passes, reference
from numbamlp.model.gradcheck import check_gradient
from numbamlp.model.mlp import MLP
from numbamlp.model.modelio import load_model, save_model
from numbamlp.training.checkpoint import load_checkpoint
from numbamlp.training.trainer import TrainConfig, Trainer, generators

LAMBDA = 0.3


def small_problem(L: int, activation: str, head: str = "softmax", seed: int = 0):
    """A float64 network of depth L with random biases, and a batch holding every class."""
    rng = np.random.default_rng(seed)
    model = MLP.create(
        4, [5, 4, 3][: L - 1], 3, activations=activation, head=head, dtype="float64", rng=rng
    )
    for k in range(1, L + 1):
        model.params.b[k][...] = rng.normal(scale=0.5, size=model.params.b[k].shape)
    X = rng.normal(size=(6, 4))
    y = np.arange(6) % 3
    return model, X, y


# --- the gradient of ℓ_λ -------------------------------------------------------------------------

CASES = [
    (1, "identity", "softmax"),
    (2, "sigmoid", "softmax"),
    (2, "tanh", "modified-softmax"),
    (3, "softplus", "softmax"),
    (3, "leaky_relu", "modified-softmax"),
    (4, "tanh", "softmax"),
]


@pytest.mark.parametrize("L,activation,head", CASES)
def test_gradient_of_the_penalised_loss_matches_central_differences(L, activation, head):
    """Central differences of ℓ_λ (float64, ε = 1e-6) — the penalty is part of the objective
    whose differences are taken — equal the kernels' ∇ℓ_λ for every W^k and b^k."""
    model, X, y = small_problem(L, activation, head)
    for check in check_gradient(model, X, y, eps=1e-6, weight_decay=LAMBDA):
        assert check.relative_error < 1e-7, check


@pytest.mark.parametrize("L,activation,head", CASES)
def test_penalised_loss_and_gradient_match_the_matrix_form_oracle(L, activation, head):
    model, X, y = small_problem(L, activation, head)
    loss, grads = model.loss_and_gradient(X, y, weight_decay=LAMBDA)
    ref_loss, gW, gb = reference.loss_and_gradient(
        model.architecture, model.params.W, model.params.b, X, y, weight_decay=LAMBDA
    )
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert model.loss(X, y, weight_decay=LAMBDA) == pytest.approx(ref_loss, rel=1e-12)
    for k in range(1, L + 1):
        np.testing.assert_allclose(grads.W[k], gW[k], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(grads.b[k], gb[k], rtol=1e-12, atol=1e-15)


def test_decay_adds_lambda_w_to_the_weights_and_leaves_the_biases_bitwise():
    model, X, y = small_problem(3, "tanh")
    loss0, g0 = model.loss_and_gradient(X, y)
    loss, g = model.loss_and_gradient(X, y, weight_decay=LAMBDA)
    W = model.params.W
    assert loss - loss0 == pytest.approx(
        LAMBDA / 2 * sum(float(np.sum(W[k] ** 2)) for k in (1, 2, 3)), rel=1e-12
    )
    for k in (1, 2, 3):
        np.testing.assert_allclose(g.W[k] - g0.W[k], LAMBDA * W[k], rtol=1e-12, atol=1e-15)
        assert g.b[k].tobytes() == g0.b[k].tobytes()


def test_lambda_zero_calls_no_decay_kernel(monkeypatch):
    """With λ = 0 the kernels path computes exactly what it did without decay: the R.1 kernels
    are never called (the fused engine's region 2 skips its R.1 helper the same way)."""

    def refuse(*args):
        raise AssertionError("an R.1 kernel ran with λ = 0")

    monkeypatch.setattr(passes, "weight_decay_gradient", refuse)
    monkeypatch.setattr(passes, "weight_penalty", refuse)
    model, X, y = small_problem(2, "sigmoid")
    model.loss_and_gradient(X, y, weight_decay=0.0)
    model.loss(X, y, weight_decay=0.0)
    trainer = Trainer(model, X, y, TrainConfig(epochs=1, batch_size=4, engine="kernels"), rng())
    trainer.train_epoch()


# --- training ----------------------------------------------------------------------------------


def rng(seed: int = 4) -> np.random.Generator:
    return np.random.default_rng(seed)


def blobs(n: int = 70, d: int = 6, classes: int = 3, seed: int = 2):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, d))
    y = np.argmax(X @ r.normal(size=(d, classes)), axis=1)
    return X, y


def train(
    engine: str,
    optimizer: str = "adam",
    weight_decay: float = LAMBDA,
    dtype: str = "float64",
    epochs: int = 2,
    hidden=(5, 3),
    batch_size: int = 16,
) -> MLP:
    """Two epochs of B = 16 on 70 samples (a short last batch). With B = 16 region 1's blocks
    have 4 samples, so the layers of 3 units have gradient shards and the one of 5 has not: both
    ways region 2 forms its sums meet the decay."""
    X, y = blobs()
    init_rng, sampling_rng = generators(seed=3)
    model = MLP.create(X.shape[1], list(hidden), 3, activations="tanh", dtype=dtype, rng=init_rng)
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        engine=engine,
        weight_decay=weight_decay,
    )
    trainer = Trainer(model, X, y, config, sampling_rng)
    for _ in range(epochs):
        trainer.train_epoch()
    return model


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_fused_engine_matches_the_kernels_with_decay(optimizer):
    """Region 2 adds Bλ W^m_{ij} to the summed gradient before (1/B)·; the kernels add λW to the
    mean: the same ∇ℓ_λ to rounding, for every optimizer (Adam included: coupled decay)."""
    fused = train("fused", optimizer)
    kernels = train("kernels", optimizer)
    plain = train("kernels", optimizer, weight_decay=0.0)
    theta, ref = fused.params.theta, kernels.params.theta
    assert np.abs(theta - ref).max() <= 1e-12 * np.abs(ref).max()
    assert np.abs(ref - plain.params.theta).max() > 1e-4  # the decay changed the run


@pytest.mark.parametrize("engine", ["fused", "kernels"])
def test_lambda_zero_is_bitwise_the_run_without_decay(engine):
    """TrainConfig(weight_decay=0) — the default — and a plan built without the argument give
    the same bytes (float32, the default run's precision)."""
    a = train(engine, weight_decay=0.0, dtype="float32")
    X, y = blobs()
    init_rng, sampling_rng = generators(seed=3)
    b = MLP.create(X.shape[1], [5, 3], 3, activations="tanh", dtype="float32", rng=init_rng)
    trainer = Trainer(b, X, y, TrainConfig(epochs=2, batch_size=16, engine=engine), sampling_rng)
    if engine == "fused":
        plan = FusedPlan(b.architecture, 16, b.dtype, trainer.optimizer)  # no weight_decay
        assert plan.coef.tobytes() == trainer.engine.plan.coef.tobytes()
    trainer.train_epoch()
    trainer.train_epoch()
    assert a.params.theta.tobytes() == b.params.theta.tobytes()


@pytest.mark.parametrize("engine", ["fused", "kernels"])
def test_decay_shrinks_the_weights_not_the_biases_directly(engine):
    """With a strong λ the weights end much smaller than without; one SGD step changes each
    weight by exactly −γλW more than the undecayed step, and each bias not at all."""
    strong = train(engine, "sgd", weight_decay=1.0, epochs=3)
    free = train(engine, "sgd", weight_decay=0.0, epochs=3)
    for k in (1, 2, 3):
        assert np.linalg.norm(strong.params.W[k]) < 0.8 * np.linalg.norm(free.params.W[k])

    X, y = blobs(n=16)
    steps = {}
    for lam in (0.0, 0.5):
        init_rng, sampling_rng = generators(seed=3)
        model = MLP.create(X.shape[1], [5, 3], 3, activations="tanh", dtype="float64", rng=init_rng)
        before = model.params.theta.copy()
        config = TrainConfig(
            epochs=1, batch_size=16, optimizer="sgd", lr=0.1, engine=engine, weight_decay=lam
        )
        Trainer(model, X, y, config, sampling_rng).train_epoch()
        steps[lam] = (model, before)
    decayed, before = steps[0.5]
    undecayed, _ = steps[0.0]
    W0 = MLP(decayed.architecture, type(decayed.params)(decayed.architecture, before)).params.W
    for k in (1, 2, 3):
        np.testing.assert_allclose(
            decayed.params.W[k] - undecayed.params.W[k], -0.1 * 0.5 * W0[k], atol=1e-15
        )
        assert decayed.params.b[k].tobytes() == undecayed.params.b[k].tobytes()


needs_two_threads = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads"
)


@needs_two_threads
@pytest.mark.parametrize("engine", ["fused", "kernels"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_and_two_threads_give_bitwise_identical_theta_with_decay(engine, dtype):
    before = numba.get_num_threads()
    try:
        bits = []
        for threads in (1, 2):
            numba.set_num_threads(threads)
            bits.append(train(engine, "adam", dtype=dtype).params.theta.tobytes())
    finally:
        numba.set_num_threads(before)
    assert bits[0] == bits[1]


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf")])
def test_bad_lambda_is_refused_by_the_python_api(value):
    with pytest.raises(NumbamlpError, match="weight decay"):
        TrainConfig(weight_decay=value).validate()
    model = MLP.create(3, [2], 2, rng=rng())
    with pytest.raises(NumbamlpError, match="weight decay"):
        FusedPlan(
            model.architecture,
            4,
            model.dtype,
            Optimizer.create("sgd", model.architecture.n_parameters, model.dtype),
            weight_decay=value,
        )


# --- the command line ---------------------------------------------------------------------------


def run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("command", ["train", "gradcheck"])
@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_cli_refuses_a_bad_lambda(command, value, tmp_path):
    result = run(command, "--weight-decay", value)
    assert result.exit_code == 2, result.output
    assert "--weight-decay" in result.output and "Traceback" not in result.output


def test_cli_gradcheck_checks_the_penalised_gradient():
    result = run("gradcheck", "--weight-decay", "0.5", "--hidden", "5,4", "--activation", "tanh")
    assert result.exit_code == 0, result.output
    assert "weight decay λ = 0.5" in result.output and "ok: largest relative error" in result.output


@pytest.fixture
def data(tmp_path):
    X, y = blobs(n=200, d=4)
    Xt, yt = blobs(n=40, d=4, seed=5)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    np.savez(tmp_path / "test.npz", X=Xt, y=yt)
    return tmp_path / "train.npz", tmp_path / "test.npz"


def train_args(data, *more) -> list:
    train_file, test_file = data
    return [
        "train", "--train-file", train_file, "--test-file", test_file, "--hidden", "8",
        "--batch-size", "32", "--lr", "0.05", "-q", *more,
    ]  # fmt: skip


def same_model(a, b) -> bool:
    ma, mb = load_model(a), load_model(b)
    return ma.model.params.theta.tobytes() == mb.model.params.theta.tobytes()


def test_cli_decay_is_used_recorded_and_kept_by_resume(data, tmp_path):
    decay = ("--weight-decay", "0.01")
    full = run(*train_args(data, *decay, "--epochs", "2", "--save", tmp_path / "full.npz"))
    assert full.exit_code == 0, full.output
    plain = run(*train_args(data, "--epochs", "2", "--save", tmp_path / "plain.npz"))
    assert plain.exit_code == 0, plain.output
    assert not same_model(tmp_path / "full.npz", tmp_path / "plain.npz")
    assert load_model(tmp_path / "full.npz").metadata["weight_decay"] == 0.01

    part = run(*train_args(data, *decay, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck"))
    assert part.exit_code == 0, part.output
    before = (tmp_path / "ck" / "checkpoint.npz").read_bytes()
    other = run("train", "--resume", tmp_path / "ck", "--weight-decay", "0.02")
    assert other.exit_code == 2 and "--weight-decay" in other.output
    assert (tmp_path / "ck" / "checkpoint.npz").read_bytes() == before
    rest = run("train", "--resume", tmp_path / "ck", "--epochs", "2", "-q",
               "--save", tmp_path / "resumed.npz")  # fmt: skip
    assert rest.exit_code == 0, rest.output
    assert same_model(tmp_path / "full.npz", tmp_path / "resumed.npz")


def test_cli_checkpoint_from_before_weight_decay_resumes_without_it(data, tmp_path):
    """A checkpoint written before --weight-decay existed has no such option: it resumes with
    λ = 0, the value every run then had (on data of its own too: the default 1/n came later)."""
    old_run = ("--weight-decay", "0")
    plain = run(*train_args(data, "--epochs", "2", *old_run, "--save", tmp_path / "plain.npz"))
    assert plain.exit_code == 0, plain.output
    part = run(*train_args(data, "--epochs", "1", *old_run, "--checkpoint-dir", tmp_path / "ck"))
    assert part.exit_code == 0, part.output
    path = tmp_path / "ck" / "checkpoint.npz"
    loaded = load_model(path)
    del loaded.metadata["checkpoint"]["run"]["options"]["weight_decay"]
    loaded.metadata.pop("weight_decay", None)
    save_model(path, loaded.model, loaded.optimizer, loaded.metadata)
    assert "weight_decay" not in load_checkpoint(path).run["options"]
    rest = run("train", "--resume", tmp_path / "ck", "--epochs", "2", "-q",
               "--save", tmp_path / "resumed.npz")  # fmt: skip
    assert rest.exit_code == 0, rest.output
    assert same_model(tmp_path / "plain.npz", tmp_path / "resumed.npz")
