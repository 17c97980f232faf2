"""scikit-learn's bundled tables as a practitioner brings them: CSV files with a header, string
class labels (the data set's target names), a 70/30 split stratified for classification, seed 0.

Used by tests/training/test_tabular_defaults.py and benchmarks/test_tabular.py; needs
scikit-learn (the data ships inside it, nothing is downloaded).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: name → (scikit-learn loader, task). The order is the issue's.
TABLES = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
LABEL = "target"


@dataclass(frozen=True)
class Table:
    name: str
    task: str
    train_csv: Path
    test_csv: Path
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray  # strings for classification, floats for regression
    y_test: np.ndarray


def _names(bunch, n_features: int) -> list[str]:
    names = getattr(bunch, "feature_names", None)
    if names is None or len(names) != n_features:
        return [f"x{j}" for j in range(n_features)]
    return [str(n).replace(",", " ") for n in names]


def write_table(name: str, folder: Path) -> Table:
    """The table ``name`` split and written to ``folder``/name_{train,test}.csv."""
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    loader, task = TABLES[name]
    bunch = getattr(sklearn.datasets, loader)()
    X = np.asarray(bunch.data, dtype=np.float64)
    if task == "classification":
        names = np.asarray(getattr(bunch, "target_names", np.unique(bunch.target)))
        y = np.asarray([str(names[k]) for k in bunch.target])
        stratify = y
    else:
        y = np.asarray(bunch.target, dtype=np.float64)
        stratify = None
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.3, stratify=stratify, random_state=0
    )
    header = [*_names(bunch, X.shape[1]), LABEL]
    paths = []
    for part, X_part, y_part in (("train", X_tr, y_tr), ("test", X_te, y_te)):
        path = folder / f"{name}_{part}.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row, label in zip(X_part, y_part, strict=True):
                writer.writerow([*(repr(float(v)) for v in row), label])
        paths.append(path)
    return Table(name, task, paths[0], paths[1], X_tr, X_te, y_tr, y_te)
