"""Practitioners' tables (issue 18): scikit-learn's bundled iris, wine, breast cancer, digits
(classification, string labels) and diabetes (regression), 70/30 split, seed 0, as CSV files.

Two groups per table, each read as ratios, with the test score of every entry in
``extra_info["score"]`` (accuracy, or R² for diabetes):

* ``whole command``: ``numbamlp train --train-file … --test-file … --label-column target`` with
  no other option, as a process, against the scikit-learn job a practitioner would write
  (baselines/sklearn_tabular.py: read the CSVs, StandardScaler + MLPClassifier(random_state=0),
  or MLPRegressor with max_iter=1000 — its defaults score −1.4 on diabetes).
* ``fit``: in one Python process, ``numbamlp.MLPClassifier()`` / ``MLPRegressor()`` in a
  ``make_pipeline(StandardScaler(), …)`` against scikit-learn's estimator in the same pipeline,
  and ``numbamlp.fit(X, y)`` on the raw arrays (it standardises by itself).

Every timed call is warmed up once (the JIT cache and the imports are not what is measured).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import have, quick

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from tabular_tables import LABEL, TABLES, write_table  # noqa: E402

NUMBAMLP = str(Path(sys.executable).with_name("numbamlp"))
SKLEARN_SCRIPT = str(Path(__file__).parent / "baselines" / "sklearn_tabular.py")

pytestmark = pytest.mark.skipif(not have("sklearn"), reason="scikit-learn not installed")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = Path(tmp_path_factory.mktemp("tables"))
    return {name: write_table(name, folder) for name in TABLES}


def _score(output: str) -> float:
    match = re.search(r"(?:test accuracy|test R²|score) (-?[0-9.]+)", output)
    assert match, output
    return float(match.group(1))


def _process(command: list[str]) -> tuple[float, float]:
    started = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - started, _score(out)


def _rounds(benchmark) -> int:
    return 1 if quick(benchmark) else 5


def _command(name: str, table) -> list[str]:
    if name == "numbamlp-train":
        return [NUMBAMLP, "train", "--train-file", str(table.train_csv), "--test-file",
                str(table.test_csv), "--label-column", LABEL]  # fmt: skip
    return [sys.executable, SKLEARN_SCRIPT, str(table.train_csv), str(table.test_csv), LABEL,
            table.task]  # fmt: skip


@pytest.mark.parametrize("entry", ["numbamlp-train", "sklearn-command"])
@pytest.mark.parametrize("table_name", list(TABLES))
def test_whole_command(benchmark, tables, table_name, entry):
    table = tables[table_name]
    benchmark.group = f"tabular {table_name}: whole command, as a process"
    benchmark.name = entry
    command = _command(entry, table)
    _process(command)  # warm the JIT cache and the OS's file cache
    scores = []

    def once():
        scores.append(_process(command)[1])

    benchmark.pedantic(once, rounds=_rounds(benchmark))
    benchmark.extra_info["score"] = scores[-1]
    benchmark.extra_info["task"] = table.task


def _estimator(entry: str, task: str):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if entry == "numbamlp-estimator":
        import numbamlp

        model = numbamlp.MLPRegressor() if task == "regression" else numbamlp.MLPClassifier()
    elif task == "regression":
        from sklearn.neural_network import MLPRegressor

        model = MLPRegressor(random_state=0, max_iter=1000)
    else:
        from sklearn.neural_network import MLPClassifier

        model = MLPClassifier(random_state=0)
    return make_pipeline(StandardScaler(), model)


@pytest.mark.parametrize("entry", ["numbamlp-estimator", "sklearn-estimator", "numbamlp-fit"])
@pytest.mark.parametrize("table_name", list(TABLES))
def test_fit(benchmark, tables, table_name, entry):
    table = tables[table_name]
    benchmark.group = f"tabular {table_name}: fit in Python"
    benchmark.name = entry
    scores = []

    if entry == "numbamlp-fit":
        import numbamlp

        def once():
            result = numbamlp.fit(
                table.X_train, table.y_train, X_test=table.X_test, y_test=table.y_test, verbose=0
            )
            scores.append(result.test_accuracy)  # R² for a regression

    else:

        def once():
            estimator = _estimator(entry, table.task)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning
                estimator.fit(table.X_train, table.y_train)
            scores.append(float(estimator.score(table.X_test, table.y_test)))

    once()  # warm-up
    benchmark.pedantic(once, rounds=_rounds(benchmark))
    assert np.isfinite(scores[-1])
    benchmark.extra_info["score"] = scores[-1]
    benchmark.extra_info["task"] = table.task
