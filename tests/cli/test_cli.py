"""The `numbamlp` command line: train / evaluate / predict / gradcheck / info on tiny data.

Most tests run the click app in-process (CliRunner); a few run the installed console script in a
subprocess to check what a user really sees: exit codes, no traceback, a fast --help.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from numbamlp.cli.commands import main

N_FEATURES, N_CLASSES = 4, 3
N_TRAIN, N_TEST = 300, 90
EPOCH_LINE = re.compile(
    r"^epoch +(\d+)  train_loss (\S+)  train_accuracy \d\.\d{4}  test_accuracy (\d\.\d{4})  "
    r"seconds (\d+\.\d\d)$"
)
# Options that make the tiny blobs learnable in a few steps.
FAST = ("--hidden", "8", "--batch-size", "32", "--lr", "0.05")

SCRIPT = Path(sys.executable).with_name("numbamlp")
NUMBAMLP = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "numbamlp.cli.commands"]


# --- fixtures -----------------------------------------------------------------------------------


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in 4-d, centred at 3·e_k: easy to separate, not trivially so."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    X = 3.0 * np.eye(N_CLASSES, N_FEATURES)[y] + rng.normal(size=(n, N_FEATURES))
    return X, y


def _write_csv(path: Path, X: np.ndarray, y: np.ndarray | None, label: str = "label") -> Path:
    names = [f"x{j}" for j in range(X.shape[1])]
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(names + ([label] if y is not None else [])) + "\n")
        for i, row in enumerate(X):
            cells = [repr(float(v)) for v in row] + ([str(int(y[i]))] if y is not None else [])
            f.write(",".join(cells) + "\n")
    return path


class Files:
    """Paths of the small data files every test shares (written once per module)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        X, y = _blobs(N_TRAIN, 0)
        Xt, yt = _blobs(N_TEST, 1)
        self.X_test, self.y_test = Xt, yt
        self.train_npz = root / "train.npz"
        self.test_npz = root / "test.npz"
        np.savez(self.train_npz, X=X, y=y)
        np.savez(self.test_npz, X=Xt, y=yt)
        self.train_csv = _write_csv(root / "train.csv", X, y)
        self.test_csv = _write_csv(root / "test.csv", Xt, yt)
        self.target_csv = _write_csv(root / "target.csv", X, y, label="target")
        self.features_npz = root / "features.npz"
        np.savez(self.features_npz, X=Xt)
        self.features_csv = _write_csv(root / "features.csv", Xt, None)
        self.five_npz = root / "five.npz"
        np.savez(self.five_npz, X=np.ones((10, 5)), y=np.zeros(10, dtype=np.int64))
        self.five_csv = _write_csv(root / "five.csv", np.ones((10, 5)), None)
        Xn = X.copy()
        Xn[7, 2] = np.nan
        self.nan_npz = root / "nan.npz"
        np.savez(self.nan_npz, X=Xn, y=y)
        self.inf_csv = root / "inf.csv"
        self.inf_csv.write_text("x0,x1,x2,x3,label\n1,2,3,4,0\n1,2,inf,4,1\n1,2,3,4,2\n")
        self.nan_features = root / "nan_features.npz"
        np.savez(self.nan_features, X=np.array([[1.0, 2, 3, 4], [1, np.nan, 3, 4]]))
        self.big_labels = root / "big_labels.npz"
        np.savez(self.big_labels, X=Xt[:10], y=np.arange(10))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Files:
    return Files(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def model_file(files) -> Path:
    """A model trained once on the blobs, shared by the evaluate/predict tests."""
    path = files.root / "model.npz"
    result = run("train", *_user_data(files), *FAST, "--epochs", "5", "--save", path)
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(autouse=True)
def _restore_numba_threads():
    """--threads changes Numba's thread count for the whole process; put it back."""
    import numba

    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _user_data(files: Files, kind: str = "npz") -> tuple:
    if kind == "csv":
        return ("--train-file", files.train_csv, "--test-file", files.test_csv)
    return ("--train-file", files.train_npz, "--test-file", files.test_npz)


def _epoch_lines(output: str) -> list[tuple[int, float, float, float]]:
    rows = []
    for line in output.splitlines():
        m = EPOCH_LINE.match(line)
        if m:
            rows.append((int(m[1]), float(m[2]), float(m[3]), float(m[4])))
    return rows


def _assert_clean_failure(result, *fragments: str) -> str:
    """Exit status ≠ 0, one error message naming the problem, no traceback."""
    output = result.output
    assert result.exit_code != 0, output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    assert len(re.findall(r"^error:", output, flags=re.M)) == 1, output
    for fragment in fragments:
        assert fragment in output, output
    return output


# --- help and start-up --------------------------------------------------------------------------


def test_importing_the_cli_does_not_import_numba():
    code = (
        "import sys, numbamlp.cli.commands\n"
        "from numbamlp.cli.commands import main\n"
        "for args in (['--help'], ['train', '--help'], ['predict', '--help']):\n"
        "    try:\n"
        "        main(args, prog_name='numbamlp')\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "print('numba' in sys.modules, 'llvmlite' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stderr.strip() == "False False"
    simple = subprocess.run(
        [sys.executable, "-c", "import numbamlp.cli.commands, sys; print('numba' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert simple.stdout.strip() == "False"


def test_train_loads_numba_only_beside_the_data():
    """`train` starts reading the data in a second thread before it imports Numba, so the two
    overlap (start-up time, issue 3 target 6). What runs before that thread starts must not
    import Numba: option checks, and the checkpoint directory check of a run without one."""
    code = (
        "import sys\n"
        "import numbamlp.cli.commands\n"
        "from numbamlp.training.config import run_config\n"
        "from numbamlp.training.plan import RunPlan, checkpoint_directory\n"
        "from numbamlp.training.config import RunConfig\n"
        "given = {k: v for k, v in vars(RunConfig()).items()} | {'hidden': ('32',)}\n"
        "plan = RunPlan.create(given, {}, 20, None, None)\n"
        "assert plan.config == run_config(given) and plan.config.hidden == (32,)\n"
        "assert checkpoint_directory(None, None, None) is None\n"
        "print('numba' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"


def test_help_in_a_subprocess():
    top = subprocess.run(NUMBAMLP + ["--help"], capture_output=True, text=True, timeout=60)
    assert top.returncode == 0, top.stderr
    for command in ("train", "evaluate", "predict", "gradcheck", "info"):
        assert command in top.stdout
    sub = subprocess.run(NUMBAMLP + ["train", "--help"], capture_output=True, text=True, timeout=60)
    assert sub.returncode == 0, sub.stderr
    for option in (
        "--dataset",
        "--data-dir",
        "--train-file",
        "--test-file",
        "--hidden",
        "--activation",
        "--head",
        "--optimizer",
        "--lr",
        "--schedule",
        "--sampling",
        "--batch-size",
        "--epochs",
        "--seed",
        "--threads",
        "--dtype",
        "--save",
        "--metrics-out",
        "--quiet",
    ):
        assert option in sub.stdout, option


def test_python_dash_m_works():
    out = subprocess.run(
        [sys.executable, "-m", "numbamlp.cli.commands", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "train" in out.stdout


@pytest.mark.parametrize(
    "command, options",
    [
        ("evaluate", ("--model", "--dataset", "--test-file")),
        ("predict", ("--model", "--input", "--output", "--proba")),
        ("gradcheck", ("--activation", "--head", "--fd-step", "--tolerance")),
        ("info", ()),
    ],
)
def test_command_help(command, options):
    result = run(command, "--help")
    assert result.exit_code == 0
    for option in options:
        assert option in result.output


def test_version():
    import numbamlp

    result = run("--version")
    assert result.exit_code == 0
    assert numbamlp.__version__ in result.output


# --- train on user files ------------------------------------------------------------------------


def test_train_evaluate_predict_round_trip(files, tmp_path):
    model = tmp_path / "m.npz"
    metrics_path = tmp_path / "m.jsonl"
    result = run(
        "train",
        *_user_data(files),
        *FAST,
        "--epochs",
        "5",
        "--save",
        model,
        "--metrics-out",
        metrics_path,
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Dense(4 => 8, sigmoid) → Dense(8 => 3) → softmax" in out
    assert f"{N_TRAIN} train / {N_TEST} test samples" in out

    epochs = _epoch_lines(out)
    assert [e[0] for e in epochs] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(loss) and loss > 0 for _, loss, _, _ in epochs)
    assert epochs[-1][1] < epochs[0][1]  # the loss went down
    final = re.search(r"^test accuracy (\d\.\d{4}) after 5 epochs \(", out, flags=re.M)
    assert final, out
    accuracy = float(final[1])
    assert accuracy == epochs[-1][2]
    assert accuracy >= 0.9
    assert f"saved model to {model}" in out
    # not a terminal: no progress bar
    assert "epoch 1/5" not in out and "[#" not in out and "%" not in out

    records = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    for record, (_, loss, acc, _) in zip(records, epochs, strict=True):
        assert {"epoch", "train_loss", "test_accuracy", "seconds"} <= set(record)
        assert record["train_loss"] == pytest.approx(loss, abs=1e-4)
        assert record["test_accuracy"] == pytest.approx(acc, abs=1e-4)
        assert record["seconds"] >= 0

    from numbamlp.model.modelio import load_model

    loaded = load_model(model)
    assert loaded.optimizer.name == "adam"
    assert loaded.optimizer.step_count == 5 * math.ceil(N_TRAIN / 32)
    assert loaded.metadata["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    # the features were standardised (Z.1) over the training rows: the model file records it,
    # and predict and evaluate apply it to the raw features
    assert loaded.input.standardized and len(loaded.input.mean) == 4
    from numbamlp.datasets.inputscale import prepare_input

    X_test, scale = prepare_input(files.X_test, loaded.input, "x", loaded.model.dtype)
    expected = loaded.model.predict(X_test, scale)

    result = run("evaluate", "--model", model, "--test-file", files.test_npz)
    assert result.exit_code == 0, result.output
    assert f"accuracy {accuracy:.4f} on {N_TEST} samples" in result.output
    rows = [line for line in result.output.splitlines() if re.match(r"^\s*\d+ \|", line)]
    assert len(rows) == N_CLASSES
    C = np.array([[int(c) for c in row.split("|")[1].split()] for row in rows])
    np.testing.assert_array_equal(C.sum(axis=1), np.bincount(files.y_test, minlength=N_CLASSES))
    np.testing.assert_array_equal(C.sum(axis=0), np.bincount(expected, minlength=N_CLASSES))

    result = run("predict", "--model", model, "--input", files.test_npz)
    assert result.exit_code == 0, result.output
    predicted = [int(line) for line in result.stdout.splitlines()]
    assert predicted == expected.tolist()

    out_file = tmp_path / "classes.txt"
    result = run("predict", "--model", model, "--input", files.features_csv, "--output", out_file)
    assert result.exit_code == 0, result.output
    assert f"wrote {N_TEST} predictions to {out_file}" in result.output
    assert [int(v) for v in out_file.read_text().split()] == expected.tolist()

    result = run("predict", "--model", model, "--input", files.features_npz, "--proba")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "class,0,1,2"  # the columns are headed by the class names
    table = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    assert table.shape == (N_TEST, 1 + N_CLASSES)
    np.testing.assert_array_equal(table[:, 0], expected)
    np.testing.assert_allclose(table[:, 1:].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(table[:, 1:].argmax(axis=1), expected)


def test_train_on_csv_files(files, tmp_path):
    result = run("train", *_user_data(files, "csv"), *FAST, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert len(_epoch_lines(result.output)) == 2
    assert "after 2 epochs" in result.output


def test_label_column_and_holdout(files):
    result = run(
        "train", "--train-file", files.target_csv, "--label-column", "target", *FAST, "--epochs", 1
    )
    assert result.exit_code == 0, result.output
    # without --test-file, 10 % of the rows are held out
    assert f"{N_TRAIN - 30} train / 30 test samples" in result.output
    assert "after 1 epoch (" in result.output  # singular


def test_quiet_prints_only_the_final_line(files, tmp_path):
    model = tmp_path / "q.npz"
    result = run("train", *_user_data(files), *FAST, "--epochs", "3", "--quiet", "--save", model)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, lines
    pattern = r"test accuracy \d\.\d{4} after 3 epochs \(\d+\.\d s; ready in \d+\.\d\d s\)"
    assert re.fullmatch(pattern, lines[0])
    assert model.is_file()


def test_hidden_repeat_equals_comma_list(files):
    outs = []
    for hidden in (("--hidden", "6", "--hidden", "5"), ("--hidden", "6,5"), ("--hidden", " 6 , 5")):
        result = run("train", *_user_data(files), *hidden, "--epochs", "1", "--lr", "0.05")
        assert result.exit_code == 0, result.output
        outs.append(result.output.splitlines()[0])
    assert outs[0] == outs[1] == outs[2]
    assert "Dense(4 => 6, sigmoid) → Dense(6 => 5, sigmoid) → Dense(5 => 3) → softmax" in outs[0]


def test_no_hidden_layer_and_per_layer_activations(files):
    result = run("train", *_user_data(files), "--hidden", "none", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("MLP(Dense(4 => 3) → softmax;")
    result = run(
        "train", *_user_data(files), "--hidden", "6,5", "--activation", "relu,tanh", "--epochs", 1
    )
    assert result.exit_code == 0, result.output
    assert "Dense(4 => 6, relu) → Dense(6 => 5, tanh) → Dense(5 => 3)" in result.output


def _saved_run(files, tmp_path, name, *options):
    path = tmp_path / name
    result = run("train", *_user_data(files), "--epochs", "2", "--save", path, *options)
    assert result.exit_code == 0, result.output
    from numbamlp.model.modelio import load_model

    return load_model(path), result.output


OPTION_CASES = [
    (("--optimizer", "sgd"), {"optimizer": "sgd"}),
    (("--optimizer", "momentum", "--momentum", "0.8"), {"optimizer": "momentum", "mu": 0.8}),
    (("--optimizer", "adagrad", "--lr", "0.1"), {"optimizer": "adagrad"}),
    (("--optimizer", "adadelta"), {"optimizer": "adadelta"}),
    (("--optimizer", "rmsprop", "--rho", "0.8"), {"optimizer": "rmsprop", "rho": 0.8}),
    (
        ("--optimizer", "adam", "--beta1", "0.8", "--beta2", "0.99", "--eps", "1e-7"),
        {"optimizer": "adam", "beta1": 0.8, "beta2": 0.99, "eps": 1e-7},
    ),
    (("--schedule", "step", "--decay-epochs", "1", "--decay-rate", "0.5"), {"lr": 0.05}),
    (("--schedule", "inverse-time", "--decay-epochs", "0.5"), {"lr": 0.05}),
    (("--schedule", "cosine", "--min-lr", "0.001"), {"lr": 0.05}),
    (("--sampling", "iid"), {}),
    (("--sampling", "shuffle", "--batch-size", "1000"), {}),
    (("--head", "modified-softmax"), {"head": "modified-softmax"}),
    (("--dtype", "float64"), {"dtype": "float64"}),
    (("--dtype", "float32", "--threads", "1"), {"dtype": "float32"}),
]


@pytest.mark.parametrize(
    "options, check",
    OPTION_CASES,
    ids=[" ".join(o).replace("--", "") for o, _ in OPTION_CASES],
)
def test_every_option_runs(files, tmp_path, options, check):
    defaults = ("--hidden", "8", "--batch-size", "32")
    if "--lr" not in options and "--optimizer" not in options:
        defaults += ("--lr", "0.05")
    loaded, out = _saved_run(files, tmp_path, "m.npz", *defaults, *options)
    epochs = _epoch_lines(out)
    assert [e[0] for e in epochs] == [1, 2]
    assert all(math.isfinite(e[1]) for e in epochs)
    assert epochs[1][1] < epochs[0][1], out  # every optimizer and schedule makes progress
    opt = loaded.optimizer
    assert opt.name == check.get("optimizer", "adam")
    for key in ("mu", "rho", "beta1", "beta2", "eps", "lr"):
        if key in check:
            assert opt.hyper[key] == pytest.approx(check[key])
    assert loaded.model.architecture.head == check.get("head", "softmax")
    assert str(loaded.model.dtype) == check.get("dtype", "float32")
    if "--sampling" in options and "iid" in options:
        assert "sampling iid" in out


def test_schedules_change_the_step_size(files, tmp_path):
    """The metrics file records γ at each epoch's last step: constant stays, the others decay."""
    lrs = {}
    for schedule in ("constant", "step", "inverse-time", "cosine"):
        metrics = tmp_path / f"{schedule}.jsonl"
        result = run(
            "train",
            *_user_data(files),
            *FAST,
            "--epochs",
            "3",
            "--schedule",
            schedule,
            "--decay-epochs",
            "1",
            "--metrics-out",
            metrics,
            "--quiet",
        )
        assert result.exit_code == 0, result.output
        lrs[schedule] = [json.loads(line)["lr"] for line in metrics.read_text().splitlines()]
    assert lrs["constant"] == [0.05, 0.05, 0.05]
    for schedule in ("step", "inverse-time", "cosine"):
        assert lrs[schedule][0] > lrs[schedule][1] > lrs[schedule][2], (schedule, lrs)
    assert lrs["step"] == pytest.approx([0.05 * 0.5**0, 0.05 * 0.5**1, 0.05 * 0.5**2])
    total = 3 * math.ceil(N_TRAIN / 32)  # γ_p of (G.4) at the run's last step p = T
    assert lrs["cosine"][2] == pytest.approx(0.025 * (1 + math.cos(math.pi * (total - 1) / total)))


def test_same_seed_same_model_whatever_the_threads(files, tmp_path):
    a, _ = _saved_run(files, tmp_path, "a.npz", *FAST, "--seed", "3", "--threads", "1")
    b, _ = _saved_run(files, tmp_path, "b.npz", *FAST, "--seed", "3", "--threads", "2")
    c, _ = _saved_run(files, tmp_path, "c.npz", *FAST, "--seed", "4")
    assert a.model.params.theta.tobytes() == b.model.params.theta.tobytes()
    assert a.model.params.theta.tobytes() != c.model.params.theta.tobytes()


def test_eval_every_prints_intermediate_accuracy(files):
    result = run("train", *_user_data(files), *FAST, "--epochs", "1", "--eval-every", "1e-9")
    assert result.exit_code == 0, result.output
    assert "  accuracy(Xtest, ytest) = " in result.output


def _run_on_a_terminal(*args) -> str:
    """Run the console script with a pseudo-terminal as stdin/stdout/stderr; return its output."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        NUMBAMLP + [str(a) for a in args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0, b"".join(chunks)
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def test_progress_bar_on_a_terminal(files):
    """On a TTY a progress bar is drawn per epoch, and each epoch line still gets its own line;
    --quiet hides the bar too."""
    text = _run_on_a_terminal("train", *_user_data(files), *FAST, "--epochs", "2")
    assert "epoch 1/2  [" in text and "epoch 2/2  [" in text
    assert "100%" in text
    assert re.search(r"\] +\d+%  \S+ batches/s  ETA \d+:\d\d  loss \d\.\d{4}", text), text
    assert [e[0] for e in _epoch_lines(text)] == [1, 2]
    assert "Traceback" not in text
    # the bar is drawn over in place and blanked: the screen keeps one line per epoch
    screen = [line.rsplit("\r", 1)[-1].strip() for line in text.split("\n")]
    assert not [line for line in screen if "batches/s" in line or "[#" in line], screen

    quiet = _run_on_a_terminal("train", *_user_data(files), *FAST, "--epochs", "2", "--quiet")
    assert "epoch 1/2" not in quiet and "%" not in quiet
    assert re.fullmatch(
        r"test accuracy \d\.\d{4} after 2 epochs \(\d+\.\d s; ready in \d+\.\d\d s\) "
        r"\(the model was not saved: give --save PATH to keep it\)\n",
        quiet,
    )


# --- bad input: train ---------------------------------------------------------------------------


@pytest.fixture
def precious(tmp_path) -> Path:
    """A model file that a failing command must leave exactly as it was."""
    path = tmp_path / "precious.npz"
    path.write_bytes(b"PK\x03\x04 pretend this is last week's model" + bytes(range(256)))
    return path


def _unchanged(path: Path) -> None:
    assert path.read_bytes() == (
        b"PK\x03\x04 pretend this is last week's model" + bytes(range(256))
    )
    leftovers = [p.name for p in path.parent.iterdir() if path.name in p.name]
    assert leftovers == [path.name]  # no temporary file beside it


BAD_OPTIONS = [
    (("--batch-size", "0"), "--batch-size"),
    (("--lr", "-1"), "--lr"),
    (("--lr", "0"), "--lr"),
    (("--lr", "nan"), "--lr"),
    (("--weight-decay", "-0.1"), "--weight-decay"),
    (("--weight-decay", "nan"), "--weight-decay"),
    (("--hidden", ""), "empty entry"),
    (("--hidden", "32,,16"), "empty entry in '32,,16'"),
    (("--hidden", "0"), "layer width must be positive"),
    (("--hidden", "wide"), "'wide' is not a layer width"),
    (("--activation", "nope"), "unknown activation 'nope'"),
    (("--hidden", "8", "--activation", "relu,tanh"), "2 activations for 1 hidden layer"),
    (("--epochs", "0"), "--epochs"),
    (("--threads", "999"), "999 threads requested"),
    (("--threads", "0"), "--threads"),
    (("--optimizer", "newton"), "--optimizer"),
    (("--dtype", "float16"), "--dtype"),
    (("--sampling", "stratified"), "--sampling"),
    (("--head", "sigmoid"), "--head"),
    (("--optimizer", "adam", "--momentum", "0.5"), "no hyperparameter 'mu'"),
    (("--optimizer", "momentum", "--momentum", "1.5"), "mu must be in [0, 1)"),
    (("--schedule", "step", "--decay-rate", "2"), "decay rate"),
    (("--schedule", "cosine", "--min-lr", "5"), "minimum learning rate"),
]


@pytest.mark.parametrize(
    "options, fragment", BAD_OPTIONS, ids=[" ".join(o) or "empty" for o, _ in BAD_OPTIONS]
)
def test_impossible_options(files, precious, options, fragment):
    result = run("train", *_user_data(files), "--epochs", "1", "--save", precious, *options)
    _assert_clean_failure(result, fragment)
    _unchanged(precious)


def test_missing_train_file(files, precious, tmp_path):
    result = run("train", "--train-file", tmp_path / "nope.npz", "--save", precious)
    _assert_clean_failure(result, "nope.npz does not exist")
    _unchanged(precious)


@pytest.mark.parametrize(
    "which, fragments",
    [
        ("nan_npz", ("missing value 'nan' at row 7, column 2", "remove the rows")),
        ("inf_csv", ("not a finite number", "NaN/Inf")),
    ],
)
def test_non_finite_features(files, precious, which, fragments):
    path = getattr(files, which)
    result = run("train", "--train-file", path, "--epochs", "1", "--save", precious)
    _assert_clean_failure(result, str(path), *fragments)
    _unchanged(precious)


def test_labels_outside_the_classes(files, precious):
    result = run(
        "train", *_user_data(files), "--n-classes", "2", "--epochs", "1", "--save", precious
    )
    _assert_clean_failure(result, "label 2", "outside 0..1", "--n-classes")
    _unchanged(precious)


def test_a_test_label_the_training_data_lacks_is_named(files, tmp_path):
    """The classes are the training file's labels (scikit-learn's); a test label outside them
    is one clear error naming it, not a silently wider network."""
    result = run(
        "train", "--train-file", files.train_npz, "--test-file", files.big_labels, "--epochs", 1
    )
    _assert_clean_failure(result, "label '3' at row 3", "not one of the 3 classes", "(0, 1, 2)")


def test_test_file_with_other_feature_count(files, precious):
    result = run(
        "train", "--train-file", files.train_npz, "--test-file", files.five_npz, "--save", precious
    )
    _assert_clean_failure(result, "5 features", "has 4")
    _unchanged(precious)


def test_test_file_without_train_file(files, precious):
    result = run("train", "--test-file", files.test_npz, "--save", precious)
    _assert_clean_failure(result, "--test-file: needs --train-file")
    _unchanged(precious)


def test_unwritable_outputs_fail_before_training(files, tmp_path):
    result = run("train", *_user_data(files), "--save", tmp_path / "no" / "m.npz")
    _assert_clean_failure(result, "does not exist")
    assert "epoch" not in result.output
    result = run("train", *_user_data(files), "--metrics-out", tmp_path)
    _assert_clean_failure(result, "is a directory")


def test_divergence_is_reported_and_keeps_the_old_model(files, precious, tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    result = run(
        "train",
        "--train-file",
        files.train_npz,
        "--activation",
        "relu",
        "--optimizer",
        "sgd",
        "--lr",
        "1e6",
        "--epochs",
        "5",
        "--save",
        precious,
        "--metrics-out",
        metrics,
    )
    output = _assert_clean_failure(result, "training diverged", "smaller learning rate", "--lr ")
    suggested = float(re.search(r"--lr (\S+) \(", output)[1])
    assert suggested < 1e6
    assert precious.read_bytes().startswith(b"PK\x03\x04 pretend")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "precious.npz"]


def test_interrupt_keeps_the_old_model(files, precious, monkeypatch):
    from numbamlp.training.trainer import Trainer

    def interrupted(self, on_batch=None, until=None, should_stop=None):
        raise KeyboardInterrupt  # what a second Ctrl-C raises

    monkeypatch.setattr(Trainer, "run_batches", interrupted)
    result = run("train", *_user_data(files), "--epochs", "1", "--save", precious)
    assert result.exit_code == 130
    assert "interrupted" in result.output
    assert "Traceback" not in result.output
    _unchanged(precious)


# --- bad input: built-in data sets via --data-dir -----------------------------------------------


def _idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _mnist_copy(folder: Path, how: str) -> str:
    """A --data-dir holding the bundled MNIST files, one of them broken in the way ``how`` says.

    The intact files are symlinks (no copying); the broken one is train-images, the first file
    read, so its structural problem is what gets reported. Returns the expected message part."""
    from numbamlp.datasets.loaders import MNIST_DIR

    folder.mkdir()
    for source in MNIST_DIR.glob("*-ubyte.gz"):
        (folder / source.name).symlink_to(source)
    name = "train-images-idx3-ubyte"
    gz = folder / f"{name}.gz"
    if how == "missing":
        (folder / "t10k-labels-idx1-ubyte.gz").unlink()
        return "lacks t10k-labels-idx1-ubyte"
    gz.unlink()
    rng = np.random.default_rng(0)
    if how == "truncated-gzip":
        data = (MNIST_DIR / gz.name).read_bytes()
        gz.write_bytes(data[: len(data) // 3])
        return "truncated gzip"
    if how == "corrupt-gzip":
        gz.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
        return "corrupt gzip"
    raw = folder / name  # the uncompressed spelling
    if how == "truncated":
        raw.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 28, 28) + b"\0" * 100)
        return "is truncated"
    if how == "wrong-magic":
        raw.write_bytes(b"\x12\x34\x08\x03" + struct.pack(">3I", 1, 28, 28) + b"\0" * 784)
        return "is not an IDX file"
    if how == "empty":
        raw.write_bytes(b"")
        return "is empty"
    assert how == "not-mnist"  # structurally valid, but other pixels
    raw.write_bytes(_idx(rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)))
    return "failed its sha256 checksum"


@pytest.mark.parametrize(
    "how",
    ["missing", "truncated-gzip", "corrupt-gzip", "truncated", "wrong-magic", "empty", "not-mnist"],
)
def test_broken_mnist_copy(tmp_path, precious, how):
    fragment = _mnist_copy(tmp_path / "mnist", how)
    result = run("train", "--data-dir", tmp_path / "mnist", "--epochs", "1", "--save", precious)
    _assert_clean_failure(result, fragment)
    _unchanged(precious)


def test_data_dir_that_does_not_exist(tmp_path):
    result = run("train", "--data-dir", tmp_path / "nowhere", "--epochs", "1")
    _assert_clean_failure(result, "does not exist", "--data-dir")


def test_broken_fashion_mnist_copy(tmp_path):
    folder = tmp_path / "fashion"
    folder.mkdir()
    for name, shape in (
        ("train-images-idx3-ubyte", (20, 28, 28)),
        ("train-labels-idx1-ubyte", (20,)),
        ("t10k-images-idx3-ubyte", (5, 28, 28)),
        ("t10k-labels-idx1-ubyte", (5,)),
    ):
        (folder / name).write_bytes(_idx(np.zeros(shape, dtype=np.uint8)))
    result = run("train", "--dataset", "fashion-mnist", "--data-dir", folder, "--epochs", "1")
    _assert_clean_failure(result, "Fashion-MNIST", "failed its sha256 checksum")


# --- bad input: evaluate / predict --------------------------------------------------------------


def test_evaluate_feature_count_mismatch(model_file, files):
    result = run("evaluate", "--model", model_file, "--test-file", files.five_npz)
    _assert_clean_failure(result, "5 features but the model expects 4")


def test_predict_feature_count_mismatch(model_file, files, precious):
    for path in (files.five_npz, files.five_csv):
        result = run("predict", "--model", model_file, "--input", path, "--output", precious)
        _assert_clean_failure(result, "5 features but the model expects 4")
        _unchanged(precious)


def test_evaluate_on_mnist_with_a_4_feature_model(model_file):
    result = run("evaluate", "--model", model_file, "--dataset", "mnist")
    _assert_clean_failure(result, "784 features but the model expects 4")


def test_evaluate_labels_outside_the_model(model_file, files):
    result = run("evaluate", "--model", model_file, "--test-file", files.big_labels)
    _assert_clean_failure(result, "label '3' at row 3 is not one of the 3 classes")


def test_evaluate_needs_data_for_a_file_trained_model(model_file):
    result = run("evaluate", "--model", model_file)
    _assert_clean_failure(result, "--test-file or --dataset")


def test_predict_rejects_non_finite_input(model_file, files):
    result = run("predict", "--model", model_file, "--input", files.nan_features)
    _assert_clean_failure(result, "missing value 'nan' at row 1, column 1")


def test_predict_missing_input_and_bad_output(model_file, files, tmp_path):
    _assert_clean_failure(
        run("predict", "--model", model_file, "--input", tmp_path / "none.npz"), "does not exist"
    )
    result = run(
        "predict",
        "--model",
        model_file,
        "--input",
        files.features_npz,
        "--output",
        tmp_path / "x/y",
    )
    _assert_clean_failure(result, "does not exist")


def _corrupt_models(model_file: Path, folder: Path) -> dict[str, Path]:
    data = model_file.read_bytes()
    paths = {
        "missing": folder / "missing.npz",
        "truncated": folder / "truncated.npz",
        "random": folder / "random.npz",
        "empty": folder / "empty.npz",
        "data-file": folder / "data.npz",
    }
    paths["truncated"].write_bytes(data[: len(data) // 2])
    paths["random"].write_bytes(np.random.default_rng(0).bytes(2000))
    paths["empty"].write_bytes(b"")
    paths["data-file"].write_bytes((model_file.parent / "train.npz").read_bytes())
    return paths


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("kind", ["missing", "truncated", "random", "empty", "data-file"])
def test_corrupt_model_file(model_file, files, tmp_path, command, kind):
    path = _corrupt_models(model_file, tmp_path)[kind]
    extra = (
        ("--test-file", files.test_npz) if command == "evaluate" else ("--input", files.test_npz)
    )
    result = run(command, "--model", path, *extra)
    fragment = "does not exist" if kind == "missing" else "is not a valid numbamlp model"
    _assert_clean_failure(result, str(path), fragment)


# --- real subprocesses: exit status and no traceback --------------------------------------------


def _subprocess(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        NUMBAMLP + [str(a) for a in args], capture_output=True, text=True, timeout=120
    )


def test_subprocess_bad_inputs_exit_cleanly(files, model_file, tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(model_file.read_bytes()[:200])
    cases = [
        (("train", "--train-file", files.train_npz, "--batch-size", "0"), "--batch-size"),
        (("train", "--train-file", files.nan_npz, "--epochs", "1"), "missing value 'nan'"),
        (("evaluate", "--model", corrupt, "--test-file", files.test_npz), "not a valid numbamlp"),
        (("predict", "--model", model_file, "--input", files.five_npz), "5 features"),
    ]
    for args, fragment in cases:
        out = _subprocess(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr + out.stdout
        assert fragment in out.stderr, (args, out.stderr)
        assert re.fullmatch(r"error: [^\n]*\n", out.stderr), out.stderr  # one line


def test_subprocess_divergence(files, precious):
    out = _subprocess(
        "train",
        "--train-file",
        files.train_npz,
        "--activation",
        "relu",
        "--optimizer",
        "sgd",
        "--lr",
        "1e6",
        "--epochs",
        "5",
        "--save",
        precious,
        "--quiet",
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("error: training diverged")
    assert "smaller learning rate" in out.stderr
    _unchanged(precious)


# --- gradcheck / info ---------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["softmax", "modified-softmax"])
@pytest.mark.parametrize(
    "activation", ["sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity"]
)
def test_gradcheck_passes(activation, head):
    result = run("gradcheck", "--activation", activation, "--head", head)
    assert result.exit_code == 0, result.output
    rows = re.findall(r"^\s+([Wb]\^\d)\s+(\S+)\s+(\S+)$", result.output, flags=re.M)
    assert [r[0] for r in rows] == ["W^1", "b^1", "W^2", "b^2", "W^3", "b^3"]
    assert max(float(r[1]) for r in rows) <= 1e-6
    assert "ok: largest relative error" in result.output
    assert f"Dense(6 => 5, {activation}) → Dense(5 => 4, {activation})" in result.output


def test_gradcheck_relu_away_from_kinks_for_many_seeds():
    """Dead ReLUs with zero biases put pre-activations exactly on the kink; gradcheck avoids it."""
    for seed in range(4):
        for head in ("softmax", "modified-softmax"):
            result = run("gradcheck", "--activation", "relu", "--head", head, "--seed", seed)
            assert result.exit_code == 0, (seed, head, result.output)


def test_gradcheck_options():
    result = run("gradcheck", "--inputs", "3", "--hidden", "none", "--n-classes", "2")
    assert result.exit_code == 0, result.output
    assert "Dense(3 => 2) → softmax" in result.output
    assert re.findall(r"^\s+([Wb]\^\d)", result.output, flags=re.M) == ["W^1", "b^1"]


def test_gradcheck_tolerance_failure():
    result = run("gradcheck", "--tolerance", "1e-30")
    assert result.exit_code == 1
    assert re.search(r"^FAILED: largest relative error \S+ > tolerance 1e-30$", result.output, re.M)
    assert "ok:" not in result.output


def test_info():
    import numba

    result = run("info")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"numba {numba.__version__}" in out
    assert re.search(r"^threads: \d+ of \d+ \(cores: \d+\), threading layer: \S+", out, re.M)
    assert "threading layer: not initialised" not in out
    assert re.search(r"^JIT cache: \S+", out, re.M)
    assert re.search(r"^dataset mnist: .*numbamlp/data/mnist$", out, re.M)
    assert re.search(r"^dataset fashion-mnist: \S", out, re.M)


def test_predict_reads_npy_features(model_file, files, tmp_path):
    """A .npy file of the features predicts what the .npz holding the same array does."""
    with np.load(files.features_npz) as archive:
        X = archive["X"]
    npy = tmp_path / "features.npy"
    np.save(npy, X)
    from_npz = run("predict", "--model", model_file, "--input", files.features_npz)
    from_npy = run("predict", "--model", model_file, "--input", npy)
    assert from_npy.exit_code == 0, from_npy.output
    assert from_npy.stdout == from_npz.stdout and len(from_npy.stdout.splitlines()) == len(X)


def test_predict_refuses_bad_npy_files(model_file, tmp_path, precious):
    """Pickled objects, a header declaring more data than the file holds, a non-.npy file, a
    1-d array: one clear error each, the output untouched."""
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    short = tmp_path / "short.npy"
    np.save(short, np.zeros((1000, 4)))
    short.write_bytes(short.read_bytes()[:500])
    text = tmp_path / "text.npy"
    text.write_text("1,2,3,4\n")
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(4))
    cases = {
        pickled: "is an object array (pickled Python objects)",
        short: "truncated or damaged: its .npy header declares shape (1000, 4)",
        text: "the file is not a numpy array (no .npy header)",
        flat: "X must be a 2-d numeric array",
    }
    for path, fragment in cases.items():
        result = run("predict", "--model", model_file, "--input", path, "--output", precious)
        _assert_clean_failure(result, fragment, str(path))
        _unchanged(precious)
