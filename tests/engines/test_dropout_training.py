"""Dropout (D.1–D.3) in the training engines: the plain kernels and the fused engine agree, the
fused engine is bitwise the same for 1 and 2 threads, rate 0 is bitwise the run without the
option, and a run interrupted and resumed is bitwise the straight one. (1 vs 2 MPI ranks:
tests/engines/test_distributed.py; the device: tests/engines/test_cuda_simulator.py.)

The masks are a function of (seed, step, sample row, layer, unit) evaluated inside the kernels:
nothing here depends on who computes a sample, or when the run was stopped.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import numbamlp
from numbamlp.errors import NumbamlpError
from numbamlp.model.mlp import MLP
from numbamlp.training.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from numbamlp.training.trainer import TrainConfig, Trainer, generators

needs_two_threads = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads"
)
EPOCHS = 2


def problem(n: int = 700, d: int = 20, classes: int = 4):
    rng = np.random.default_rng(123)
    X = rng.normal(size=(n, d))
    y = np.argmax(X @ rng.normal(size=(d, classes)), axis=1)
    return X, y


def trainer(engine: str, dropout, dtype: str = "float64", sampling: str = "shuffle") -> Trainer:
    X, y = problem()
    init_rng, sampling_rng = generators(seed=5)
    model = MLP.create(20, [16, 12], 4, activations=["tanh", "sigmoid"], dtype=dtype,
                       rng=init_rng)  # fmt: skip
    config = TrainConfig(epochs=EPOCHS, batch_size=64, lr=1e-2, engine=engine, sampling=sampling,
                         dropout=dropout, dropout_seed=5)  # fmt: skip
    return Trainer(model, X, y, config, sampling_rng)


def train(engine: str, dropout, **kwargs) -> tuple[np.ndarray, list[float]]:
    t = trainer(engine, dropout, **kwargs)
    losses = [t.train_epoch().train_loss for _ in range(EPOCHS)]
    return t.model.params.theta.copy(), losses


@pytest.mark.parametrize("sampling", ["shuffle", "iid"])
def test_plain_and_fused_engines_agree(sampling):
    """Both engines draw the same masks (same step p, same rows i_s), so they train the same
    network up to the fused engine's order of summation (as tests/engines/test_fused.py)."""
    fused, fused_losses = train("fused", (0.5, 0.2), sampling=sampling)
    plain, plain_losses = train("kernels", (0.5, 0.2), sampling=sampling)
    np.testing.assert_allclose(fused, plain, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(fused_losses, plain_losses, rtol=1e-9)
    without, _ = train("fused", ())
    assert np.abs(fused - without).max() > 1e-3  # dropout did something


@needs_two_threads
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_one_and_two_threads_bitwise(dtype, restore_threads):
    numba.set_num_threads(1)
    one, one_losses = train("fused", (0.3,), dtype=dtype)
    numba.set_num_threads(2)
    two, two_losses = train("fused", (0.3,), dtype=dtype)
    assert one.tobytes() == two.tobytes()
    assert one_losses == two_losses


@pytest.mark.parametrize("engine", ["fused", "kernels"])
def test_rate_zero_is_bitwise_the_run_without_dropout(engine):
    without, losses = train(engine, ())
    zero, zero_losses = train(engine, (0.0,))
    assert without.tobytes() == zero.tobytes() and losses == zero_losses


@pytest.mark.parametrize("engine", ["fused", "kernels"])
@pytest.mark.parametrize("stop_at", [(1, 3), (2, 5)], ids=lambda s: f"epoch{s[0]}-batch{s[1]}")
def test_interrupt_and_resume_is_bitwise_the_straight_run(engine, stop_at, tmp_path):
    """Stop after q minibatches of epoch e, write the checkpoint, resume in a new Trainer (the
    step counter p comes back with the optimizer; the masks need nothing else)."""
    straight = trainer(engine, (0.5, 0.2))
    for _ in range(EPOCHS):
        straight.train_epoch()
    epoch, batch = stop_at
    first = trainer(engine, (0.5, 0.2))
    for _ in range(epoch - 1):
        first.train_epoch()
    assert first.run_batches(until=batch) is None
    path = tmp_path / "ckpt.npz"
    run = {"seed": 5, "config": {}, "data": {}, "fingerprint": fingerprint(first.X, first.y)}
    save_checkpoint(path, first.model, first.optimizer, run, first.run_state(), [])
    ckpt = load_checkpoint(path)
    X, y = problem()
    _, sampling_rng = generators(seed=5)
    config = TrainConfig(epochs=EPOCHS, batch_size=64, lr=1e-2, engine=engine,
                         dropout=(0.5, 0.2), dropout_seed=5)  # fmt: skip
    second = Trainer(ckpt.model, X, y, config, sampling_rng, optimizer=ckpt.optimizer)
    second.restore(ckpt.trainer)
    while second.epoch < EPOCHS or not second.at_epoch_boundary:
        second.train_epoch()
    assert second.model.params.theta.tobytes() == straight.model.params.theta.tobytes()


def test_fit_dropout_option_checked_recorded_and_kept_on_resume(tmp_path):
    """``fit(dropout=…)``: validated, part of the run's configuration, refused on resume with
    another value; prediction uses no mask (the same θ predicts the same with or without it)."""
    X, y = problem(300)
    with pytest.raises(NumbamlpError, match="`dropout`"):
        numbamlp.fit(X, y, hidden=[8], dropout=1.0, epochs=1, verbose=0)
    with pytest.raises(NumbamlpError, match="`dropout`"):
        numbamlp.fit(X, y, hidden=[8, 8], dropout="0.1,0.2,0.3", epochs=1, verbose=0)
    with pytest.raises(NumbamlpError, match="`dropout`"):
        numbamlp.fit(X, y, hidden=[], dropout=0.5, epochs=1, verbose=0)
    a = numbamlp.fit(X, y, hidden=[8, 8], dropout="0.2,0.5", epochs=2, verbose=0,
                     checkpoint_dir=tmp_path / "ck")  # fmt: skip
    b = numbamlp.fit(X, y, hidden=[8, 8], dropout=[0.2, 0.5], epochs=2, verbose=0)
    c = numbamlp.fit(X, y, hidden=[8, 8], epochs=2, verbose=0)
    assert a.model.params.theta.tobytes() == b.model.params.theta.tobytes()
    assert a.model.params.theta.tobytes() != c.model.params.theta.tobytes()
    with pytest.raises(NumbamlpError, match="`dropout`"):
        numbamlp.fit(X, y, hidden=[8, 8], dropout=0.3, epochs=3, verbose=0,
                     resume=tmp_path / "ck")  # fmt: skip
    d = numbamlp.fit(X, y, hidden=[8, 8], epochs=3, verbose=0, resume=tmp_path / "ck")
    e = numbamlp.fit(X, y, hidden=[8, 8], dropout="0.2,0.5", epochs=3, verbose=0)
    assert d.model.params.theta.tobytes() == e.model.params.theta.tobytes()


@pytest.mark.parametrize("engine", ["fused", "kernels"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_a_rate_that_keeps_every_unit_runs_the_dropout_code_and_changes_nothing(
    engine, dtype, activation
):
    """p = 1e-30: D.2 and D.3 run on every hidden row (⌈p 2^32⌉ = 1), yet every unit is kept
    (a word is 0 with probability 2^-32) and 1/(1 − p) is 1.0 in either precision: θ must be
    bitwise that of the run without dropout. So the dropout path — the masks' application and
    the fused engine's φ′ taken again from z^m (σ as F.2 computed it) — adds no rounding."""
    X, y = problem()
    thetas = []
    for rates in ((), (1e-30,)):
        init_rng, sampling_rng = generators(seed=5)
        model = MLP.create(20, [16, 12], 4, activations=activation, dtype=dtype, rng=init_rng)
        config = TrainConfig(epochs=1, batch_size=64, lr=1e-2, engine=engine, dropout=rates,
                             dropout_seed=5)  # fmt: skip
        t = Trainer(model, X, y, config, sampling_rng)
        if rates and engine == "fused":
            assert (t.engine.plan.drop_thresholds[1:3] == 1).all()
        t.train_epoch()
        thetas.append(model.params.theta.tobytes())
    assert thetas[0] == thetas[1]


def test_a_run_without_a_seed_keeps_its_dropout_key_across_a_resume(tmp_path):
    """``seed=None``: the key's seed is drawn once and kept in the checkpoint, so the resumed
    run draws the masks the interrupted one would have."""
    X, y = problem(300)
    numbamlp.fit(X, y, hidden=[8], dropout=0.5, seed=None, epochs=1, verbose=0,
                 checkpoint_dir=tmp_path / "ck")  # fmt: skip
    drawn = load_checkpoint(tmp_path / "ck").trainer["dropout_seed"]
    assert isinstance(drawn, int)
    numbamlp.fit(X, y, hidden=[8], epochs=2, verbose=0, resume=tmp_path / "ck")
    assert load_checkpoint(tmp_path / "ck").trainer["dropout_seed"] == drawn
