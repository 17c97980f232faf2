"""A run on data of its own with no ``epochs`` trains until its loss converges.

* the rule is scikit-learn's: stop once for ``n_iter_no_change`` epochs in a row the monitored
  loss (training loss; validation loss with a validation set) has not fallen below its best −
  ``tol``; at most ``max_epochs``; ``epochs=N`` is exactly N;
* the run says why it stopped; a run of very few steps warns;
* the batch size suits the data (default_batch_size); the built-in sets keep 20 × 128;
* a converging run stopped and resumed is bitwise the run that never stopped, also when it is
  stopped after its counters began counting.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner
from test_fit import assert_same_files

import numbamlp
from numbamlp.cli.commands import main
from numbamlp.errors import NumbamlpError
from numbamlp.training.config import default_batch_size
from numbamlp.training.fit import fit
from numbamlp.training.validation import EarlyStopping


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return 1.5 * np.eye(3, 4)[y] + rng.normal(size=(n, 4)), y


@pytest.fixture
def arrays():
    X, y = _blobs(240, 0)
    Xt, yt = _blobs(60, 1)
    return X, y, Xt, yt


def _stopped_by_the_rule(losses: list[float], tol: float, n: int) -> int | None:
    """The 1-based epoch at which scikit-learn's rule (as numbamlp states it) stops."""
    best, wait = math.inf, 0
    for epoch, loss in enumerate(losses, 1):
        wait = 0 if loss < best - tol else wait + 1
        best = min(best, loss)
        if wait >= n:
            return epoch
    return None


def test_without_epochs_it_stops_where_the_rule_says(arrays):
    X, y, Xt, yt = arrays
    result = fit(X, y, X_test=Xt, y_test=yt, lr=0.01, tol=1e-3, n_iter_no_change=5, verbose=0)
    losses = [h["train_loss"] for h in result.history]
    assert result.converged is True
    assert 5 < result.epochs < 1000
    assert _stopped_by_the_rule(losses, 1e-3, 5) == result.epochs == len(losses)
    assert result.stop_reason.startswith(
        "converged: the training loss improved by less than tol=0.001 for 5 epochs"
    )
    assert "converged" in result.summary and result.test_accuracy > 0.8


def test_epochs_given_is_exactly_that_many(arrays):
    X, y, Xt, yt = arrays
    result = fit(X, y, X_test=Xt, y_test=yt, lr=0.05, epochs=40, n_iter_no_change=1, verbose=0)
    assert result.epochs == len(result.history) == 40
    assert result.converged is None and result.stop_reason == ""


def test_reaching_max_epochs_says_it_did_not_converge(arrays, capsys):
    X, y, _, _ = arrays
    result = fit(X, y, max_epochs=3, tol=0.0, batch_size=16)
    assert result.epochs == 3 and result.converged is False
    assert "not converged" in result.stop_reason and "`max_epochs=3`" in result.stop_reason
    assert "not converged" in capsys.readouterr().out


def test_with_a_validation_set_it_watches_val_loss_and_keeps_the_best_epoch(arrays):
    X, y, Xt, yt = arrays
    result = fit(
        X, y, X_test=Xt, y_test=yt, lr=0.05, validation_fraction=0.25, n_iter_no_change=4,
        verbose=0,
    )  # fmt: skip
    val = [h["val_loss"] for h in result.history]
    assert result.converged is True
    assert _stopped_by_the_rule(val, 1e-4, 4) == result.epochs
    assert result.best_epoch == 1 + int(np.argmin(val))
    assert "validation loss" in result.stop_reason


@pytest.mark.parametrize(
    ("n", "size"), [(1, 1), (10, 10), (105, 16), (300, 30), (1257, 126), (5000, 200)]
)
def test_the_batch_size_suits_the_rows(n, size):
    assert default_batch_size(n) == size


def test_the_run_uses_that_batch_size_and_the_built_in_sets_keep_128(arrays, capsys):
    X, y, _, _ = arrays
    fit(X, y, epochs=1)
    assert "batch 24, seed 0" in capsys.readouterr().out  # 240 rows: a tenth
    from numbamlp.training.plan import RunPlan

    plan = RunPlan.create({"hidden": (32,), "batch_size": None}, {}, None, None, None)
    plan.settle(builtin=True, n_train=60000)
    assert (plan.epochs, plan.config.batch_size) == (20, 128)


def test_few_steps_warn_naming_the_options(arrays, capsys):
    X, y, _, _ = arrays
    fit(X, y, epochs=2, batch_size=100)  # 3 steps an epoch
    err = capsys.readouterr().err
    assert "warning: this run makes only 6 optimisation step(s)" in err
    assert "`epochs`" in err and "`batch_size`" in err
    fit(X, y, epochs=10)  # 100 steps: no warning
    assert "warning" not in capsys.readouterr().err
    fit(X, y, max_epochs=2)  # converging: the cap is what to raise
    assert "give a larger `max_epochs` or a smaller `batch_size`" in capsys.readouterr().err


def test_the_command_line_warns_in_its_flags(tmp_path):
    X, y = _blobs(90, 2)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    out = CliRunner().invoke(
        main, ["train", "--train-file", str(tmp_path / "train.npz"), "--epochs", "1"]
    )
    assert out.exit_code == 0, out.output
    assert "give more --epochs (or none" in out.output and "smaller --batch-size" in out.output


class _StopAt(numbamlp.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, run, metrics) -> None:
        if metrics.epoch == self.epoch:
            run.request_stop()


