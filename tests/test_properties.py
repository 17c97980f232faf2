r"""Property-based tests of every reader of untrusted files, and the table of bad inputs tried.

The readers: IDX files (``idx.read_idx``, gzipped or raw), user data (``.npz``/``.csv``:
``datasets.load_arrays_file``, ``load_user_dataset``, ``load_features_file``), and model files
(``modelio.load_model``); every ``.npz`` goes through ``npzfile.NpzReader``. The property, for
any input: a valid result (checked: shapes, dtypes, finite values, labels in range, typed
metadata) or a NumbamlpError whose message is one line naming the file. Never another
exception, a numpy warning (the CLI user would see it), a hang (a SIGALRM guard fails the test
after 20 s), an allocation beyond 32 MB + 64 × the file's size (tracemalloc), or code run from
the file (object arrays hold a Tripwire whose unpickling would create a file).

Hypothesis runs derandomized with no example database, so CI sees the same examples every time
(CI runs them with NUMBAMLP_FUZZ=ci, all the counts below: 13 s on the 2-core dev machine; a plain
`pytest` runs a quarter of each count);
``NUMBAMLP_FUZZ=deep pytest tests/test_properties.py`` runs ten times the examples with fresh
seeds (about 4 minutes).

Generated inputs (each example checks the property above):

| property test | inputs | examples |
|---|---|---|
| test_valid_idx_reads_back | valid IDX files: every type code, NaN/Inf, 1-3 dimensions, raw or gzipped; must read back exactly | 60 |
| test_damaged_idx_gives_array_or_numbamlp_error | a valid IDX file with one hostile header field (a dimension of 2³¹-1 … 2³²-1, ndim 0-255, type code, magic), or 30-255 consistent dimensions, or damaged bytes (truncated anywhere, a header byte flipped or set to 00/01/7F/80/FF, any byte flipped, bytes appended, cut or inserted); raw, gzipped after the damage, or gzipped then damaged; read by read_idx and load_features_file | 250 |
| test_arbitrary_bytes_as_idx | up to 300 random bytes | 60 |
| test_damaged_mnist_folder | four consistent tiny IDX files, one replaced by a damaged or a foreign valid one; load_mnist(D, verify=False) | 80 |
| test_user_npz_valid_or_numbamlp_error | X and y as users save them: ten numeric dtypes (float16, big-endian, bool, uint64 …), one in ten complex/str/bytes/datetime/timedelta/void/structured; wrong shapes (0-d, 1-d, 3-d, 0 rows or columns), lengths; NaN, Inf, negative, fractional, huge labels; a member dropped, renamed or extra; savez or savez_compressed. Valid results must equal what was saved | 120 |
| test_damaged_npz | the same archives, damaged anywhere or inside a .npy header | 150 |
| test_npz_with_crafted_npy_header | X, y or an extra member replaced by a .npy whose header is hostile (shape huge, negative, 70-d, not a tuple; dtype object, unknown, structured; fortran_order not a bool; keys missing; code instead of a literal; unclosed or 3000-deep brackets; versions 1.0, 2.0, 3.0, 9.9) or by bytes that are not .npy | 150 |
| test_object_arrays_are_never_unpickled | X, y or an extra member an object array holding a Tripwire | 20 |
| test_csv_valid_or_numbamlp_error | CSV with the label column anywhere; cells numbers or junk (nan, inf, 1e999, empty, text, 1_000, 0x10, quotes, NUL, tab, an Arabic digit …); \n, \r\n or \r line ends; a quote, comma, newline, NUL, BOM or U+2028 inserted; an open quote before the header; UTF-8, UTF-8 with BOM, UTF-16, Latin-1; damaged bytes | 200 |
| test_arbitrary_bytes_as_user_data | up to 200 random bytes as .npz and as .csv | 50 |
| test_valid_models_load | four valid model files: 0-2 hidden layers, both heads, both dtypes, no optimizer, sgd, momentum, adam | 40 |
| test_damaged_model_bytes | those files with damaged bytes (as for IDX) | 200 |
| test_model_header_valid_json_wrong_types | one JSON field anywhere replaced by any JSON value (null, bools, integers beyond 2⁶³, NaN, ±Infinity, strings, lists, objects) or deleted; or the whole header replaced by other text (empty, "{", null, 1e999, 50 000-deep brackets, a 5000-digit number) | 200 |
| test_model_members_missing_extra_or_wrong | a member dropped, added or replaced (another dtype or shape, NaN/Inf, an object array, the header as bytes or as a 1-d array) | 150 |
| test_model_with_crafted_npy_member | a member replaced by a hostile .npy (as above) or by bytes that are not .npy | 100 |
| test_arbitrary_bytes_as_model | up to 300 random bytes, half of them after a zip signature | 40 |
| test_a_command_on_a_damaged_file_is_one_line_and_changes_no_good_file | `evaluate`, `predict`, `train --resume` and `train --train-file` (in-process) with one input (model, checkpoint, .npz, .csv) cut short, bit-flipped or random: exit 0, or exit 2 with one `error:` line; no good file and no earlier output changed | 24 per command |

Bad inputs tried one by one (test_catalogue asserts each outcome; test_cli_on_bad_files runs
eleven of them through real ``numbamlp evaluate/predict/train`` processes: exit status 2, one
stderr line "error: …" naming the file, no traceback). Readers, and the commands that use them:
idx = ``read_idx`` (``predict --input F`` for a file that is not .npz/.csv, ``train --data-dir``);
features = ``load_features_file`` (``predict --input F``); arrays = ``load_arrays_file``
(``train --train-file/--test-file F``, ``evaluate --test-file F``; ``load_user_dataset``);
model = ``load_model`` (``evaluate --model F``, ``predict --model F``); mnist =
``load_mnist(D, verify=False)`` (``train --data-dir D`` checks sha256 sums first, so there a
changed file fails its checksum before these structural checks). F is the file; "…" stands for
the fix each message ends with (e.g. "re-download or re-copy the file"). The last column is
what happened before the fix, for the rows that found a bug.

| input | reader | outcome | before |
|---|---|---|---|
| `idx-empty` | idx | error: IDX file F is empty (0 bytes) … |  |
| `idx-3-bytes` | idx | error: IDX file F is too short to be an IDX file (3 bytes; the magic number alone is 4) … |  |
| `idx-wrong-magic` | idx | error: IDX file F is not an IDX file: its magic number 12 34 08 03 should start with two zero bytes … |  |
| `idx-npy-file` | idx | error: IDX file F is not an IDX file: its magic number 93 4e 55 4d should start with two zero bytes … |  |
| `idx-unknown-type-code` | idx | error: IDX file F has an unknown IDX type code 0x07 (known: 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E) … |  |
| `idx-0-dimensions` | idx | error: IDX file F declares 0 dimensions in its IDX magic number (need at least 1) … |  |
| `idx-100-dimensions` | idx | error: IDX file F declares 100 dimensions in its IDX magic number (at most 32 are supported) … | ValueError (numpy: more than 64 dimensions) |
| `idx-truncated-header` | idx | error: IDX file F is truncated: its IDX header declares 3 dimensions and needs 16 bytes, but the file has 10 bytes … |  |
| `idx-truncated-data` | idx | error: IDX file F is truncated: its header declares shape 2×3×3 of uint8 data, expected 18 data bytes, got 17 … |  |
| `idx-extra-bytes` | idx | error: IDX file F has 1 extra bytes after the data (header declares shape 2×3×3 of uint8, expected 18 data bytes, got 19) … |  |
| `idx-huge-dimensions` | idx | error: IDX file F is truncated: its header declares shape 60000×60000×60000 of uint8 data, expected 216000000000000 data bytes, got 16 … |  |
| `idx-impossible-shape` | idx | error: IDX file F declares an impossible shape 0×2147483648×2147483648×2147483648 in its IDX header … |  |
| `idx-gzip-truncated` | idx | error: IDX file F is a truncated gzip file (the compressed stream ends early) … |  |
| `idx-gzip-corrupt` | idx | error: IDX file F is a corrupt gzip file (Error -3 while decompressing data: invalid distance too far back) … |  |
| `idx-float-nan-features` | features | error: input file F: missing value 'nan' at row 0, column 1 … |  |
| `idx-3d-int32` | features | error: input file F holds a 3-d IDX array; expected (n, rows, cols) uint8 images or (n, d) features. |  |
| `idx-zero-images` | features | valid: X (0, 784) uint8 | ValueError: cannot reshape array of size 0 |
| `idx-dir-labels-as-images` | mnist | error: MNIST file F/train-images-idx3-ubyte should hold images: a 3-d array of unsigned bytes (n, rows, cols), but it holds a 1-d uint8 array of shape (3,) … |  |
| `idx-dir-label-10` | mnist | error: MNIST file F/t10k-labels-idx1-ubyte has label 10 at index 1 (1 bad in total), outside 0..9 … |  |
| `idx-dir-count-mismatch` | mnist | error: MNIST file F/train-images-idx3-ubyte has 3 images but MNIST file F/train-labels-idx1-ubyte has 2 labels … |  |
| `npz-text` | arrays | error: data file F: not an .npz archive (not a zip file) … |  |
| `npz-truncated` | arrays | error: data file F: damaged .npz archive (BadZipFile: File is not a zip file) … | leaked the open file (ResourceWarning) |
| `npz-flipped-data-byte` | arrays | error: data file F: damaged .npz archive: array 'X': BadZipFile: Bad CRC-32 for file 'X.npy' … |  |
| `npz-member-not-npy` | arrays | error: data file F: member 'X' is not a numpy array (no .npy header) … | AttributeError: 'bytes' object has no attribute 'ndim' |
| `npz-member-not-npy-predict` | features | error: input file F: member 'X' is not a numpy array (no .npy header) … | AttributeError: 'bytes' object has no attribute 'ndim' |
| `npz-huge-shape` | arrays | error: data file F: array 'X' is truncated or damaged: its .npy header declares shape (100000000000, 1000) of float64 (800,000,000,000,000 bytes), but its member holds at most 64 bytes … | MemoryError: Unable to allocate 728 TiB |
| `npz-zip-size-lie` | arrays | error: data file F: array 'X' is truncated or damaged: its .npy header declares shape (100000000,) of float64 (800,000,000 bytes), but its member holds at most 144 bytes … | allocated 800 MB for a 482-byte file, then failed |
| `npz-impossible-shape` | features | error: input file F: array 'X' declares an impossible shape (0, 9223372036854775808) … | numpy printed RuntimeWarning: invalid value encountered in reduce |
| `npz-negative-shape` | arrays | error: data file F: array 'X' declares a negative dimension in its shape (-1, 2) … |  |
| `npz-unknown-dtype` | arrays | error: data file F: damaged .npz archive: array 'X': ValueError: descr is not a valid dtype descriptor: 'xyz' … |  |
| `npz-header-is-code` | arrays | error: data file F: damaged .npz archive: array 'X': ValueError: malformed node or string on line 1: <ast.Call object at 0x7f005d61dff0> … |  |
| `npz-header-unclosed` | arrays | error: data file F: damaged .npz archive: array 'X': TokenError: ('EOF in multi-line statement', (2, 0)) … | tokenize.TokenError |
| `npz-npy-version-3` | arrays | error: data file F: array 'X' has .npy format version 3.0; numbamlp reads versions 1.0 and 2.0 (what numpy writes for numeric arrays) … | read (now refused: numpy writes 3.0 only for non-Latin-1 field names) |
| `npz-encrypted-member` | arrays | error: data file F: array 'X' is encrypted (password-protected); numpy never writes encrypted members … | RuntimeError: password required for extraction |
| `npz-unknown-compression` | arrays | error: data file F: damaged .npz archive: array 'X': NotImplementedError: That compression method is not supported … | NotImplementedError |
| `npz-object-X` | arrays | error: data file F: array 'X' is an object array (pickled Python objects), which numbamlp never loads … |  |
| `npz-object-extra` | arrays | valid: X (2, 3) float64, y (2,) |  |
| `npz-no-y` | arrays | error: data file F has no array named y (it holds: X) … |  |
| `npz-X-1d` | arrays | error: data file F: X must be a 2-d numeric array (n examples, d features), got a 1-d float64 array of shape (2,). |  |
| `npz-X-strings` | arrays | error: data file F: X must be a 2-d numeric array (n examples, d features), got a 2-d <U1 array of shape (2, 1). |  |
| `npz-X-complex` | arrays | error: data file F: X must be a 2-d numeric array (n examples, d features), got a 2-d complex128 array of shape (2, 1). |  |
| `npz-X-nan` | arrays | error: data file F: missing value 'nan' at row 1, column 0 … |  |
| `npz-X-inf-predict` | features | error: input file F: feature value -inf at row 1, column 0 is not a finite number … |  |
| `npz-rows-mismatch` | arrays | error: data file F: X has 2 rows but y has 3 labels; they must match one to one. |  |
| `npz-y-negative` | arrays | valid: X (2, 3) float64, y (2,): classes "-1", "0" |  |
| `npz-y-fraction` | arrays | valid: X (2, 3) float64, y (2, 1): regression targets |  |
| `npz-y-1e300` | arrays | valid: X (2, 3) float64, y (2, 1): a float array, a regression's targets |  |
| `npz-y-float16` | arrays | valid: X (2, 3) float64, y (2, 1): a float array, a regression's targets | numpy printed RuntimeWarning: overflow encountered in cast |
| `csv-empty` | arrays | error: data file F is empty; a CSV file needs a header row naming the columns, one of them 'label' for the labels. |  |
| `csv-no-label-column` | arrays | error: data file F has no label column 'label'; its columns are: a, b … |  |
| `csv-only-label-column` | arrays | error: data file F has only the label column 'label' and no feature columns. |  |
| `csv-header-only` | arrays | error: data file F has a header but no data rows; add some rows. |  |
| `csv-ragged-row` | arrays | error: data file F could not be parsed: line 3 has 2 fields but the header has 3 … … |  |
| `csv-text-cell` | arrays | error: data file F could not be parsed: line 3, column 'a': 'x' is not a number … … |  |
| `csv-1e999` | arrays | error: data file F: feature value inf at row 0 (line 2), column 'a' is not a finite number … |  |
| `csv-nul-byte` | arrays | error: data file F could not be parsed: line 3, column 'a': '\x00' is not a number … … |  |
| `csv-unclosed-quote` | arrays | error: data file F could not be parsed: line 3 has 1 fields but the header has 2 … … |  |
| `csv-unclosed-quote-in-header` | arrays | error: data file F has no label column 'label'; its columns are: 'a,label\n1,0\n2,1' … | a message of several lines quoting the whole file |
| `csv-latin-1` | arrays | error: data file F is not a readable UTF-8 CSV file ('utf-8' codec can't decode byte 0xe9 in position 2: invalid continuation byte) … |  |
| `csv-utf-16` | arrays | error: data file F is not a readable UTF-8 CSV file ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte) … |  |
| `csv-utf-8-bom-crlf` | arrays | valid: X (2, 1) float64, y (2,) |  |
| `csv-label-fraction` | arrays | valid: X (2, 1) float64, y (2, 1): regression targets |  |
| `model-empty` | model | error: model file F is not a valid numbamlp model (not an .npz archive (not a zip file)) … |  |
| `model-npy-file` | model | error: model file F is not a valid numbamlp model (not an .npz archive (not a zip file)) … |  |
| `model-truncated` | model | error: model file F is not a valid numbamlp model (damaged .npz archive (BadZipFile: File is not a zip file)) … | leaked the open file (ResourceWarning) |
| `model-flipped-data-byte` | model | error: model file F is not a valid numbamlp model (damaged .npz archive: array 'optimizer_state/v': BadZipFile: Bad CRC-32 for file 'optimizer_state/v.npy') … |  |
| `model-no-header` | model | error: model file F is not a valid numbamlp model (missing header or parameters) … |  |
| `model-header-not-json` | model | error: model file F is not a valid numbamlp model (header is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)) … |  |
| `model-header-nested-50000-deep` | model | error: model file F is not a valid numbamlp model (header is not JSON: nested too deeply) … | RecursionError |
| `model-header-5000-digit-number` | model | error: model file F is not a valid numbamlp model (header is not JSON: it holds a number too long to read) … | ValueError: Exceeds the limit (4300 digits) |
| `model-other-format` | model | error: model file F is not a valid numbamlp model (not a numbamlp model file) … |  |
| `model-newer-version` | model | error: model file F has format version 2, newer than this numbamlp understands (1); upgrade numbamlp to read it |  |
| `model-version-string` | model | error: model file F is not a valid numbamlp model (format version '1' is not a positive integer) … |  |
| `model-sizes-infinity` | model | error: model file F is not a valid numbamlp model (bad architecture: layer width inf is not an integer) … | OverflowError |
| `model-sizes-string` | model | error: model file F is not a valid numbamlp model (bad architecture: sizes is not a list) … | accepted: "323" read as sizes (3, 2, 3) |
| `model-unknown-activation` | model | error: model file F is not a valid numbamlp model (bad architecture: unknown activation 'swish'; choose one of: sigmoid, tanh, relu, leaky_relu, softplus, identity) … |  |
| `model-dtype-list` | model | error: model file F is not a valid numbamlp model (bad architecture: unknown dtype ['float32']) … |  |
| `model-theta-wrong-length` | model | error: model file F is not a valid numbamlp model (parameters have shape (5,) and dtype float32, the architecture needs (17,) float32) … |  |
| `model-theta-nan` | model | error: model file F is not a valid numbamlp model (parameters contain NaN or Inf) … |  |
| `model-theta-object` | model | error: model file F is not a valid numbamlp model (array 'theta' is an object array (pickled Python objects), which numbamlp never loads) … |  |
| `model-theta-huge-shape` | model | error: model file F is not a valid numbamlp model (array 'theta' is truncated or damaged: its .npy header declares shape (1000000000000,) of float32 (4,000,000,000,000 bytes), but its member holds at most 68 bytes) … | allocated 4 TB (virtual) for a 2 kB file, then failed |
| `model-unknown-optimizer` | model | error: model file F is not a valid numbamlp model (bad optimizer state: unknown optimizer 'lion') … |  |
| `model-hyper-400-digit-int` | model | error: model file F is not a valid numbamlp model (bad optimizer state: hyperparameter lr 100000000000000000...0000000000000000000 is out of range) … | OverflowError |
| `model-step-count-infinity` | model | error: model file F is not a valid numbamlp model (bad optimizer state: step count inf is not an integer) … | OverflowError |
| `model-state-nan` | model | error: model file F is not a valid numbamlp model (optimizer state 'm' contains NaN or Inf) … | accepted |
| `model-state-missing` | model | error: model file F is not a valid numbamlp model (bad optimizer state: array(s) optimizer_state/v missing) … |  |
| `model-metadata-dataset-7` | model | error: model file F is not a valid numbamlp model (metadata dataset 7 is not a data set name) … | accepted; then `evaluate` crashed (AttributeError) |
| `model-metadata-class-names-5` | model | error: model file F is not a valid numbamlp model (metadata class_names is not a list of names) … | accepted; then `evaluate` crashed (TypeError) |
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numbamlp.datasets.idx import IDX_DTYPES, read_idx
from numbamlp.datasets.loaders import (
    IDX_FILES,
    MAX_CLASSES,
    Dataset,
    load_mnist,
)
from numbamlp.datasets.userfiles import load_arrays_file, load_features_file, load_user_dataset
from numbamlp.errors import NumbamlpError
from numbamlp.kernels.optimizers import Optimizer
from numbamlp.model.mlp import MLP
from numbamlp.model.modelio import LoadedModel, load_model, save_model

# A warning printed by numpy is output the CLI user sees besides the one error line.
pytestmark = pytest.mark.filterwarnings("error")

# --- settings -----------------------------------------------------------------------------------

# CI runs the same examples every time (derandomize, no example database), so a red run can be
# reproduced and a green one stays green. The deadline is far above the milliseconds a read of
# these small files takes (a reader needing seconds for a 1 kB file is a bug) yet far below the
# SIGALRM guard below, which turns a real hang into a failure. NUMBAMLP_FUZZ=deep: ten times the
# examples with fresh random seeds, for fuzzing locally.
#: NUMBAMLP_FUZZ: unset, a quarter of each property's examples (the inner loop, `pytest`);
#: "ci", all of them (CI's run); "deep", ten times them with fresh seeds.
FUZZ = os.environ.get("NUMBAMLP_FUZZ", "")
DEEP = FUZZ == "deep"
_COMMON = dict(
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("numbamlp-ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("numbamlp-deep", **_COMMON)


def fuzz(max_examples: int) -> settings:
    """Settings for one property: ``max_examples`` in CI (NUMBAMLP_FUZZ=ci), a quarter of them
    by default, ten times them with NUMBAMLP_FUZZ=deep."""
    profile = settings.get_profile("numbamlp-deep" if DEEP else "numbamlp-ci")
    scale = {"deep": 10.0, "ci": 1.0}.get(FUZZ, 0.25)
    return settings(profile, max_examples=max(5, int(max_examples * scale)))


# --- the property every reader must have ----------------------------------------------------


class ReaderHang(BaseException):
    """Raised by the alarm; a BaseException so a reader's ``except Exception`` cannot hide it."""


