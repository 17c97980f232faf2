"""Step-size schedules γ_p (G.1–G.4): FB §1 Q2 asks only for "positive step-sizes (γ_p)_{p≥1}";
these are the usual choices, checked at specific p, for monotonicity and for validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numbamlp.errors import NumbamlpError
from numbamlp.model.mlp import MLP
from numbamlp.training.schedules import SCHEDULES, Schedule
from numbamlp.training.trainer import TrainConfig, Trainer

P = range(1, 201)


def test_constant():
    """(G.1) γ_p = γ_0 for every p."""
    s = Schedule("constant", 0.3)
    assert all(s(p) == 0.3 for p in P)


def test_step_decay_values():
    """(G.2) γ_p = γ_0 r^{⌊(p−1)/P⌋}: γ_0 = 1, r = 0.5, P = 3."""
    s = Schedule("step", 1.0, decay_rate=0.5, decay_steps=3)
    assert [s(p) for p in range(1, 11)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]


def test_inverse_time_values():
    """(G.3) γ_p = γ_0 / (1 + (p−1)/τ): γ_0 = 1, τ = 2 gives 1, 2/3, 1/2, 2/5, 1/3, …"""
    s = Schedule("inverse-time", 1.0, decay_steps=2)
    for p, expected in [(1, 1.0), (2, 2 / 3), (3, 0.5), (4, 0.4), (5, 1 / 3), (201, 1 / 101)]:
        assert s(p) == pytest.approx(expected, rel=1e-15)


def test_cosine_values():
    """(G.4) γ_p = γ_min + (γ_0 − γ_min)(1 + cos(π(p−1)/T))/2: γ_0 = 1, γ_min = 0.1, T = 4,
    so γ_1 = 1, γ_2 = 0.1 + 0.9(1 + √½)/2, γ_3 = 0.55 (half-way), γ_5 = 0.1, then held."""
    s = Schedule("cosine", 1.0, total_steps=4, min_lr=0.1)
    assert s(1) == 1.0
    assert s(2) == pytest.approx(0.1 + 0.9 * (1 + math.sqrt(0.5)) / 2, rel=1e-15)
    assert s(3) == pytest.approx(0.55, rel=1e-15)
    assert s(5) == pytest.approx(0.1, rel=1e-15)
    assert s(100) == pytest.approx(0.1, rel=1e-15)  # past T the schedule stays at γ_min


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule("constant", 0.1),
        Schedule("step", 0.1, decay_rate=0.7, decay_steps=9),
        Schedule("step", 0.1, decay_rate=1.0, decay_steps=1),
        Schedule("inverse-time", 0.1, decay_steps=13),
        Schedule("cosine", 0.1, total_steps=150, min_lr=0.01),
        Schedule("cosine", 0.1, total_steps=7),
    ],
    ids=lambda s: s.kind,
)
def test_positive_non_increasing_and_starts_at_lr(schedule):
    """Every schedule starts at γ_1 = γ_0, never increases, and stays ≥ γ_min and positive."""
    values = np.array([schedule(p) for p in P])
    assert values[0] == schedule.lr
    assert (np.diff(values) <= 0).all()
    assert (values >= schedule.min_lr).all()
    # Positive for every step a run makes (a cosine with γ_min = 0 reaches 0 only after step T).
    steps = schedule.total_steps if schedule.kind == "cosine" else len(values)
    assert (values[:steps] > 0).all()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"kind": "exponential", "lr": 0.1}, "unknown schedule"),
        ({"kind": "constant", "lr": 0.0}, "learning rate must be positive"),
        ({"kind": "constant", "lr": -1.0}, "learning rate must be positive"),
        ({"kind": "constant", "lr": math.nan}, "learning rate must be positive"),
        ({"kind": "constant", "lr": math.inf}, "learning rate must be positive"),
        ({"kind": "step", "lr": 0.1, "decay_rate": 0.0}, "decay rate"),
        ({"kind": "step", "lr": 0.1, "decay_rate": 1.5}, "decay rate"),
        ({"kind": "step", "lr": 0.1, "decay_steps": 0}, "at least 1"),
        ({"kind": "cosine", "lr": 0.1, "total_steps": 0}, "at least 1"),
        ({"kind": "cosine", "lr": 0.1, "min_lr": 0.2}, "minimum learning rate"),
        ({"kind": "cosine", "lr": 0.1, "min_lr": -0.01}, "minimum learning rate"),
    ],
)
def test_invalid_schedules_raise_user_errors(kwargs, message):
    with pytest.raises(NumbamlpError, match=message):
        Schedule(**kwargs)


def test_all_kinds_listed():
    assert set(SCHEDULES) == {"constant", "step", "inverse-time", "cosine"}


def test_training_loop_uses_gamma_p_of_the_global_step():
    """The trainer asks the schedule for γ_p with p the global step count (G.2 with
    P = decay_epochs × steps per epoch): halving once per epoch here."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), np.arange(20) % 2
    model = MLP.create(3, [4], 2, dtype="float64", rng=rng)
    config = TrainConfig(
        epochs=3, batch_size=5, optimizer="sgd", lr=0.1, schedule="step", decay_epochs=1.0
    )
    trainer = Trainer(model, X, y, config, np.random.default_rng(1))
    assert trainer.schedule.decay_steps == 4  # ⌈20/5⌉ steps per epoch
    lrs = [trainer.train_epoch().lr for _ in range(3)]
    assert lrs == [0.1, 0.05, 0.025]
    assert trainer.step_count == 12
