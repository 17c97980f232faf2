"""Training on the simulated device equals training on the CPU.

The CPU reference is Trainer with the ``kernels`` engine, whose steps call the CPU twins of the
device kernels in the same order. Both trainers start from the same θ and draw the same
minibatches from generators with the same seed, so after one step (and after an epoch) θ, the
optimizer state and the loss must agree within atol + |cpu|·eps.
"""

from __future__ import annotations

import numpy as np
import pytest

from numbamlp.kernels.optimizers import OPTIMIZERS
from numbamlp.model.mlp import MLP
from numbamlp.training.trainer import TrainConfig, Trainer, TrainingDiverged, generators

N, D0, CLASSES = 13, 6, 3
#: Tiny blocks, so that every kernel runs several.
TINY = {"threads_1d": 2, "threads_2d": 2}
TOL = {"float32": (1e-6, 1e-5), "float64": (1e-13, 1e-11)}


def data():
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, size=(N, D0), dtype=np.uint8)
    y = rng.integers(0, CLASSES, size=N)
    return X, y


def pair(
    optimizer="adam", head="softmax", dtype="float64", sampling="shuffle", lr=None,
    weight_decay=0.0, sample_weight=None, dropout=(),
):  # fmt: skip
    """A CPU trainer and a device trainer built from the same seed (4 steps per epoch); with the
    identity head a regressor of 2 targets."""
    X, y = data()
    outputs = CLASSES
    if head == "identity":
        outputs = 2
        y = np.random.default_rng(4).normal(size=(N, outputs))
    trainers = []
    for kind in ("cpu", "gpu"):
        init_rng, rng = generators(5)
        model = MLP.create(
            D0, [5, 4], outputs, activations=["tanh", "softplus"], head=head, dtype=dtype,
            rng=init_rng,
        )  # fmt: skip
        config = TrainConfig(
            epochs=2, batch_size=4, optimizer=optimizer, lr=lr, sampling=sampling,
            engine="kernels", weight_decay=weight_decay, dropout=dropout, dropout_seed=5,
        )  # fmt: skip
        if kind == "cpu":
            trainers.append(
                Trainer(model, X, y, config, rng, scale=1 / 255, sample_weight=sample_weight)
            )
        else:
            trainers.append(
                Trainer(
                    model,
                    X,
                    y,
                    config,
                    rng,
                    scale=1 / 255,
                    device="cuda",
                    engine_options=TINY,
                    sample_weight=sample_weight,
                )  # fmt: skip
            )
    return trainers


def assert_close(gpu, cpu, dtype):
    atol, eps = TOL[dtype]
    np.testing.assert_array_less(np.abs(gpu - cpu), atol + np.abs(cpu) * eps + 1e-300)


def assert_same_state(cpu: Trainer, gpu: Trainer, dtype: str) -> None:
    gpu.host_state()
    assert gpu.step_count == cpu.step_count
    assert_close(gpu.model.params.theta, cpu.model.params.theta, dtype)
    assert set(gpu.optimizer.state) == set(cpu.optimizer.state)
    for key, value in cpu.optimizer.state.items():
        assert_close(gpu.optimizer.state[key], value, dtype)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_one_step_equals_the_cpu_step(optimizer):
    cpu, gpu = pair(optimizer)
    theta0 = cpu.model.params.theta.copy()
    cpu.train_steps(1)
    gpu.train_steps(1)
    assert not np.array_equal(cpu.model.params.theta, theta0)  # the step did move θ
    assert_same_state(cpu, gpu, "float64")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_weight_decay_steps_equal_the_cpu_steps(optimizer):
    """With λ > 0 (R.1) the device adds λW to ∇W as the CPU does; the decay moved θ."""
    cpu, gpu = pair(optimizer, weight_decay=0.5)
    plain, _ = pair(optimizer)
    for trainer in (cpu, gpu, plain):
        trainer.train_steps(3)
    assert_same_state(cpu, gpu, "float64")
    assert not np.allclose(cpu.model.params.theta, plain.model.params.theta)


