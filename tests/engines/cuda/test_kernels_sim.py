"""Every CUDA kernel, run in the simulator on tiny shapes with several blocks, matches its CPU
twin within atol + |cpu|·eps, in float32 and float64, on the same inputs.

Blocks of 2 threads (2 × 2 in 2-D) make every grid several blocks wide, so a kernel that
mixes up its thread index and its array index, or forgets the bounds check, fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from numbamlp.engines.cuda import backward as gpu_backward
from numbamlp.engines.cuda import forward as gpu_forward
from numbamlp.engines.cuda import optimizers as gpu_optimizers
from numbamlp.engines.cuda.backend import cuda
from numbamlp.engines.cuda.launch import grid_1d, grid_2d
from numbamlp.kernels import backward as cpu_backward
from numbamlp.kernels import forward as cpu_forward
from numbamlp.kernels import optimizers as cpu_optimizers
from numbamlp.kernels.activations import CODES

B, D_IN, D_OUT, M = 5, 7, 3, 4  # samples, input width, output width, classes
TOL = {np.float32: (1e-6, 1e-5), np.float64: (1e-13, 1e-12)}  # (atol, eps)
DTYPES = [np.float32, np.float64]


def assert_close(gpu: np.ndarray, cpu: np.ndarray, dtype) -> None:
    atol, eps = TOL[dtype]
    assert gpu.dtype == cpu.dtype and gpu.shape == cpu.shape
    bound = atol + np.abs(cpu) * eps
    worst = np.max(np.abs(gpu.astype(np.float64) - cpu) - bound)
    assert np.all(np.abs(gpu.astype(np.float64) - cpu) <= bound), f"over the bound by {worst}"


def run_twins(cpu_kernel, gpu_kernel, launch, args: list, outputs: tuple[int, ...], dtype):
    """Run both kernels on copies of ``args``; compare the arrays at ``outputs``."""
    cpu_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    cpu_kernel(*cpu_args)
    dev_args = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    gpu_kernel[launch](*dev_args)
    for k in outputs:
        assert_close(dev_args[k].copy_to_host(), cpu_args[k], dtype)


def poisoned(shape, dtype) -> np.ndarray:
    """An output buffer full of NaN: a kernel must overwrite every element it owns."""
    return np.full(shape, np.nan, dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_batch_and_labels(rng, dtype):
    X = rng.integers(0, 256, size=(9, D_IN), dtype=np.uint8)
    y = rng.integers(0, M, size=9).astype(np.int64)
    indices = rng.permutation(9)[:B].astype(np.int64)
    run_twins(
        cpu_forward.gather_batch, gpu_forward.gather_batch, grid_2d(B, D_IN, 2),
        [poisoned((B, D_IN), dtype), X, indices, dtype(1 / 255)], (0,), dtype,
    )  # fmt: skip
    labels = np.full(B, -1, np.int64)
    run_twins(
        cpu_forward.gather_labels, gpu_forward.gather_labels, grid_1d(B, 2),
        [labels, y, indices], (0,), dtype,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_forward(rng, dtype):
    W = rng.normal(size=(D_OUT, D_IN)).astype(dtype)
    b = rng.normal(size=D_OUT).astype(dtype)
    h_prev = rng.normal(size=(B, D_IN)).astype(dtype)
    run_twins(
        cpu_forward.affine_forward, gpu_forward.affine_forward, grid_2d(B, D_OUT, 2),
        [poisoned((B, D_OUT), dtype), W, b, h_prev], (0,), dtype,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CODES))
def test_activation_forward(rng, dtype, name):
    z = (rng.normal(size=(B, D_OUT)) * 3).astype(dtype)
    z[0, 0] = 0.0  # φ′'s conventions at 0 must agree too
    run_twins(
        cpu_forward.activation_forward, gpu_forward.activation_forward, grid_2d(B, D_OUT, 2),
        [poisoned((B, D_OUT), dtype), z, CODES[name]], (0,), dtype,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_heads_and_loss(rng, dtype):
    z = (rng.normal(size=(B, M)) * 4).astype(dtype)
    z[1] += 80  # large logits: the max shift must keep exp finite on both
    y = rng.integers(0, M, size=B).astype(np.int64)
    run_twins(
        cpu_forward.softmax_forward, gpu_forward.softmax_forward, grid_1d(B, 2),
        [poisoned((B, M), dtype), z], (0,), dtype,
    )  # fmt: skip
    run_twins(
        cpu_forward.modified_softmax_forward, gpu_forward.modified_softmax_forward,
        grid_1d(B, 2), [poisoned((B, M), dtype), z[:, : M - 1].copy()], (0,), dtype,
    )  # fmt: skip
    for logits in (z, z[:, : M - 1].copy()):  # softmax head, then γ̃ (reference class M)
        run_twins(
            cpu_forward.cross_entropy, gpu_forward.cross_entropy, grid_1d(B, 2),
            [poisoned(B, dtype), logits, y, M], (0,), dtype,
        )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_mean(rng, dtype):
    values = rng.random(B).astype(dtype)
    mean = cuda.to_device(poisoned(1, dtype))
    gpu_forward.batch_mean[grid_1d(4, 2)](mean, cuda.to_device(values))  # 2 blocks, 1 writer
    assert_close(mean.copy_to_host(), np.array([cpu_forward.batch_mean(values)], dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_count_correct(rng, dtype):
    """Both heads (γ̃: the reference class M at logit 0), ties to the first class."""
    z = rng.normal(size=(B, M)).astype(dtype)
    z[2, 1] = z[2, 3] = 5.0  # a tie
    y = rng.integers(0, M, B)
    y[2] = 1
    for logits in (z, z[:, : M - 1].copy()):
        y_ref = y.copy()
        y_ref[: B // 2] = M - 1  # some labels on the reference class
        count = cuda.to_device(np.full(1, -1, np.int64))
        gpu_forward.count_correct[grid_1d(4, 2)](count, cuda.to_device(logits), y_ref, M)
        expected = cpu_forward.count_correct(logits, y_ref, M)
        assert count.copy_to_host()[0] == expected
        full = np.concatenate([logits, np.zeros((B, 1), dtype)], 1) if logits is not z else z
        assert expected == int(np.sum(np.argmax(full, axis=1) == y_ref))


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_classes(rng, dtype):
    f = rng.random((B, M)).astype(dtype)
    f[2, 1] = f[2, 3] = 2.0  # a tie: the first class wins on both
    classes = np.full(B, -1, np.int64)
    run_twins(
        cpu_forward.predict_classes, gpu_forward.predict_classes, grid_1d(B, 2),
        [classes, f], (0,), dtype,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
def test_output_delta(rng, dtype):
    f = rng.random((B, M)).astype(dtype)
    y = rng.integers(0, M, size=B).astype(np.int64)
    run_twins(
        cpu_backward.output_delta, gpu_backward.output_delta, grid_2d(B, M, 2),
        [poisoned((B, M), dtype), f, y], (0,), dtype,
    )  # fmt: skip
    # γ̃ head: δ^L has K−1 columns, and a label K−1 (the reference class) sets none of them.
    y[0] = M - 1
    run_twins(
        cpu_backward.output_delta, gpu_backward.output_delta, grid_2d(B, M - 1, 2),
        [poisoned((B, M - 1), dtype), f, y], (0,), dtype,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients(rng, dtype):
    delta = rng.normal(size=(B, D_OUT)).astype(dtype)
    h_prev = rng.normal(size=(B, D_IN)).astype(dtype)
    inv_batch = dtype(1 / B)
    run_twins(
        cpu_backward.weight_gradient, gpu_backward.weight_gradient, grid_2d(D_OUT, D_IN, 2),
        [poisoned((D_OUT, D_IN), dtype), delta, h_prev, inv_batch], (0,), dtype,
    )  # fmt: skip
    run_twins(
        cpu_backward.bias_gradient, gpu_backward.bias_gradient, grid_1d(D_OUT, 2),
        [poisoned(D_OUT, dtype), delta, inv_batch], (0,), dtype,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CODES))
def test_hidden_delta(rng, dtype, name):
    W_next = rng.normal(size=(D_OUT, D_IN)).astype(dtype)
    delta_next = rng.normal(size=(B, D_OUT)).astype(dtype)
    z = (rng.normal(size=(B, D_IN)) * 2).astype(dtype)
    run_twins(
        cpu_backward.hidden_delta, gpu_backward.hidden_delta, grid_2d(B, D_IN, 2),
        [poisoned((B, D_IN), dtype), W_next, delta_next, z, CODES[name]], (0,), dtype,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_decay(rng, dtype):
    """(R.1) λW added to ∇W in place, and Σ W² summed by one writer, as on the CPU."""
    grad_W = rng.normal(size=(D_OUT, D_IN)).astype(dtype)
    W = rng.normal(size=(D_OUT, D_IN)).astype(dtype)
    run_twins(
        cpu_backward.weight_decay_gradient, gpu_backward.weight_decay_gradient,
        grid_2d(D_OUT, D_IN, 2), [grad_W, W, dtype(0.3)], (0,), dtype,
    )  # fmt: skip
    total = cuda.to_device(np.full(1, np.nan))
    gpu_forward.weight_penalty[grid_1d(4, 2)](total, cuda.to_device(W))  # 2 blocks, 1 writer
    assert_close(total.copy_to_host(), np.array([cpu_forward.weight_penalty(W)]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_jacobian(rng, dtype):
    f = rng.dirichlet(np.ones(M)).astype(dtype)
    run_twins(
        cpu_backward.softmax_jacobian, gpu_backward.softmax_jacobian, grid_2d(M, M, 2),
        [poisoned((M, M), dtype), f], (0,), dtype,
    )  # fmt: skip


N_PARAMS = 11  # θ of 11 components: 6 blocks of 2 threads, the last one half idle

# name → (state arrays, hyperparameters after γ) in the kernels' argument order
UPDATES = {
    "sgd_update": (0, ()),
    "momentum_update": (1, (0.9,)),
    "adagrad_update": (1, (1e-10,)),
    "adadelta_update": (2, (0.9, 1e-6)),
    "rmsprop_update": (1, (0.9, 1e-8)),
    "adam_update": (2, (0.9, 0.999, 1e-8, 1 - 0.9**3, 1 - 0.999**3)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(UPDATES))
def test_optimizer_updates(rng, dtype, name):
    n_state, hyper = UPDATES[name]
    theta = rng.normal(size=N_PARAMS).astype(dtype)
    states = [rng.random(N_PARAMS).astype(dtype) for _ in range(n_state)]  # mid-run state
    grad = rng.normal(size=N_PARAMS).astype(dtype)
    args = [theta, *states, grad, dtype(0.05), *(dtype(h) for h in hyper)]
    run_twins(
        getattr(cpu_optimizers, name), getattr(gpu_optimizers, name), grid_1d(N_PARAMS, 2),
        args, tuple(range(1 + n_state)), dtype,
    )  # fmt: skip


# --- Regression (F.5, L.2, B.5) and sample weights (S.2) -------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_identity_head_squared_error_and_its_delta(rng, dtype):
    T = 3
    z = rng.normal(size=(B, T)).astype(dtype)
    targets = rng.normal(size=(B, T)).astype(dtype)
    f = z.copy()
    run_twins(
        cpu_forward.identity_forward, gpu_forward.identity_forward, grid_1d(B, 2),
        [poisoned((B, T), dtype), z], (0,), dtype,
    )  # fmt: skip
    run_twins(
        cpu_forward.squared_error, gpu_forward.squared_error, grid_1d(B, 2),
        [poisoned(B, dtype), f, targets], (0,), dtype,
    )  # fmt: skip
    run_twins(
        cpu_backward.squared_error_delta, gpu_backward.squared_error_delta, grid_2d(B, T, 2),
        [poisoned((B, T), dtype), f, targets], (0,), dtype,
    )  # fmt: skip
    all_targets = rng.normal(size=(9, T)).astype(dtype)
    indices = rng.permutation(9)[:B].astype(np.int64)
    run_twins(
        cpu_forward.gather_targets, gpu_forward.gather_targets, grid_2d(B, T, 2),
        [poisoned((B, T), dtype), all_targets, indices], (0,), dtype,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
def test_sample_weights(rng, dtype):
    weights = rng.uniform(0.0, 3.0, size=9)
    indices = rng.permutation(9)[:B].astype(np.int64)
    run_twins(
        cpu_forward.sample_weight_factors, gpu_forward.sample_weight_factors, grid_1d(1, 1),
        [poisoned(B, np.float64), weights, indices], (0,), np.float64,
    )  # fmt: skip
    omega = rng.uniform(0.0, 2.0, size=B)
    run_twins(
        cpu_forward.weight_losses, gpu_forward.weight_losses, grid_1d(B, 2),
        [rng.random(B).astype(dtype), omega], (0,), dtype,
    )  # fmt: skip
    run_twins(
        cpu_backward.weight_output_delta, gpu_backward.weight_output_delta, grid_2d(B, M, 2),
        [rng.normal(size=(B, M)).astype(dtype), omega], (0,), dtype,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kernels_draw_the_cpus_masks(rng, dtype):
    """(D.1) the device's Philox gives the CPU's mask bit for bit; (D.2), (D.3) apply it with
    the same factor (the same integers, the same products)."""
    from numbamlp.engines.cuda import dropout as gpu_dropout
    from numbamlp.kernels import dropout as cpu_dropout

    rows = np.array([3, 0, 11, 7, 2**33 + 5], np.int64)  # a row past 2^32 too
    key = cpu_dropout.dropout_key(2**32 + 9)
    threshold = cpu_dropout.dropout_threshold(0.4)
    scale = cpu_dropout.dropout_scale(0.4, dtype)
    layer, step = np.uint64(2), np.uint64(13)
    r_cpu = np.zeros((B, 9), np.uint8)
    cpu_dropout.dropout_mask(r_cpu, rows, layer, step, key, threshold)
    r_gpu = cuda.to_device(np.full((B, 9), 7, np.uint8))
    gpu_dropout.dropout_mask[grid_1d(B, 2)](
        r_gpu, cuda.to_device(rows), layer, step, cuda.to_device(key), threshold
    )
    assert np.array_equal(r_gpu.copy_to_host(), r_cpu)
    assert 0 < r_cpu.mean() < 1
    for name in ("dropout_forward", "dropout_backward"):
        h = rng.normal(size=(B, 9)).astype(dtype)
        args = [h, rows, layer, step, key, threshold, scale]
        cpu_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        getattr(cpu_dropout, name)(*cpu_args)
        dev = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
        getattr(gpu_dropout, name)[grid_1d(B, 2)](*dev)
        assert np.array_equal(dev[0].copy_to_host(), cpu_args[0]), name
        assert np.array_equal(cpu_args[0], h * r_cpu * scale), name
