"""Sizes the machine cannot hold, and inputs without end, are refused in one line (issue 17,
item 2). Before: `--hidden 1000000000` ended in numpy's MemoryError traceback, 10²⁰ in a
ValueError, a batch of 10¹² with iid sampling likewise, and `predict --input /dev/zero` read
until memory ran out."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from cli_support import one_error_line, run

import numbamlp
from numbamlp.errors import NumbamlpError
from numbamlp.model.memory_budget import check_training_memory, physical_memory
from numbamlp.model.network import Architecture

needs_sysconf = pytest.mark.skipif(physical_memory() is None, reason="memory size unknown")


@pytest.fixture(scope="module")
def train_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("sizes") / "train.csv"
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    lines = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{c}" for r, c in zip(X, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


@needs_sysconf
@pytest.mark.parametrize("width", [10**9, 10**20])
def test_impossible_width_is_one_line(train_csv, width):
    result = run("train", "--train-file", train_csv, "--hidden", width, "--epochs", "1")
    one_error_line(result, f"--hidden: {width} units need", "this machine has")


@needs_sysconf
def test_impossible_iid_batch_is_one_line(train_csv):
    result = run(
        "train", "--train-file", train_csv, "--batch-size", 10**12, "--sampling", "iid",
        "--epochs", "1",
    )  # fmt: skip
    one_error_line(result, "--batch-size: 1000000000000 rows need", "this machine has")


@needs_sysconf
def test_fit_refuses_impossible_width_before_allocating():
    X = np.zeros((10, 4))
    y = np.arange(10) % 2
    with pytest.raises(
        NumbamlpError, match=r"^`hidden`: 1000000000 units need .* GiB for θ.*; this machine has"
    ):
        numbamlp.fit(X, y, hidden=[10**9], epochs=1, verbose=0)


def test_estimate_follows_the_sizes(monkeypatch):
    import numbamlp.model.memory_budget as budget

    arch = Architecture.for_classes(784, [32], 10)
    monkeypatch.setattr(budget, "physical_memory", lambda: 10**6)
    # θ, its gradient and Adam's two moments: 4 · 25 450 parameters · 4 bytes = 407 200 bytes
    with pytest.raises(NumbamlpError, match="this machine has 977 KiB"):
        check_training_memory(arch, 4, 128, 60000, "shuffle", "adam", "`hidden`: 32 units")
    monkeypatch.setattr(budget, "physical_memory", lambda: 10**9)
    check_training_memory(arch, 4, 128, 60000, "shuffle", "adam", "`hidden`: 32 units")
    monkeypatch.setattr(budget, "physical_memory", lambda: None)  # unknown: no check
    check_training_memory(arch, 4, 10**15, 60000, "iid", "adam", "`hidden`: 32 units")


def test_shuffle_batch_larger_than_the_data_is_the_whole_set(train_csv):
    """Shuffle sampling cuts one permutation of the n rows: a larger batch is n, said once."""
    result = run("train", "--train-file", train_csv, "--batch-size", 1000, "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert "the batch size 1000 exceeds the 36 training rows" in result.output
    assert "batch 36," in result.output


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
@pytest.mark.parametrize("command", ["predict", "evaluate", "train"])
def test_endless_input_is_refused(tmp_path, train_csv, command):
    model = tmp_path / "m.npz"
    assert run("train", "--train-file", train_csv, "--epochs", "1", "--save", model).exit_code == 0
    args = {
        "predict": ("predict", "--model", model, "--input", "/dev/zero"),
        "evaluate": ("evaluate", "--model", model, "--test-file", "/dev/zero"),
        "train": ("train", "--train-file", "/dev/zero", "--epochs", "1"),
    }[command]
    one_error_line(run(*args), "/dev/zero is a device, not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo") or sys.platform == "win32", reason="no FIFOs")
def test_fifo_input_is_refused(tmp_path, train_csv):
    model = tmp_path / "m.npz"
    assert run("train", "--train-file", train_csv, "--epochs", "1", "--save", model).exit_code == 0
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)
    one_error_line(run("predict", "--model", model, "--input", fifo), "is a FIFO")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_device_as_model_is_refused_as_such():
    """It said "model file /dev/zero does not exist"."""
    one_error_line(run("predict", "--model", "/dev/zero", "--input", "/dev/zero"), "is a device")