@pytest.mark.parametrize("head", ["softmax", "modified-softmax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_epochs_equal_the_cpu_epochs(head, dtype):
    """Two epochs (a short last batch each), both heads and precisions: θ, state, loss."""
    cpu, gpu = pair("momentum", head, dtype)
    for _ in range(2):
        cpu_metrics = cpu.train_epoch()
        gpu_metrics = gpu.train_epoch()
        assert gpu_metrics.epoch == cpu_metrics.epoch
        assert gpu_metrics.lr == cpu_metrics.lr
        assert abs(gpu_metrics.train_loss - cpu_metrics.train_loss) <= 1e-5 * cpu_metrics.train_loss
        assert gpu_metrics.train_accuracy == cpu_metrics.train_accuracy  # the same counts
        assert np.array_equal(gpu.batch_correct, cpu.batch_correct)
    assert_same_state(cpu, gpu, dtype)
    X, y = data()
    assert gpu.accuracy(X, y, 1 / 255) == float(np.mean(cpu.model.predict(X, 1 / 255) == y))


def test_iid_sampling_draws_the_same_batches():
    cpu, gpu = pair("sgd", sampling="iid")
    cpu.train_epoch()
    gpu.train_epoch()
    assert_same_state(cpu, gpu, "float64")


def test_state_round_trips_through_the_host():
    """from_host() puts a checkpoint's θ and optimizer state on the device; to_host() reads
    them back unchanged; training then goes on from them exactly as on the CPU."""
    cpu, gpu = pair("adam")
    cpu.train_steps(2)
    # A "checkpoint" of the CPU run, loaded into the device trainer's host-side objects.
    gpu.model.params.theta[:] = cpu.model.params.theta
    for key, value in cpu.optimizer.state.items():
        gpu.optimizer.state[key][:] = value
    gpu.optimizer.step_count = cpu.optimizer.step_count
    gpu.engine.from_host()
    gpu.model.params.theta[:] = 0.0  # to_host must overwrite these
    for value in gpu.optimizer.state.values():
        value[:] = 0.0
    gpu.engine.to_host()
    np.testing.assert_array_equal(gpu.model.params.theta, cpu.model.params.theta)
    for key, value in cpu.optimizer.state.items():
        np.testing.assert_array_equal(gpu.optimizer.state[key], value)
    gpu.restore(cpu.run_state())  # the position: mid-epoch, its minibatches drawn again
    cpu.train_steps(1)
    gpu.train_steps(1)
    assert_same_state(cpu, gpu, "float64")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator computes NaN in Python
def test_divergence_is_reported():
    _, gpu = pair("sgd", lr=1e300)
    with pytest.raises(TrainingDiverged, match="training diverged"):
        gpu.train_epoch()


@pytest.mark.parametrize("stop_after", [1, 6])  # mid-epoch 1; mid-epoch 2 (4 steps per epoch)
def test_device_run_resumed_from_a_checkpoint_is_bitwise_the_straight_run(tmp_path, stop_after):
    """Checkpoints work on the device as on the CPU: stop after some minibatches, write the
    checkpoint (θ and optimizer state come back from the device), resume in a new
    device trainer, finish: the same bits as the device run that never stopped."""
    from numbamlp.training.checkpoint import fingerprint, load_checkpoint, save_checkpoint

    X, y = data()

    def device_trainer(model=None, optimizer=None):
        init_rng, rng = generators(5)
        model = model or MLP.create(D0, [5], CLASSES, dtype="float32", rng=init_rng)
        config = TrainConfig(epochs=3, batch_size=4, lr=0.05)
        return Trainer(
            model, X, y, config, rng, optimizer, 1 / 255, device="cuda", engine_options=TINY
        )

    straight = device_trainer()
    for _ in range(3):
        straight.train_epoch()
    straight.host_state()

    first = device_trainer()
    first.train_steps(stop_after)
    first.host_state()
    run = {"seed": 5, "config": {}, "data": {}, "fingerprint": fingerprint(X, y)}
    save_checkpoint(tmp_path / "c.npz", first.model, first.optimizer, run, first.run_state(), [])

    ckpt = load_checkpoint(tmp_path / "c.npz")
    second = device_trainer(ckpt.model, ckpt.optimizer)
    second.restore(ckpt.trainer)
    while second.epoch < 3 or not second.at_epoch_boundary:
        second.train_epoch()
    second.host_state()
    assert second.step_count == straight.step_count == 12
    assert second.model.params.theta.tobytes() == straight.model.params.theta.tobytes()
    for name, value in straight.optimizer.state.items():
        assert second.optimizer.state[name].tobytes() == value.tobytes()


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regression_epochs_equal_the_cpu_epochs(dtype, weighted):
    """The identity head with the squared error (F.5, L.2, B.5), with and without sample
    weights (S.2): two epochs on the device equal the CPU's kernels engine."""
    weights = np.random.default_rng(6).uniform(0.0, 3.0, size=N) if weighted else None
    cpu, gpu = pair("adam", "identity", dtype, sample_weight=weights)
    for _ in range(2):
        cpu_metrics = cpu.train_epoch()
        gpu_metrics = gpu.train_epoch()
        assert abs(gpu_metrics.train_loss - cpu_metrics.train_loss) <= 1e-5 * cpu_metrics.train_loss
        assert gpu_metrics.train_accuracy is None
    assert_same_state(cpu, gpu, dtype)


def test_weighted_classification_steps_equal_the_cpu_steps():
    weights = np.random.default_rng(6).uniform(0.0, 3.0, size=N)
    cpu, gpu = pair("sgd", sample_weight=weights)
    plain, _ = pair("sgd")
    for trainer in (cpu, gpu, plain):
        trainer.train_steps(3)
    assert_same_state(cpu, gpu, "float64")
    assert not np.allclose(cpu.model.params.theta, plain.model.params.theta)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_epochs_equal_the_cpu_epochs(dtype):
    """Dropout (D.1–D.3) on the device draws the CPU's masks (the same integers into the same
    Philox), so two epochs agree with the CPU's within the usual rounding; rate 0 is bitwise
    the run without it."""
    cpu, gpu = pair("adam", dtype=dtype, dropout=(0.5, 0.3))
    plain, _ = pair("adam", dtype=dtype)
    for trainer in (cpu, gpu, plain):
        for _ in range(2):
            trainer.train_epoch()
    assert_same_state(cpu, gpu, dtype)
    assert not np.allclose(cpu.model.params.theta, plain.model.params.theta)
    _, zero = pair("adam", dtype=dtype, dropout=(0.0,))
    _, none = pair("adam", dtype=dtype)
    for trainer in (zero, none):
        trainer.train_epoch()
        trainer.host_state()
    assert zero.model.params.theta.tobytes() == none.model.params.theta.tobytes()