HANG_SECONDS = 20
# What a reader may allocate beyond its input: the files here are at most a few kB, so anything
# near this bound means the reader believed a size field instead of checking it against the file.
ALLOCATION_SLACK = 32 << 20


def _on_alarm(signum: int, frame: Any) -> None:
    raise ReaderHang(f"reader still running after {HANG_SECONDS} s")


def outcome(read: Callable[[], Any], path: Path) -> Any:
    """Run ``read()``: return its result or the NumbamlpError it raised, after checking that it
    neither hung, nor allocated far more than the file holds, nor gave a message the CLI could
    not print as one line naming the file. Any other exception propagates: the test fails."""
    size = path.stat().st_size if path.exists() else 0
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    tracemalloc.start()
    try:
        try:
            result: Any = read()
        except NumbamlpError as exc:
            result = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert peak <= ALLOCATION_SLACK + 64 * size, f"reading {size} bytes allocated {peak} bytes"
    if isinstance(result, NumbamlpError):
        message = str(result)
        assert message.strip(), "empty error message"
        assert "\n" not in message, f"the CLI prints errors as one line: {message!r}"
        assert str(path) in message, f"the message should name the file: {message!r}"
    return result


# --- checks of a successful read ----------------------------------------------------------------


def check_features(X: np.ndarray, raw: bool = False) -> None:
    """``raw``: load_features_file's result, which keeps integer arrays (pixels) as they are."""
    assert isinstance(X, np.ndarray) and X.ndim == 2
    assert X.dtype in (np.float32, np.float64) or (raw and X.dtype.kind in "iu")
    assert X.flags.c_contiguous
    assert np.isfinite(X).all()


