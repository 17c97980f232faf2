"""Issue 18's promise: a practitioner's table trains well with no options.

scikit-learn's bundled tables, as CSV files with string class labels (tabular_tables.py), are
trained by `numbamlp train --train-file … --test-file … --label-column target` and nothing else,
and by `numbamlp.MLPClassifier()` / `MLPRegressor()` in a pipeline, and must score at least
scikit-learn's own `make_pipeline(StandardScaler(), MLPClassifier(random_state=0))` − 0.02 on the
same split (computed here, in the same run). Diabetes (regression) must reach R² ≥ 0.33 with the
defaults, where scikit-learn's MLPRegressor reaches −1.4 with its own.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_support import run
from tabular_tables import LABEL, TABLES, write_table

pytest.importorskip("sklearn")

pytestmark = pytest.mark.slow

CLASSIFIERS = [name for name, (_, task) in TABLES.items() if task == "classification"]
#: scikit-learn's MLPRegressor with its defaults scores −1.36 on this split; 0.34 with
#: max_iter=1000. The issue asks numbamlp's defaults for 0.33.
DIABETES_R2 = 0.33


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = Path(tmp_path_factory.mktemp("tables"))
    return {name: write_table(name, folder) for name in TABLES}


def sklearn_score(table) -> float:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = make_pipeline(StandardScaler(), MLPClassifier(random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(table.X_train, table.y_train)
    return float(estimator.score(table.X_test, table.y_test))


def summary_score(output: str, what: str) -> float:
    match = re.search(rf"test {what} (-?[0-9.]+)", output)
    assert match, output
    return float(match.group(1))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_the_command_with_no_options_matches_scikit_learn(tables, name):
    table = tables[name]
    result = run(
        "train", "--train-file", table.train_csv, "--test-file", table.test_csv,
        "--label-column", LABEL,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    assert summary_score(out, "accuracy") >= sklearn_score(table) - 0.02, out


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_the_estimator_in_a_pipeline_matches_scikit_learn(tables, name):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import numbamlp

    table = tables[name]
    estimator = make_pipeline(StandardScaler(), numbamlp.MLPClassifier())
    estimator.fit(table.X_train, table.y_train)
    assert estimator.score(table.X_test, table.y_test) >= sklearn_score(table) - 0.02


def test_diabetes_regression_with_no_options(tables):
    table = tables["diabetes"]
    result = run(
        "train", "--train-file", table.train_csv, "--test-file", table.test_csv,
        "--label-column", LABEL,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    assert "regression" in out  # the task was inferred from the float labels, and said so
    assert summary_score(out, "R²") >= DIABETES_R2, out


#: The estimator's defaults are scikit-learn's network (100 relu units, max_iter=200), which
#: overfits 309 rows more than the command's 32 sigmoid units: R² 0.27–0.30 over seeds 0–2
#: (scikit-learn's MLPRegressor with the same defaults: −1.36). The issue sets no bar for it; this
#: one keeps it well clear of scikit-learn's.
REGRESSOR_R2 = 0.25


def test_diabetes_regressor_with_no_options(tables):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import numbamlp

    table = tables["diabetes"]
    estimator = make_pipeline(StandardScaler(), numbamlp.MLPRegressor())
    estimator.fit(table.X_train, table.y_train)
    assert estimator.score(table.X_test, table.y_test) >= REGRESSOR_R2
    assert np.isfinite(estimator.predict(table.X_test)).all()
