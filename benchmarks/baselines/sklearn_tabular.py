"""The scikit-learn job a practitioner would write for one of the CSV tables, as a command:
read the two files, ``make_pipeline(StandardScaler(), MLPClassifier(random_state=0))`` (or
``MLPRegressor``, with ``max_iter=1000`` unless ``--defaults``), fit, print the test score.

    python sklearn_tabular.py TRAIN.csv TEST.csv LABEL classification|regression [--defaults]
"""

from __future__ import annotations

import csv
import sys

import numpy as np


def read(path: str, label: str, task: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    k = header.index(label)
    X = np.array([[float(v) for j, v in enumerate(r) if j != k] for r in body])
    y = np.array([r[k] for r in body])
    return X, (y.astype(np.float64) if task == "regression" else y)


def model(task: str, defaults: bool):
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "regression":
        options = {} if defaults else {"max_iter": 1000}
        return make_pipeline(StandardScaler(), MLPRegressor(random_state=0, **options))
    return make_pipeline(StandardScaler(), MLPClassifier(random_state=0))


def main(argv: list[str]) -> None:
    import warnings

    train, test, label, task = argv[:4]
    X_tr, y_tr = read(train, label, task)
    X_te, y_te = read(test, label, task)
    estimator = model(task, "--defaults" in argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: part of what is measured
        estimator.fit(X_tr, y_tr)
    print(f"score {estimator.score(X_te, y_te):.6f}")


if __name__ == "__main__":
    main(sys.argv[1:])