def check_labelled(result: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = result
    check_features(X)
    assert X.shape[0] >= 1 and X.shape[1] >= 1
    if y.dtype == np.float64:  # a regression's targets (n, T)
        assert y.ndim == 2 and y.shape[0] == X.shape[0] and np.isfinite(y).all()
        return
    assert y.dtype == np.int64 and y.shape == (X.shape[0],)
    assert y.min() >= 0 and y.max() < MAX_CLASSES


def check_dataset(data: Dataset) -> None:
    if data.task == "regression":
        assert data.n_outputs == data.y_train.shape[1] == len(data.target_names)
        assert data.y_train.dtype == np.float64 and np.isfinite(data.y_train).all()
        return
    assert data.n_classes >= 2
    for X, y in ((data.X_train_raw, data.y_train), (data.X_test_raw, data.y_test)):
        assert X.ndim == 2 and X.shape[1] == data.n_features and y.shape == (X.shape[0],)
        assert y.dtype == np.int64 and (y.size == 0 or (y.min() >= 0 and y.max() < data.n_classes))


def check_model(loaded: LoadedModel) -> None:
    arch = loaded.model.architecture
    theta = loaded.model.params.theta
    assert theta.shape == (arch.n_parameters,) and np.isfinite(theta).all()
    assert isinstance(loaded.metadata, dict)
    names = loaded.metadata.get("class_names")
    assert names is None or (isinstance(names, list) and all(isinstance(n, str) for n in names))
    dataset = loaded.metadata.get("dataset")
    assert dataset is None or isinstance(dataset, str)
    opt = loaded.optimizer
    if opt is not None:
        assert isinstance(opt.step_count, int) and opt.step_count >= 0
        assert all(np.isfinite(v) for v in opt.hyper.values())
        for value in opt.state.values():
            assert value.shape == theta.shape and value.dtype == theta.dtype
            assert np.isfinite(value).all()


# --- byte-level damage --------------------------------------------------------------------------


@st.composite
def damaged(draw: st.DrawFn, data: bytes, header: int) -> bytes:
    """One kind of damage to ``data``; ``header`` bytes at the start are where flips hurt most."""
    n = len(data)
    how = draw(
        st.sampled_from(
            ["truncate", "flip header", "flip any", "extreme header", "append", "cut", "insert"]
        )
    )
    if how == "truncate" or n == 0:
        return data[: draw(st.integers(0, max(n - 1, 0)))]
    if how in ("flip header", "flip any", "extreme header"):
        i = draw(st.integers(0, (min(header, n) if how != "flip any" else n) - 1))
        if how == "extreme header":
            value = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
        else:
            value = data[i] ^ draw(st.integers(1, 255))
        return data[:i] + bytes([value]) + data[i + 1 :]
    if how == "append":
        return data + draw(st.binary(min_size=1, max_size=64))
    i = draw(st.integers(0, n))
    if how == "cut":
        j = draw(st.integers(i, n))
        return data[:i] + data[j:]
    return data[:i] + draw(st.binary(min_size=1, max_size=16)) + data[i:]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("properties")


# --- IDX ------------------------------------------------------------------------------------


def idx_bytes(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


@st.composite
def valid_idx(draw: st.DrawFn) -> tuple[bytes, np.ndarray]:
    """An IDX file of any element type (NaN/Inf included), 1 to 3 small dimensions."""
    code = draw(st.sampled_from(sorted(IDX_DTYPES)))
    dtype = IDX_DTYPES[code]
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    arr = draw(hnp.arrays(dtype.newbyteorder("="), shape))
    return idx_bytes(code, shape, arr.astype(dtype).tobytes()), arr


@st.composite
def damaged_idx(draw: st.DrawFn) -> bytes:
    """A valid IDX file with one header field set to a hostile value, or damaged bytes; gzipped
    before or after the damage, or not at all."""
    data, arr = draw(valid_idx())
    header = 4 + 4 * arr.ndim
    how = draw(st.sampled_from(["bytes", "dimension", "ndim", "many dims", "type code", "magic"]))
    if how == "many dims":  # consistent, but more dimensions than numpy arrays can have
        ndim = draw(st.integers(30, 255))
        dims = tuple(draw(st.lists(st.sampled_from([1, 1, 1, 0]), min_size=ndim, max_size=ndim)))
        data = idx_bytes(8, dims, bytes(int(np.prod(dims, dtype=np.int64))))
    elif how == "bytes":
        data = draw(damaged(data, header))
    elif how == "dimension":
        k = draw(st.integers(0, arr.ndim - 1))
        dim = draw(st.sampled_from([2**31 - 1, 2**31, 2**32 - 1, 60_000, 10**9]))
        data = data[: 4 + 4 * k] + struct.pack(">I", dim) + data[8 + 4 * k :]
    elif how == "ndim":
        data = data[:3] + bytes([draw(st.integers(0, 255))]) + data[4:]
    elif how == "type code":
        data = data[:2] + bytes([draw(st.integers(0, 255))]) + data[3:]
    else:
        data = draw(st.binary(min_size=2, max_size=2)) + data[2:]
    gz = draw(st.sampled_from(["raw", "gzip after", "gzip then damage"]))
    if gz == "gzip after":
        data = gzip.compress(data, mtime=0)
    elif gz == "gzip then damage":
        data = gzip.compress(data, mtime=0)
        data = draw(damaged(data, 10))
    return data


@fuzz(60)
@given(valid_idx(), st.booleans())
def test_valid_idx_reads_back(work, case, gz):
    """The generator's files are valid: each reads back exactly (so damage starts from valid)."""
    data, arr = case
    path = write(work / "valid-idx", gzip.compress(data, mtime=0) if gz else data)
    out = outcome(lambda: read_idx(path), path)
    assert not isinstance(out, NumbamlpError), out
    assert out.shape == arr.shape and out.tobytes() == arr.tobytes()


@fuzz(250)
@given(damaged_idx())
def test_damaged_idx_gives_array_or_numbamlp_error(work, data):
    path = write(work / "damaged-idx", data)
    out = outcome(lambda: read_idx(path), path)
    if not isinstance(out, NumbamlpError):
        assert isinstance(out, np.ndarray) and out.flags.writeable and out.dtype.isnative
    features = outcome(lambda: load_features_file(path), path)  # `predict --input FILE.idx`
    if not isinstance(features, NumbamlpError):
        check_features(features, raw=True)


@fuzz(60)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_idx(work, data):
    path = write(work / "bytes-idx", data)
    out = outcome(lambda: read_idx(path), path)
    assert isinstance(out, (np.ndarray, NumbamlpError))


@st.composite
def mnist_folder_files(draw: st.DrawFn) -> dict[str, bytes]:
    """The four files of an MNIST-style folder, tiny and consistent; one of them damaged."""
    n_train, n_test = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    rows, cols = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    files = {
        IDX_FILES[0]: idx_bytes(8, (n_train, rows, cols), bytes(n_train * rows * cols)),
        IDX_FILES[1]: idx_bytes(
            8,
            (n_train,),
            bytes(draw(st.lists(st.integers(0, 9), min_size=n_train, max_size=n_train))),
        ),
        IDX_FILES[2]: idx_bytes(8, (n_test, rows, cols), bytes(n_test * rows * cols)),
        IDX_FILES[3]: idx_bytes(8, (n_test,), bytes(n_test)),
    }
    victim = draw(st.sampled_from(IDX_FILES))
    files[victim] = draw(st.one_of(damaged_idx(), valid_idx().map(lambda case: case[0])))
    return files


@fuzz(80)
@given(mnist_folder_files())
def test_damaged_mnist_folder(work, files):
    """`train --data-dir DIR`: the IDX checks plus the image/label conventions (checksums off,
    so the damage reaches the structural checks instead of failing the sha256)."""
    folder = work / "mnist-folder"
    folder.mkdir(exist_ok=True)
    for stem, data in files.items():
        write(folder / stem, data)
    out = outcome(lambda: load_mnist(folder, verify=False), folder)
    if not isinstance(out, NumbamlpError):
        check_dataset(out)


# --- .npz / .csv user data ------------------------------------------------------------------

FEATURE_DTYPES = ["<f8", "<f4", "<f2", ">f8", "<i8", "<i4", "|i1", "|u1", "<u8", "|b1"]
ODD_DTYPES = ["<c16", "<U3", "|S2", "<M8[s]", "<m8[s]", "|V4"]
LABEL_VALUES = [0, 1, 2, 3, 0.5, -1, 2**16, 1e300, np.nan, np.inf]


@st.composite
def numeric_or_odd_array(draw: st.DrawFn, shape: tuple[int, ...], labels: bool) -> np.ndarray:
    if draw(st.integers(0, 9)) == 0:  # one in ten: a dtype no reader should accept
        return np.zeros(shape, dtype=draw(st.sampled_from(ODD_DTYPES + [[("a", "<f8")]])))
    dtype = np.dtype(draw(st.sampled_from(FEATURE_DTYPES)))
    if labels:  # mostly small class indices, sometimes a value no label may have
        size = int(np.prod(shape))
        value = st.one_of(st.integers(0, 3), st.integers(0, 3), st.sampled_from(LABEL_VALUES))
        values = draw(st.lists(value, min_size=size, max_size=size))
        with np.errstate(all="ignore"):
            return np.array(values, dtype=np.float64).reshape(shape).astype(dtype)
    return draw(hnp.arrays(dtype, shape))


@st.composite
def user_arrays(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """Arrays X and y as a user might save them: mostly right, sometimes the wrong shape, dtype,
    length or values (NaN, Inf, negative, huge), a member missing, renamed or extra."""
    n, d = draw(st.integers(0, 5)), draw(st.integers(0, 3))
    x_shape = draw(st.sampled_from([(n, d)] * 6 + [(n,), (n, d, 2), ()]))
    y_shape = draw(st.sampled_from([(n,)] * 6 + [(n + 1,), (n, 1), ()]))
    arrays = {
        "X": draw(numeric_or_odd_array(x_shape, labels=False)),
        "y": draw(numeric_or_odd_array(y_shape, labels=True)),
    }
    change = draw(st.sampled_from(["none"] * 6 + ["drop X", "drop y", "extra", "rename"]))
    if change.startswith("drop"):
        del arrays[change[-1]]
    elif change == "extra":
        arrays["extra"] = np.arange(3)
    elif change == "rename":
        arrays["x"] = arrays.pop("X")
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray], compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


@st.composite
def damaged_npz(draw: st.DrawFn) -> bytes:
    """A user .npz (above), then possibly damaged: anywhere, or inside a .npy header."""
    data = npz_bytes(draw(user_arrays()), draw(st.booleans()))
    how = draw(st.sampled_from(["none", "bytes", "npy header"]))
    if how == "bytes":
        return draw(damaged(data, 64))
    headers = [m.start() for m in re.finditer(b"\x93NUMPY", data)]
    if how == "npy header" and headers:
        start = draw(st.sampled_from(headers))
        return data[:start] + draw(damaged(data[start:], 128))
    return data


def npy_member(header: bytes, payload: bytes, version: tuple[int, int] = (1, 0)) -> bytes:
    """A .npy file with any header text (numpy writes a dict literal padded to 64 bytes)."""
    length = struct.pack("<H" if version[0] == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes(version) + length + header + payload


@st.composite
def crafted_npy(draw: st.DrawFn) -> bytes:
    """A .npy member whose header is valid Python syntax but hostile: absurd or negative shapes,
    shapes that would allocate terabytes, more than 64 dimensions, object or unknown dtypes,
    wrong types for every key, code instead of a literal; with a payload of any length."""
    descr = draw(
        st.one_of(
            st.sampled_from(["<f8", "<f4", "|u1", "<i8", "|O", "<U2", "xyz", "", [("a", "<f8")]]),
            st.text(max_size=4),
        )
    )
    shape = draw(
        st.one_of(
            st.lists(st.integers(0, 4), max_size=3).map(tuple),
            st.tuples(st.integers(-3, 2**62), st.integers(0, 2**40)),
            st.sampled_from([(2**31, 2**31, 2**31), (10**12,), (0, 2**63), (1,) * 70]),
            st.sampled_from([[2, 2], "(2, 2)", 1.5, None, (2.0, 2)]),
        )
    )
    fortran = draw(st.sampled_from([False, True, "yes", 1, None]))
    fields: dict[str, Any] = {"descr": descr, "fortran_order": fortran, "shape": shape}
    if draw(st.booleans()):
        fields.pop(draw(st.sampled_from(sorted(fields))))
    text = repr(fields)
    text = draw(
        st.sampled_from(
            [text] * 8
            + ["__import__('os').system('echo pwned')", "[1, 2]", "{'descr': '<f8'"]
            + ["(" * 3000, "[" * 2000 + "]" * 2000, "{'shape': " + "(" * 300 + ")" * 300 + "}"]
        )
    )
    header = text.encode("latin1", "replace")
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    version = draw(st.sampled_from([(1, 0)] * 4 + [(2, 0), (3, 0), (9, 9)]))
    payload = draw(st.one_of(st.binary(max_size=64), st.just(bytes(32))))
    return npy_member(header, payload, version)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


@st.composite
def npz_with_crafted_member(draw: st.DrawFn) -> bytes:
    """X or y (or an extra member) replaced by a crafted .npy, or by bytes that are not .npy."""
    good = {
        "X.npy": npz_member_bytes(np.ones((2, 3))),
        "y.npy": npz_member_bytes(np.array([0, 1])),
    }
    victim = draw(st.sampled_from(["X.npy", "y.npy", "extra.npy", "X"]))
    good[victim] = draw(st.one_of(crafted_npy(), st.binary(max_size=40)))
    return zip_bytes(good)


def npz_member_bytes(arr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, arr)
    return buffer.getvalue()


class Tripwire:
    """Unpickling this creates ``marker``: proof that loading executed code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def check_user_file(path: Path) -> None:
    """load_arrays_file, load_features_file and load_user_dataset on one file."""
    out = outcome(lambda: load_arrays_file(path), path)
    if not isinstance(out, NumbamlpError):
        check_labelled(out)
    features = outcome(lambda: load_features_file(path), path)
    if not isinstance(features, NumbamlpError):
        check_features(features, raw=True)
        if not isinstance(out, NumbamlpError):  # both readers agree on the features
            np.testing.assert_array_equal(features, out[0])
    data = outcome(lambda: load_user_dataset(path, rng=np.random.default_rng(0)), path)
    if not isinstance(data, NumbamlpError):
        check_dataset(data)


@fuzz(120)
@given(user_arrays(), st.booleans())
def test_user_npz_valid_or_numbamlp_error(work, arrays, compressed):
    path = write(work / "user.npz", npz_bytes(arrays, compressed))
    check_user_file(path)
    out = outcome(lambda: load_arrays_file(path), path)
    if not isinstance(out, NumbamlpError):  # a valid result is the data that was saved
        np.testing.assert_array_equal(out[0], arrays["X"].astype(out[0].dtype))


@fuzz(150)
@given(damaged_npz())
def test_damaged_npz(work, data):
    check_user_file(write(work / "damaged.npz", data))


@fuzz(150)
@given(npz_with_crafted_member())
def test_npz_with_crafted_npy_header(work, data):
    check_user_file(write(work / "crafted.npz", data))


@fuzz(20)
@given(st.sampled_from(["X", "y", "extra"]), st.booleans())
def test_object_arrays_are_never_unpickled(work, member, compressed):
    marker = work / "unpickled"
    marker.unlink(missing_ok=True)
    arrays: dict[str, np.ndarray] = {"X": np.ones((2, 2)), "y": np.array([0, 1])}
    arrays[member] = np.array([Tripwire(marker), 1], dtype=object)
    path = write(work / "pickled.npz", npz_bytes(arrays, compressed))
    check_user_file(path)
    out = outcome(lambda: load_arrays_file(path), path)
    if member != "extra":
        assert isinstance(out, NumbamlpError) and "object array" in str(out)
    assert not marker.exists()


CSV_JUNK = [
    "nan",
    "inf",
    "-inf",
    "1e999",
    "",
    " ",
    "abc",
    "1_000",
    "0x10",
    '"1"',
    "1e",
    "--1",
    "١",
    "True",
    "1,5",
    '"',
    "\x00",
    "\t2",
]


@st.composite
def csv_text(draw: st.DrawFn) -> str:
    """A CSV data file: header with a label column, numeric rows; some cells junk."""
    d, n = draw(st.integers(1, 3)), draw(st.integers(0, 4))
    names = [f"f{j}" for j in range(d)]
    names.insert(draw(st.integers(0, d)), "label")
    number = st.one_of(
        st.integers(-5, 5).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
    )
    cell = st.one_of(number, number, number, st.sampled_from(CSV_JUNK))
    label = st.one_of(st.integers(0, 3).map(str), st.integers(0, 3).map(str), cell)
    end = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    lines = [",".join(names)]
    for _ in range(n):
        lines.append(",".join(draw(label) if name == "label" else draw(cell) for name in names))
    return end.join(lines) + draw(st.sampled_from([end, ""]))


@st.composite
def damaged_csv(draw: st.DrawFn) -> bytes:
    text = draw(csv_text())
    how = draw(st.sampled_from(["none", "insert", "open quote", "bytes", "encoding"]))
    if how == "open quote":  # the header swallows the whole file as one field
        text = '"' + text
    if how == "insert":
        i = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from(['"', ",", "\n", "\r", "\x00", "\ufeff", "#", "é", "\u2028"]))
        text = text[:i] + junk + text[i:]
    encoding = draw(st.sampled_from(["utf-8"] * 4 + ["utf-8-sig", "utf-16", "latin-1"]))
    data = text.encode(encoding, "replace")
    if how == "bytes":
        data = draw(damaged(data, 16))
    return data


@fuzz(200)
@given(damaged_csv())
def test_csv_valid_or_numbamlp_error(work, data):
    check_user_file(write(work / "user.csv", data))


@fuzz(50)
@given(st.binary(max_size=200), st.sampled_from([".npz", ".csv"]))
def test_arbitrary_bytes_as_user_data(work, data, suffix):
    check_user_file(write(work / f"bytes{suffix}", data))


# --- model files ----------------------------------------------------------------------------


def _model_file_bytes(work: Path, hidden, activations, head, dtype, optimizer) -> bytes:
    model = MLP.create(
        3,
        hidden,
        3,
        activations=activations,
        head=head,
        dtype=dtype,
        rng=np.random.default_rng(0),
    )
    opt = None
    if optimizer is not None:
        opt = Optimizer.create(optimizer, model.architecture.n_parameters, model.dtype)
        for value in opt.state.values():
            value[...] = 0.5
        opt.step_count = 7
    path = work / "valid-model.npz"
    save_model(path, model, opt, metadata={"dataset": None, "class_names": ["a", "b", "c"]})
    return path.read_bytes()


class ValidModels(list):
    """The valid model files (a short repr keeps hypothesis' failure reports readable)."""

    def __repr__(self) -> str:
        return f"<{len(self)} valid model files>"


@pytest.fixture(scope="module")
def valid_models(work) -> ValidModels:
    """A few valid model files: no hidden layer to two, both heads, both dtypes, optimizers
    with zero, one and two state arrays, and none."""
    return ValidModels(
        [
            _model_file_bytes(work, [], [], "softmax", "float32", None),
            _model_file_bytes(work, [2], ["relu"], "modified-softmax", "float64", "sgd"),
            _model_file_bytes(work, [2], ["tanh"], "softmax", "float32", "momentum"),
            _model_file_bytes(work, [2, 2], ["sigmoid", "softplus"], "softmax", "float64", "adam"),
        ]
    )


def model_arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


def json_paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from json_paths(item, (*prefix, i))


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3),
        st.integers(min_value=2**63),
        st.floats(),  # NaN and ±Infinity too: json.dumps writes them, json.loads reads them
        st.text(max_size=6),
        st.sampled_from(["float32", "float64", "sigmoid", "softmax", "adam", "sgd", "m"]),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def model_with_hostile_header(draw: st.DrawFn, valid: list[bytes]) -> dict[str, np.ndarray]:
    """A valid model whose JSON header stays valid JSON but has one field of the wrong type or
    value (anywhere in the tree), a field deleted, or is replaced by other text altogether."""
    arrays = model_arrays(draw(st.sampled_from(valid)))
    header = json.loads(str(arrays["header"]))
    how = draw(st.sampled_from(["replace"] * 6 + ["delete", "text"]))
    if how == "text":
        text = draw(
            st.sampled_from(
                [
                    "",
                    "{",
                    "null",
                    "[]",
                    "1e999",
                    '"numbamlp-model"',
                    "[" * 50_000 + "]" * 50_000,
                    '{"format": "numbamlp-model", "format_version": 1}',
                    '{"format": "numbamlp-model", "format_version": 1' + "0" * 5000 + "}",
                ]
            )
        )
        arrays["header"] = np.array(text)
        return arrays
    path = draw(st.sampled_from(list(json_paths(header))))
    if how == "delete" and path:
        parent = header
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
    elif path:
        parent = header
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = draw(JSON_VALUES)
    else:
        header = draw(JSON_VALUES)
    arrays["header"] = np.array(json.dumps(header))
    return arrays


@st.composite
def model_with_hostile_members(draw: st.DrawFn, valid: list[bytes]) -> dict[str, Any]:
    """A valid model with a member missing, added, or replaced (wrong dtype, shape, NaN/Inf,
    object array, header as bytes or as a 1-d array)."""
    arrays: dict[str, Any] = model_arrays(draw(st.sampled_from(valid)))
    name = draw(st.sampled_from(sorted(arrays) + ["extra", "optimizer_state/v"]))
    how = draw(st.sampled_from(["drop", "replace", "nonfinite", "object"]))
    if how == "drop":
        arrays.pop(name, None)
    elif how == "replace":
        shape = arrays[name].shape if name in arrays else (3,)
        arrays[name] = draw(
            st.one_of(
                hnp.arrays(
                    st.sampled_from(["<f4", "<f8", "<i8", "|u1", "<U3", "|S3", "|b1"]),
                    st.sampled_from([shape, (), (2, 2), (0,)]),
                ),
                st.just(np.array([str(arrays.get("header", ""))])),
                st.just(np.array(str(arrays.get("header", "")).encode())),
            )
        )
    elif how == "nonfinite" and name in arrays and arrays[name].dtype.kind == "f":
        arrays[name] = arrays[name].copy()
        arrays[name].flat[draw(st.integers(0, arrays[name].size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf])
        )
    else:
        arrays[name] = np.array([Tripwire(Path("/nonexistent/never-created"))], dtype=object)
    return arrays


def save_arrays(arrays: dict[str, np.ndarray], compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def check_model_file(path: Path) -> None:
    out = outcome(lambda: load_model(path), path)
    if not isinstance(out, NumbamlpError):
        check_model(out)


@fuzz(40)
@given(st.data())
def test_valid_models_load(work, valid_models, data):
    path = write(work / "model.npz", data.draw(st.sampled_from(valid_models)))
    out = outcome(lambda: load_model(path), path)
    assert isinstance(out, LoadedModel), out
    check_model(out)


@fuzz(200)
@given(st.data())
def test_damaged_model_bytes(work, valid_models, data):
    original = data.draw(st.sampled_from(valid_models))
    check_model_file(write(work / "model.npz", data.draw(damaged(original, 128))))


@fuzz(200)
@given(st.data(), st.booleans())
def test_model_header_valid_json_wrong_types(work, valid_models, data, compressed):
    arrays = data.draw(model_with_hostile_header(valid_models))
    check_model_file(write(work / "model.npz", save_arrays(arrays, compressed)))


@fuzz(150)
@given(st.data(), st.booleans())
def test_model_members_missing_extra_or_wrong(work, valid_models, data, compressed):
    arrays = data.draw(model_with_hostile_members(valid_models))
    check_model_file(write(work / "model.npz", save_arrays(arrays, compressed)))


@fuzz(100)
@given(st.data())
def test_model_with_crafted_npy_member(work, valid_models, data):
    members = {}
    with zipfile.ZipFile(io.BytesIO(data.draw(st.sampled_from(valid_models)))) as z:
        for name in z.namelist():
            members[name] = z.read(name)
    victim = data.draw(st.sampled_from(sorted(members) + ["extra.npy"]))
    members[victim] = data.draw(st.one_of(crafted_npy(), st.binary(max_size=40)))
    check_model_file(write(work / "model.npz", zip_bytes(members)))


@fuzz(40)
@given(st.binary(max_size=300), st.booleans())
def test_arbitrary_bytes_as_model(work, data, zipped):
    check_model_file(write(work / "model.npz", b"PK\x03\x04" + data if zipped else data))


# --- the catalogue: the table's rows, each an example test --------------------------------------


def _patch(data: bytes, signature: bytes, offset: int, value: bytes) -> bytes:
    """Overwrite bytes at ``offset`` after every occurrence of a zip record ``signature``."""
    out = bytearray(data)
    for m in re.finditer(re.escape(signature), data):
        out[m.start() + offset : m.start() + offset + len(value)] = value
    return bytes(out)


LOCAL, CENTRAL = b"PK\x03\x04", b"PK\x01\x02"  # zip local file header, central directory entry


def npy_header(fields: str, version: tuple[int, int] = (1, 0), payload: bytes = b"") -> bytes:
    header = fields.encode("latin1")
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return npy_member(header, payload, version)


def xy_zip(**members: bytes) -> bytes:
    """An .npz whose X and y are good unless replaced by ``members`` (raw member bytes)."""
    good = {"X.npy": npz_member_bytes(np.ones((2, 3))), "y.npy": npz_member_bytes(np.arange(2))}
    good.update({f"{name}.npy": data for name, data in members.items()})
    return zip_bytes(good)


def good_model_arrays() -> dict[str, np.ndarray]:
    model = MLP.create(3, [2], 3, rng=np.random.default_rng(0))
    opt = Optimizer.create("adam", model.architecture.n_parameters, model.dtype)
    header = {
        "format": "numbamlp-model",
        "format_version": 1,
        "architecture": {"sizes": [3, 2, 3], "activations": ["sigmoid"], "head": "softmax"},
        "dtype": "float32",
        "optimizer": {"name": "adam", "hyper": opt.hyper, "step_count": 3},
        "metadata": {"dataset": None, "class_names": ["a", "b", "c"]},
    }
    arrays = {"header": np.array(json.dumps(header)), "theta": model.params.theta}
    return arrays | {f"optimizer_state/{k}": v for k, v in opt.state.items()}


def model_with(header_change: Callable[[dict], Any] | None = None, **arrays: Any) -> bytes:
    """A good model file with its JSON header changed and/or arrays replaced (None: dropped)."""
    base = good_model_arrays()
    if header_change is not None:
        header = json.loads(str(base["header"]))
        replaced = header_change(header)
        base["header"] = np.array(
            replaced
            if isinstance(replaced, str)
            else json.dumps(header if replaced is None else replaced)
        )
    for name, value in arrays.items():
        key = name.replace("__", "/")
        if value is None:
            base.pop(key)
        else:
            base[key] = value
    return save_arrays(base, compressed=False)


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def change(header: dict) -> None:
        *parents, last = path.split(".")
        for key in parents:
            header = header[key]
        header[last] = value

    return change


ROLES = dict(
    zip(("train_images", "train_labels", "test_images", "test_labels"), IDX_FILES, strict=True)
)


def mnist_dir(**replace: bytes) -> dict[str, bytes]:
    """A tiny valid MNIST-style folder (as {file name: bytes}), some files replaced by role."""
    files = {
        IDX_FILES[0]: idx_bytes(8, (3, 2, 2), bytes(12)),
        IDX_FILES[1]: idx_bytes(8, (3,), bytes([0, 1, 2])),
        IDX_FILES[2]: idx_bytes(8, (2, 2, 2), bytes(8)),
        IDX_FILES[3]: idx_bytes(8, (2,), bytes([1, 0])),
    }
    return files | {ROLES[role]: data for role, data in replace.items()}


GOOD_NPZ = npz_bytes({"X": np.ones((2, 3)), "y": np.arange(2)}, compressed=False)
IMAGES = idx_bytes(8, (2, 3, 3), bytes(range(18)))


class BadInput:
    """One row of the table: a file, the reader (and the CLI command) that reads it, the outcome
    (a fragment of the NumbamlpError's message, or None for a valid result)."""

    def __init__(self, name: str, reader: str, content: Any, expect: str | None, fixed: str = ""):
        self.name, self.reader, self.content, self.expect = name, reader, content, expect
        self.fixed = fixed  # the bug this row found, if any

    def write(self, folder: Path) -> Path:
        suffix = {"npz": ".npz", "csv": ".csv", "mod": ".npz", "idx": ".idx"}[self.name[:3]]
        if isinstance(self.content, dict):  # a folder of IDX files
            path = folder / self.name
            path.mkdir()
            for stem, data in self.content.items():
                (path / stem).write_bytes(data)
            return path
        path = folder / f"{self.name}{suffix}"
        content = self.content(folder) if callable(self.content) else self.content
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def __repr__(self) -> str:
        return self.name


READERS: dict[str, Callable[[Path], Any]] = {
    "idx": read_idx,
    "features": load_features_file,
    "arrays": load_arrays_file,
    "model": load_model,
    "mnist": lambda path: load_mnist(path, verify=False),
}


def _pickled(member: str) -> Callable[[Path], bytes]:
    """An .npz whose ``member`` is an object array holding a Tripwire for folder/unpickled."""

    def content(folder: Path) -> bytes:
        arrays = {"X": np.ones((2, 3)), "y": np.arange(2)}
        arrays[member] = np.array([Tripwire(folder / "unpickled"), 1], dtype=object)
        return npz_bytes(arrays, compressed=False)

    return content


def _gzip_damaged(data: bytes) -> bytes:
    z = bytearray(gzip.compress(data, mtime=0))
    z[12] ^= 0xFF  # inside the deflate stream
    return bytes(z)


STORED_BIG = zip_bytes(
    {
        "X.npy": npy_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000,), }", payload=bytes(16)
        ),
        "y.npy": npz_member_bytes(np.arange(2)),
    }
)

CATALOGUE: list[BadInput] = [
    # IDX: `predict --input FILE` (anything not .npz/.csv), `train --data-dir DIR`
    BadInput("idx-empty", "idx", b"", "is empty (0 bytes)"),
    BadInput("idx-3-bytes", "idx", b"\x00\x00\x08", "too short to be an IDX file"),
    BadInput(
        "idx-wrong-magic",
        "idx",
        b"\x12\x34" + IMAGES[2:],
        "is not an IDX file: its magic number 12 34 08 03",
    ),
    BadInput(
        "idx-npy-file",
        "idx",
        npz_member_bytes(np.ones((2, 3))),
        "is not an IDX file: its magic number 93 4e 55 4d",
    ),
    BadInput(
        "idx-unknown-type-code",
        "idx",
        IMAGES[:2] + b"\x07" + IMAGES[3:],
        "unknown IDX type code 0x07",
    ),
    BadInput("idx-0-dimensions", "idx", b"\x00\x00\x08\x00", "declares 0 dimensions"),
    BadInput(
        "idx-100-dimensions",
        "idx",
        idx_bytes(8, (1,) * 100, b"\x07"),
        "declares 100 dimensions in its IDX magic number (at most 32",
        "ValueError (numpy: more than 64 dimensions)",
    ),
    BadInput(
        "idx-truncated-header",
        "idx",
        IMAGES[:10],
        "is truncated: its IDX header declares 3 dimensions and needs 16 bytes",
    ),
    BadInput("idx-truncated-data", "idx", IMAGES[:-1], "expected 18 data bytes, got 17"),
    BadInput("idx-extra-bytes", "idx", IMAGES + b"\x00", "has 1 extra bytes after the data"),
    BadInput(
        "idx-huge-dimensions",
        "idx",
        idx_bytes(8, (60000, 60000, 60000), bytes(16)),
        "expected 216000000000000 data bytes, got 16",
    ),
    BadInput(
        "idx-impossible-shape",
        "idx",
        idx_bytes(8, (0, 2**31, 2**31, 2**31), b""),
        "declares an impossible shape",
    ),
    BadInput(
        "idx-gzip-truncated", "idx", gzip.compress(IMAGES, mtime=0)[:20], "is a truncated gzip file"
    ),
    BadInput("idx-gzip-corrupt", "idx", _gzip_damaged(IMAGES), "is a corrupt gzip file"),
    BadInput(
        "idx-float-nan-features",
        "features",
        idx_bytes(0x0D, (1, 2), struct.pack(">2f", 1, np.nan)),
        "missing value 'nan' at row 0, column 1",
    ),
    BadInput(
        "idx-3d-int32",
        "features",
        idx_bytes(0x0C, (1, 1, 1), bytes(4)),
        "holds a 3-d IDX array; expected (n, rows, cols) uint8 images",
    ),
    BadInput(
        "idx-zero-images",
        "features",
        idx_bytes(8, (0, 28, 28), b""),
        None,
        "ValueError: cannot reshape array of size 0",
    ),
    BadInput(
        "idx-dir-labels-as-images",
        "mnist",
        mnist_dir(train_images=idx_bytes(8, (3,), bytes(3))),
        "should hold images",
    ),
    BadInput(
        "idx-dir-label-10",
        "mnist",
        mnist_dir(test_labels=idx_bytes(8, (2,), bytes([1, 10]))),
        "has label 10 at index 1",
    ),
    BadInput(
        "idx-dir-count-mismatch",
        "mnist",
        mnist_dir(train_labels=idx_bytes(8, (2,), bytes(2))),
        "has 3 images but",
    ),
    # .npz user data: `train --train-file/--test-file F.npz`, `evaluate --test-file`, `predict --input`
    BadInput("npz-text", "arrays", "X,y\n1,0\n", "not an .npz archive (not a zip file)"),
    BadInput(
        "npz-truncated",
        "arrays",
        GOOD_NPZ[: len(GOOD_NPZ) // 2],
        "damaged .npz archive (BadZipFile",
        "leaked the open file (ResourceWarning)",
    ),
    BadInput(
        "npz-flipped-data-byte",
        "arrays",
        lambda folder: GOOD_NPZ[:200] + bytes([GOOD_NPZ[200] ^ 0xFF]) + GOOD_NPZ[201:],
        "Bad CRC-32",
    ),
    BadInput(
        "npz-member-not-npy",
        "arrays",
        xy_zip(X=b"hello world"),
        "member 'X' is not a numpy array (no .npy header)",
        "AttributeError: 'bytes' object has no attribute 'ndim'",
    ),
    BadInput(
        "npz-member-not-npy-predict",
        "features",
        xy_zip(X=b"hello world"),
        "member 'X' is not a numpy array (no .npy header)",
        "AttributeError: 'bytes' object has no attribute 'ndim'",
    ),
    BadInput(
        "npz-huge-shape",
        "arrays",
        xy_zip(
            X=npy_header(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 1000), }",
                payload=bytes(64),
            )
        ),
        "array 'X' is truncated or damaged: its .npy header declares shape (100000000000, 1000)",
        "MemoryError: Unable to allocate 728 TiB",
    ),
    BadInput(
        "npz-zip-size-lie",
        "arrays",
        _patch(STORED_BIG, CENTRAL, 24, b"\xf0\xff\xff\xff"),
        "declares shape (100000000,) of float64 (800,000,000 bytes), but its member holds at most",
        "allocated 800 MB for a 482-byte file, then failed",
    ),
    BadInput(
        "npz-impossible-shape",
        "features",
        xy_zip(
            X=npy_header(f"{{'descr': '<f8', 'fortran_order': False, 'shape': (0, {2**63}), }}")
        ),
        "declares an impossible shape (0, 9223372036854775808)",
        "numpy printed RuntimeWarning: invalid value encountered in reduce",
    ),
    BadInput(
        "npz-negative-shape",
        "arrays",
        xy_zip(X=npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (-1, 2), }")),
        "declares a negative dimension",
    ),
    BadInput(
        "npz-unknown-dtype",
        "arrays",
        xy_zip(X=npy_header("{'descr': 'xyz', 'fortran_order': False, 'shape': (1, 2), }")),
        "descr is not a valid dtype descriptor",
    ),
    BadInput(
        "npz-header-is-code",
        "arrays",
        xy_zip(X=npy_header("__import__('os').system('touch pwned')")),
        "damaged .npz archive: array 'X'",
    ),
    BadInput(
        "npz-header-unclosed",
        "arrays",
        xy_zip(X=npy_header("{'descr': '<f8'")),
        "damaged .npz archive: array 'X'",
        "tokenize.TokenError",
    ),
    BadInput(
        "npz-npy-version-3",
        "arrays",
        xy_zip(
            X=npy_header(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", (3, 0), bytes(48)
            )
        ),
        "has .npy format version 3.0",
        "read (now refused: numpy writes 3.0 only for non-Latin-1 field names)",
    ),
    BadInput(
        "npz-encrypted-member",
        "arrays",
        _patch(_patch(GOOD_NPZ, LOCAL, 6, b"\x01"), CENTRAL, 8, b"\x01"),
        "is encrypted",
        "RuntimeError: password required for extraction",
    ),
    BadInput(
        "npz-unknown-compression",
        "arrays",
        _patch(_patch(GOOD_NPZ, LOCAL, 8, b"\x63"), CENTRAL, 10, b"\x63"),
        "compression method is not supported",
        "NotImplementedError",
    ),
    BadInput(
        "npz-object-X",
        "arrays",
        _pickled("X"),
        "array 'X' is an object array (pickled Python objects), which numbamlp never loads",
    ),
    BadInput("npz-object-extra", "arrays", _pickled("extra"), None),
    BadInput(
        "npz-no-y",
        "arrays",
        npz_bytes({"X": np.ones((2, 3))}, False),
        "has no array named y (it holds: X)",
    ),
    BadInput(
        "npz-X-1d",
        "arrays",
        npz_bytes({"X": np.ones(2), "y": np.arange(2)}, False),
        "X must be a 2-d numeric array",
    ),
    BadInput(
        "npz-X-strings",
        "arrays",
        npz_bytes({"X": np.array([["a"], ["b"]]), "y": np.arange(2)}, False),
        "got a 2-d <U1 array",
    ),
    BadInput(
        "npz-X-complex",
        "arrays",
        npz_bytes({"X": np.ones((2, 1), complex), "y": np.arange(2)}, False),
        "got a 2-d complex128 array",
    ),
    BadInput(
        "npz-X-nan",
        "arrays",
        npz_bytes({"X": np.array([[1.0], [np.nan]]), "y": np.arange(2)}, False),
        "missing value 'nan' at row 1, column 0",
    ),
    BadInput(
        "npz-X-inf-predict",
        "features",
        npz_bytes({"X": np.array([[1.0], [-np.inf]])}, False),
        "feature value -inf at row 1, column 0 is not a finite number",
    ),
    BadInput(
        "npz-rows-mismatch",
        "arrays",
        npz_bytes({"X": np.ones((2, 3)), "y": np.arange(3)}, False),
        "X has 2 rows but y has 3 labels",
    ),
    BadInput(
        "npz-y-negative",
        "arrays",
        npz_bytes({"X": np.ones((2, 3)), "y": np.array([0, -1])}, False),
        None,  # any labels: the classes -1 and 0
    ),
    BadInput(
        "npz-y-fraction",
        "arrays",
        npz_bytes({"X": np.ones((2, 3)), "y": np.array([0, 0.5])}, False),
        None,  # numbers that are not all integers: a regression's targets
    ),
    BadInput(
        "npz-y-1e300",
        "arrays",
        npz_bytes({"X": np.ones((2, 3)), "y": np.array([0, 1e300])}, False),
        None,  # a float array: a regression's targets
    ),
    BadInput(
        "npz-y-float16",
        "arrays",
        npz_bytes({"X": np.ones((2, 3)), "y": np.array([0, 1], np.float16)}, False),
        None,
        "numpy printed RuntimeWarning: overflow encountered in cast",
    ),
    # .csv user data: the same commands with F.csv
    BadInput("csv-empty", "arrays", "", "is empty; a CSV file needs a header row"),
    BadInput(
        "csv-no-label-column",
        "arrays",
        "a,b\n1,2\n",
        "has no label column 'label'; its columns are: a, b.",
    ),
    BadInput(
        "csv-only-label-column",
        "arrays",
        "label\n1\n",
        "has only the label column 'label' and no feature columns",
    ),
    BadInput("csv-header-only", "arrays", "a,label\n", "has a header but no data rows"),
    BadInput(
        "csv-ragged-row",
        "arrays",
        "a,b,label\n1,2,0\n3,4\n",
        "line 3 has 2 fields but the header has 3",
    ),
    BadInput(
        "csv-text-cell", "arrays", "a,label\n1,0\nx,1\n", "line 3, column 'a': 'x' is not a number"
    ),
    BadInput(
        "csv-1e999",
        "arrays",
        "a,label\n1e999,0\n",
        "feature value inf at row 0 (line 2), column 'a' is not a finite number",
    ),
    BadInput(
        "csv-nul-byte",
        "arrays",
        "a,label\n1,0\n\x00,1\n",
        "line 3, column 'a': '\\x00' is not a number",
    ),
    BadInput(
        "csv-unclosed-quote",
        "arrays",
        'a,label\n"1,0\n2,1\n',
        "line 3 has 1 fields but the header has 2",
    ),
    BadInput(
        "csv-unclosed-quote-in-header",
        "arrays",
        '"a,label\n1,0\n2,1\n',
        "its columns are: 'a,label\\n1,0\\n2,1'.",
        "a message of several lines quoting the whole file",
    ),
    BadInput(
        "csv-latin-1",
        "arrays",
        "a,\xe9tiquette,label\n1,2,0\n".encode("latin-1"),
        "is not a readable UTF-8 CSV file",
    ),
    BadInput(
        "csv-utf-16",
        "arrays",
        "a,label\n1,0\n".encode("utf-16"),
        "is not a readable UTF-8 CSV file",
    ),
    BadInput("csv-utf-8-bom-crlf", "arrays", "\ufeffa,label\r\n1,0\r\n2,1\r\n".encode(), None),
    BadInput(
        "csv-label-fraction",
        "arrays",
        "a,label\n1,0\n2,0.5\n",
        None,  # a regression's targets
    ),
    # model files: `evaluate --model F`, `predict --model F`
    BadInput("model-empty", "model", b"", "not an .npz archive (not a zip file)"),
    BadInput(
        "model-npy-file",
        "model",
        npz_member_bytes(np.ones(3)),
        "not an .npz archive (not a zip file)",
    ),
    BadInput(
        "model-truncated",
        "model",
        lambda folder: model_with()[:300],
        "damaged .npz archive",
        "leaked the open file (ResourceWarning)",
    ),
    BadInput(
        "model-flipped-data-byte",
        "model",
        lambda folder: (lambda d: d[:-300] + bytes([d[-300] ^ 0xFF]) + d[-299:])(model_with()),
        "Bad CRC-32",
    ),
    BadInput(
        "model-no-header",
        "model",
        lambda folder: model_with(header=None),
        "missing header or parameters",
    ),
    BadInput(
        "model-header-not-json",
        "model",
        lambda folder: model_with(lambda h: "{format: 1"),
        "header is not JSON",
    ),
    BadInput(
        "model-header-nested-50000-deep",
        "model",
        lambda folder: model_with(lambda h: "[" * 50000 + "]" * 50000),
        "header is not JSON: nested too deeply",
        "RecursionError",
    ),
    BadInput(
        "model-header-5000-digit-number",
        "model",
        lambda folder: model_with(lambda h: '{"format_version": ' + "9" * 5000 + "}"),
        "header is not JSON: it holds a number too long to read",
        "ValueError: Exceeds the limit (4300 digits)",
    ),
    BadInput(
        "model-other-format",
        "model",
        lambda folder: model_with(_set("format", "other")),
        "not a numbamlp model file",
    ),
    BadInput(
        "model-newer-version",
        "model",
        lambda folder: model_with(_set("format_version", 2)),
        "has format version 2, newer than this numbamlp understands (1)",
    ),
    BadInput(
        "model-version-string",
        "model",
        lambda folder: model_with(_set("format_version", "1")),
        "format version '1' is not a positive integer",
    ),
    BadInput(
        "model-sizes-infinity",
        "model",
        lambda folder: model_with(_set("architecture.sizes", [3, 2, float("inf")])),
        "bad architecture: layer width inf is not an integer",
        "OverflowError",
    ),
    BadInput(
        "model-sizes-string",
        "model",
        lambda folder: model_with(_set("architecture.sizes", "323")),
        "bad architecture: sizes is not a list",
        'accepted: "323" read as sizes (3, 2, 3)',
    ),
    BadInput(
        "model-unknown-activation",
        "model",
        lambda folder: model_with(_set("architecture.activations", ["swish"])),
        "unknown activation 'swish'",
    ),
    BadInput(
        "model-dtype-list",
        "model",
        lambda folder: model_with(_set("dtype", ["float32"])),
        "unknown dtype ['float32']",
    ),
    BadInput(
        "model-theta-wrong-length",
        "model",
        lambda folder: model_with(theta=np.ones(5, np.float32)),
        "parameters have shape (5,) and dtype float32, the architecture needs (17,) float32",
    ),
    BadInput(
        "model-theta-nan",
        "model",
        lambda folder: model_with(theta=np.full(17, np.nan, np.float32)),
        "parameters contain NaN or Inf",
    ),
    BadInput(
        "model-theta-object",
        "model",
        lambda folder: model_with(theta=np.array([Tripwire(folder / "unpickled")], dtype=object)),
        "array 'theta' is an object array",
    ),
    BadInput(
        "model-theta-huge-shape",
        "model",
        lambda folder: zip_bytes(
            {
                "header.npy": npz_member_bytes(good_model_arrays()["header"]),
                "theta.npy": npy_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }",
                    payload=bytes(68),
                ),
            }
        ),
        "array 'theta' is truncated or damaged",
        "allocated 4 TB (virtual) for a 2 kB file, then failed",
    ),
    BadInput(
        "model-unknown-optimizer",
        "model",
        lambda folder: model_with(_set("optimizer.name", "lion")),
        "unknown optimizer 'lion'",
    ),
    BadInput(
        "model-hyper-400-digit-int",
        "model",
        lambda folder: model_with(_set("optimizer.hyper.lr", 10**400)),
        "hyperparameter lr 1000",
        "OverflowError",
    ),
    BadInput(
        "model-step-count-infinity",
        "model",
        lambda folder: model_with(_set("optimizer.step_count", float("inf"))),
        "step count inf is not an integer",
        "OverflowError",
    ),
    BadInput(
        "model-state-nan",
        "model",
        lambda folder: model_with(optimizer_state__m=np.full(17, np.nan, np.float32)),
        "optimizer state 'm' contains NaN or Inf",
        "accepted",
    ),
    BadInput(
        "model-state-missing",
        "model",
        lambda folder: model_with(optimizer_state__v=None),
        "array(s) optimizer_state/v missing",
    ),
    BadInput(
        "model-metadata-dataset-7",
        "model",
        lambda folder: model_with(_set("metadata.dataset", 7)),
        "metadata dataset 7 is not a data set name",
        "accepted; then `evaluate` crashed (AttributeError)",
    ),
    BadInput(
        "model-metadata-class-names-5",
        "model",
        lambda folder: model_with(_set("metadata.class_names", 5)),
        "metadata class_names is not a list of names",
        "accepted; then `evaluate` crashed (TypeError)",
    ),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=repr)
