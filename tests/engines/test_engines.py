"""The engines (numbamlp/engines/): one factory builds each from (engine, device, cluster), each
implements the Engine protocol, and the Trainer drives them all through it alone.

The CUDA engine is built in the simulator (tests/engines/cuda/test_training_sim.py trains with it);
here its module is only checked to implement the protocol's methods, without importing CUDA.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import numbamlp
from numbamlp.engines import Engine, EngineSetup, make_engine
from numbamlp.engines.fused import FusedEngine
from numbamlp.engines.plain import KernelsEngine
from numbamlp.errors import NumbamlpError
from numbamlp.kernels.optimizers import Optimizer
from numbamlp.kernels.sampling import Sampler
from numbamlp.model.mlp import MLP
from numbamlp.training.trainer import TrainConfig, Trainer, TrainingDiverged, generators

PACKAGE = Path(numbamlp.__file__).parent
PROTOCOL = ("start_epoch", "run", "to_host", "from_host", "all_finite", "accuracy")


def setup(optimizer: str = "adam", n: int = 40, batch: int = 8) -> EngineSetup:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(n, 6), dtype=np.uint8)
    y = rng.integers(0, 3, size=n).astype(np.int64)
    model = MLP.create(6, [5], 3, dtype="float32", rng=rng)
    opt = Optimizer.create(optimizer, model.architecture.n_parameters, model.dtype)
    sampler = Sampler("shuffle", n, batch, rng)
    steps = sampler.steps_per_epoch
    return EngineSetup(
        model, X, model.dtype.type(1 / 255), y, opt, sampler, np.full(steps, 0.01),
        np.zeros(steps), np.zeros(steps, np.int64),
    )  # fmt: skip


@pytest.mark.parametrize(("engine", "kind"), [("fused", FusedEngine), ("kernels", KernelsEngine)])
def test_the_factory_builds_each_cpu_engine_and_it_implements_the_protocol(engine, kind):
    s = setup()
    built = make_engine(engine, "cpu", None, s)
    assert type(built) is kind
    assert isinstance(built, Engine)
    assert built.chunk >= 1
    assert built.state.shape == (2, s.model.architecture.n_parameters)  # Adam's m and v
    for row, name in zip(built.state, ("m", "v"), strict=True):
        assert np.shares_memory(row, s.optimizer.state[name])  # one state, not two
    s.sampler.epoch()
    built.start_epoch()
    theta0 = s.model.params.theta.copy()
    assert built.run(0, 3) == 3
    assert s.optimizer.step_count == 3
    assert np.isfinite(s.batch_losses[:3]).all() and not s.batch_losses[3:].any()
    assert not np.array_equal(theta0, s.model.params.theta)
    built.to_host()
    built.from_host()
    assert built.all_finite()
    assert 0.0 <= built.accuracy(s.X, s.y, 1 / 255) <= 1.0


def test_the_factory_builds_the_distributed_fused_engine_for_a_cluster():
    """With a cluster: the fused engine, its plan's exchange the MPI one (nothing is sent
    until a step runs, so no MPI is needed to build it)."""
    from numbamlp.engines.distributed import MPIExchange

    class OneRank:
        rank, size = 0, 1

    built = make_engine("fused", "cpu", OneRank(), setup())  # type: ignore[arg-type]
    assert type(built) is FusedEngine and isinstance(built, Engine)
    assert isinstance(built.plan.exchange, MPIExchange)
    assert make_engine("fused", "cpu", None, setup()).plan.exchange is None


def test_the_factory_refuses_what_no_engine_does():
    with pytest.raises(NumbamlpError, match="unknown engine"):
        make_engine("turbo", "cpu", None, setup())
    with pytest.raises(NumbamlpError, match="unknown device"):
        make_engine("fused", "tpu", None, setup())
    for engine, device in (("kernels", "cpu"), ("fused", "cuda")):
        with pytest.raises(NumbamlpError, match="runs the fused engine on the CPU"):
            make_engine(engine, device, object(), setup())  # type: ignore[arg-type]


def test_the_cuda_engine_has_the_protocol_methods():
    """Read from the source: importing engines/cuda/engine.py would import the CUDA package."""
    tree = ast.parse((PACKAGE / "engines" / "cuda" / "engine.py").read_text(encoding="utf-8"))
    engine = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CudaEngine")
    methods = {n.name: n for n in engine.body if isinstance(n, ast.FunctionDef)}
    for name in PROTOCOL:
        expected = list(inspect.signature(getattr(Engine, name)).parameters)
        assert [a.arg for a in methods[name].args.args] == expected, name
    assigned = [t for n in engine.body if isinstance(n, ast.Assign) for t in n.targets]
    assert "chunk" in {getattr(t, "id", None) for t in assigned}


@pytest.mark.parametrize("engine", ["fused", "kernels"])
def test_a_non_finite_loss_ends_run_before_its_update(engine):
    """run returns the steps made; the loss of the next is written, its update not made, and p
    counts the steps made: the Trainer names that minibatch."""
    s = setup("sgd")
    s = replace(s, X=s.X.astype(np.float32), scale=s.model.dtype.type(1.0))
    s.sampler.epoch()
    bad_row = s.sampler.index_matrix[2, 0]
    s.X[bad_row] = np.nan
    assert bad_row not in s.sampler.index_matrix[:2]
    built = make_engine(engine, "cpu", None, s)
    built.start_epoch()
    assert built.run(0, 4) == 2
    assert s.optimizer.step_count == 2 and np.isnan(s.batch_losses[2])
    assert built.all_finite()


def test_the_trainer_takes_the_device_and_the_cluster_as_keywords():
    X, y = setup().X, setup().y
    init_rng, rng = generators(1)
    model = MLP.create(6, [5], 3, rng=init_rng)
    trainer = Trainer(model, X, y, TrainConfig(epochs=1, batch_size=8), rng, scale=1 / 255)
    assert trainer.device == "cpu" and isinstance(trainer.engine, FusedEngine)
    assert trainer.state is trainer.engine.state
    with pytest.raises(NumbamlpError, match="runs the fused engine on the CPU"):
        config = TrainConfig(engine="kernels")
        Trainer(model, X, y, config, rng, cluster=object())  # type: ignore[arg-type]
    with pytest.raises(NumbamlpError, match="unknown device"):
        Trainer(model, X, y, TrainConfig(), rng, device="tpu")
    sizes = Trainer(model, X, y, TrainConfig(batch_size=8), rng, engine_options={"sample_block": 4})
    assert sizes.engine.plan.sample_block == 4


def test_the_trainer_stops_where_the_engine_stopped():
    """Inputs so large that z^1 overflows from the third minibatch on: both CPU engines stop
    there, before its update (p = 2), and the Trainer names it (batch 3, step 3)."""
    X, y = setup().X.astype(np.float32), setup().y
    for engine in ("fused", "kernels"):
        init_rng, rng = generators(1)
        model = MLP.create(6, [5], 3, activations="identity", rng=init_rng)
        trainer = Trainer(model, X, y, TrainConfig(batch_size=4, engine=engine), rng)
        trainer.train_steps(2)
        trainer.X[trainer.sampler.batches[2]] = 3e38
        with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) .*batch 3 \(step 3\)"):
            trainer.train_epoch()
        assert trainer.step_count == trainer.batch == 2
        trainer.X[:] = setup().X