@pytest.mark.parametrize("validation_fraction", [0.0, 0.25])
def test_stopped_and_resumed_it_is_the_run_that_never_stopped(
    arrays, tmp_path, validation_fraction
):
    X, y, Xt, yt = arrays
    options = dict(
        X_test=Xt, y_test=yt, lr=0.02, tol=1e-3, n_iter_no_change=4,
        validation_fraction=validation_fraction, verbose=0,
    )  # fmt: skip
    straight = fit(X, y, **options, save=tmp_path / "straight.npz")
    assert straight.converged
    # stop where the counter has begun counting: after the last improvement by tol
    stop = straight.epochs - 2
    stopped = fit(X, y, **options, checkpoint_dir=tmp_path / "ck", callbacks=[_StopAt(stop)])
    assert stopped.stopped == "callback" and stopped.epochs == stop
    from numbamlp.training.checkpoint import load_checkpoint

    state = load_checkpoint(tmp_path / "ck").convergence
    assert state["wait"] == 2 and state["stopped"] is False
    resumed = fit(X, y, **options, resume=tmp_path / "ck", save=tmp_path / "resumed.npz")
    assert resumed.converged and resumed.epochs == straight.epochs
    assert resumed.best_epoch == straight.best_epoch
    assert_same_files(tmp_path / "straight.npz", tmp_path / "resumed.npz")
    # resumed again, the converged run writes its outputs (remembered) without training
    again = fit(X, y, **options, resume=tmp_path / "ck")
    assert again.epochs == straight.epochs and again.converged
    assert_same_files(tmp_path / "straight.npz", tmp_path / "resumed.npz")


def test_a_converged_run_without_outputs_says_how_to_go_on(arrays, tmp_path):
    X, y, _, _ = arrays
    options = dict(lr=0.05, tol=1e-2, n_iter_no_change=2, verbose=0)
    done = fit(X, y, **options, checkpoint_dir=tmp_path / "ck")
    assert done.converged
    with pytest.raises(NumbamlpError, match=f"converged at epoch {done.epochs}; pass `epochs=N`"):
        fit(X, y, **options, resume=tmp_path / "ck")
    more = fit(X, y, **options, epochs=done.epochs + 2, resume=tmp_path / "ck")
    assert more.epochs == done.epochs + 2 and more.converged is None


def test_a_resumed_run_keeps_its_tol(arrays, tmp_path):
    X, y, _, _ = arrays
    fit(X, y, max_epochs=2, batch_size=16, checkpoint_dir=tmp_path / "ck", verbose=0)
    with pytest.raises(NumbamlpError, match="`tol`: the checkpoint's run used 0.0001"):
        fit(X, y, tol=0.01, max_epochs=4, resume=tmp_path / "ck", verbose=0)
    longer = fit(X, y, max_epochs=4, resume=tmp_path / "ck", verbose=0)
    assert longer.epochs == 4


def test_early_stopping_with_tol_counts_only_improvements_by_tol():
    theta = np.zeros(3)
    early = EarlyStopping(2, theta, tol=0.1, keep_best=False)
    assert early.best_theta is None
    assert not early.update(1, 1.0, theta)  # best 1.0
    assert not early.update(2, 0.95, theta)  # better, but not by tol: wait 1, best 0.95
    assert early.best_loss == 0.95 and early.wait == 1
    assert not early.update(3, 0.8, theta)  # below 0.95 − 0.1: wait 0
    assert not early.update(4, 0.79, theta)
    assert early.update(5, 0.75, theta)  # 0.75 ≥ 0.79 − 0.1: the second epoch without
    again = EarlyStopping(2, theta, tol=0.1, keep_best=False)
    again.restore(early.state(), None)
    assert again.state() == early.state()
    with pytest.raises(NumbamlpError, match="does not fit"):
        EarlyStopping(2, theta).restore(early.state(), None)


def test_a_fit_result_given_as_model_continues_that_run_exactly(arrays):
    """fit(epochs=1) then fit(model=result, epochs=1) is fit(epochs=2): θ, the optimizer's
    state and step count, and the minibatch stream go on (the estimators' partial_fit)."""
    X, y, _, _ = arrays
    straight = fit(X, y, epochs=2, batch_size=16, verbose=0)
    first = fit(X, y, epochs=1, batch_size=16, verbose=0)
    second = fit(X, y, model=first, epochs=1, batch_size=16, verbose=0)
    assert second.model is first.model and second.step == straight.step == 30
    np.testing.assert_array_equal(second.model.params.theta, straight.model.params.theta)
    for name, value in straight.optimizer.state.items():
        np.testing.assert_array_equal(second.optimizer.state[name], value)
    fresh = fit(X, y, model=fit(X, y, epochs=1, batch_size=16, verbose=0).model, epochs=1,
                batch_size=16, verbose=0)  # fmt: skip
    assert not np.array_equal(fresh.model.params.theta, straight.model.params.theta)
    with pytest.raises(NumbamlpError, match="used the optimizer adam; give `optimizer=adam`"):
        fit(X, y, model=second, optimizer="sgd", epochs=1, verbose=0)


def test_patience_ending_a_run_first_is_neither_converged_nor_not(arrays):
    X, y, _, _ = arrays
    result = fit(X, y, lr=0.05, validation_fraction=0.25, patience=2, n_iter_no_change=50,
                 verbose=0)  # fmt: skip
    assert result.epochs < 1000 and result.best_epoch is not None
    assert result.converged is None and result.stop_reason == ""