def test_catalogue(case, tmp_path):
    """Each row of the table: the reader gives exactly the outcome the table states."""
    path = case.write(tmp_path)
    out = outcome(lambda: READERS[case.reader](path), path)
    if case.expect is None:
        assert not isinstance(out, NumbamlpError), out
    else:
        assert isinstance(out, NumbamlpError), f"accepted: {out!r}"
        assert case.expect in str(out), str(out)
    assert not (tmp_path / "unpickled").exists()


def test_table_lists_every_catalogue_row():
    rows = {line.split("|")[1].strip(" `") for line in __doc__.splitlines() if line.startswith("|")}
    assert {case.name for case in CATALOGUE} <= rows


# --- the command line on bad files --------------------------------------------------------------

SCRIPT = Path(sys.executable).with_name("numbamlp")
NUMBAMLP = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "numbamlp.cli.commands"]


@pytest.mark.slow
def test_cli_on_bad_files(tmp_path):
    """Real `numbamlp` processes on catalogue files: exit status 2, one stderr line starting
    "error:" that names the file, no traceback. Run concurrently: each pays Python's and Numba's
    start-up."""
    files = {case.name: case.write(tmp_path) for case in CATALOGUE}
    good_model = tmp_path / "good-model.npz"
    good_model.write_bytes(model_with())
    good_npz = write(tmp_path / "good.npz", GOOD_NPZ)
    bad = files.__getitem__
    commands = [  # (the bad file the message must name, the command line)
        (bad("model-truncated"), ("evaluate", "--model", bad("model-truncated"))),
        (bad("model-metadata-dataset-7"), ("evaluate", "--model", bad("model-metadata-dataset-7"))),
        (
            bad("model-header-nested-50000-deep"),
            ("evaluate", "--model", bad("model-header-nested-50000-deep"), "--test-file", good_npz),
        ),
        (
            bad("model-theta-object"),
            ("predict", "--model", bad("model-theta-object"), "--input", bad("npz-huge-shape")),
        ),
        (
            bad("npz-member-not-npy-predict"),
            ("predict", "--model", good_model, "--input", bad("npz-member-not-npy-predict")),
        ),
        (
            bad("idx-100-dimensions"),
            ("predict", "--model", good_model, "--input", bad("idx-100-dimensions")),
        ),
        (
            bad("csv-unclosed-quote-in-header"),
            ("predict", "--model", good_model, "--input", bad("csv-unclosed-quote-in-header")),
        ),
        (bad("npz-huge-shape"), ("train", "--train-file", bad("npz-huge-shape"))),
        (bad("csv-nul-byte"), ("train", "--train-file", bad("csv-nul-byte"), "--epochs", "1")),
        (
            bad("npz-object-X"),
            ("train", "--train-file", good_npz, "--test-file", bad("npz-object-X")),
        ),
        (bad("idx-dir-label-10"), ("train", "--data-dir", bad("idx-dir-label-10"))),
    ]
    processes = [
        (
            named,
            args,
            subprocess.Popen(
                NUMBAMLP + [str(a) for a in args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for named, args in commands
    ]
    for named, args, process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 2, (args, stderr)
        assert "Traceback" not in stdout + stderr, (args, stderr)
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, stderr)
        assert str(named) in lines[0], (args, stderr)
    assert not (tmp_path / "unpickled").exists()


# --- the commands on damaged files: one line, and no good file ever changes ------------------


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny training set, a model trained on it and the run's checkpoint, all good."""
    from numbamlp.training.fit import fit

    root = tmp_path_factory.mktemp("good-run")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    X = np.eye(3, 4)[y] + rng.normal(size=(60, 4))
    np.savez(root / "train.npz", X=X, y=y)
    (root / "train.csv").write_text(
        "a,b,c,d,label\n"
        + "".join(f"{','.join(map(str, x))},{t}\n" for x, t in zip(X, y, strict=True))
    )
    fit(train_file=str(root / "train.npz"), hidden=[5], epochs=1, batch_size=16, verbose=0,
        save=root / "model.npz", checkpoint_dir=root / "ck")  # fmt: skip
    return {
        "train.npz": root / "train.npz",
        "train.csv": root / "train.csv",
        "model.npz": root / "model.npz",
        "checkpoint.npz": root / "ck" / "checkpoint.npz",
    }


@st.composite
def damaged_copy(draw: st.DrawFn, good: bytes) -> bytes:
    """``good`` cut short, with bits flipped, or replaced by random bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "random"]))
    if kind == "truncate":
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == "random":
        return draw(st.binary(max_size=300))
    data = bytearray(good)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


#: The commands, each with the damaged file in the place of one of its inputs: (which good file
#: is damaged, where the damaged copy goes, the arguments with {bad}, {out} and the good files).
COMMANDS = [
    ("model.npz", "model.npz", ["evaluate", "--model", "{bad}", "--test-file", "{train.npz}"]),
    ("model.npz", "model.npz",
     ["predict", "--model", "{bad}", "--input", "{train.npz}", "--output", "{out}.csv"]),
    ("train.npz", "data.npz",
     ["predict", "--model", "{model.npz}", "--input", "{bad}", "--output", "{out}.csv"]),
    ("train.csv", "data.csv",
     ["evaluate", "--model", "{model.npz}", "--test-file", "{bad}"]),
    ("checkpoint.npz", "ck/checkpoint.npz",
     ["train", "--resume", "{bad}", "--epochs", "2", "-q", "--save", "{out}.npz"]),
    ("train.npz", "data.npz",
     ["train", "--train-file", "{bad}", "--epochs", "1", "-q", "--save", "{out}.npz"]),
]  # fmt: skip


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "command", range(len(COMMANDS)), ids=lambda i: " ".join(COMMANDS[i][2][:1])
)
@fuzz(24)
@given(data=st.data())
def test_a_command_on_a_damaged_file_is_one_line_and_changes_no_good_file(
    good_run, tmp_path_factory, command, data
):
    """evaluate, predict and train --resume/--train-file with one input damaged (cut short, bits
    flipped, random bytes): exit 0, or exit 2 with one stderr line "error: …" and no traceback;
    the good files, and an output that was there before, keep their bytes when it fails."""
    from click.testing import CliRunner

    from numbamlp.cli.commands import main

    which, where, args = COMMANDS[command]
    work = tmp_path_factory.mktemp("damaged")
    bad = work / where
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(data.draw(damaged_copy(good_run[which].read_bytes()), label="damaged"))
    out = work / "out"
    for suffix in (".csv", ".npz"):
        (work / f"out{suffix}").write_bytes(b"an earlier output\n")  # must survive a failure
    before = {name: _digest(path) for name, path in good_run.items()}
    earlier = {p: _digest(p) for p in work.glob("out.*")}
    values = {"bad": str(bad), "out": str(out)} | {k: str(v) for k, v in good_run.items()}
    argv = []
    for arg in args:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        argv.append(arg)
    result = CliRunner().invoke(main, argv)
    assert result.exit_code in (0, 2), (argv, result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
        assert {p: _digest(p) for p in earlier} == earlier, "a failed command changed an output"
    assert {name: _digest(path) for name, path in good_run.items()} == before
