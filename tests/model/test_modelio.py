"""Model files: a save → load round trip is exact, a damaged or hostile file is refused with one
clear NumbamlpError (never a traceback, never unpickled), and a failed save keeps the old file."""

from __future__ import annotations

import errno
import gc
import io
import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest

from numbamlp.errors import NumbamlpError
from numbamlp.kernels.optimizers import OPTIMIZERS, Optimizer
from numbamlp.model.mlp import MLP
from numbamlp.model.modelio import FORMAT, FORMAT_VERSION, load_model, save_model
from numbamlp.training.trainer import TrainConfig, Trainer

N_FEATURES, N_CLASSES = 4, 3


def _data(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    X = 2.0 * np.eye(N_CLASSES, N_FEATURES)[y] + rng.normal(size=(n, N_FEATURES))
    return X, y


def _trained(
    optimizer: str = "adam",
    hidden=(5,),
    activations="sigmoid",
    head: str = "softmax",
    dtype: str = "float32",
    epochs: int = 2,
):
    """A small model trained a few steps, so θ and the optimizer state are not their initial
    values."""
    X, y = _data()
    model = MLP.create(
        N_FEATURES,
        list(hidden),
        N_CLASSES,
        activations=activations,
        head=head,
        dtype=dtype,
        rng=np.random.default_rng(1),
    )
    config = TrainConfig(epochs=epochs, batch_size=16, optimizer=optimizer)
    trainer = Trainer(model, X, y, config, np.random.default_rng(2))
    for _ in range(epochs):
        trainer.train_epoch()
    return model, trainer.optimizer


@pytest.fixture(scope="module")
def adam_model():
    return _trained("adam")


@pytest.fixture
def good_file(tmp_path, adam_model):
    model, optimizer = adam_model
    path = tmp_path / "model.npz"
    save_model(path, model, optimizer, metadata={"dataset": None, "class_names": ["a", "b", "c"]})
    return path


def _arrays(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _header(path) -> dict:
    return json.loads(str(_arrays(path)["header"]))


def _rewrite(path, dest, *, header=None, drop=(), **replace):
    """Copy the model file at ``path`` to ``dest`` with its header and/or arrays changed."""
    arrays = _arrays(path)
    if isinstance(header, np.ndarray):
        arrays["header"] = header
    elif header is not None:
        arrays["header"] = np.array(header if isinstance(header, str) else json.dumps(header))
    for name in drop:
        del arrays[name]
    arrays.update(replace)
    np.savez(dest, **arrays)
    return dest


def _refused(path, *fragments: str) -> str:
    with pytest.raises(NumbamlpError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message
    return message


# --- round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_round_trip_every_optimizer(tmp_path, optimizer):
    model, opt = _trained(optimizer)
    assert opt.step_count > 0
    path = tmp_path / "m.npz"
    metadata = {"dataset": "mnist", "epochs": 2, "test_accuracy": 0.5, "class_names": ["0"]}
    save_model(path, model, opt, metadata=metadata)
    loaded = load_model(path)

    assert loaded.model.architecture == model.architecture
    assert loaded.model.dtype == model.dtype
    assert loaded.model.params.theta.tobytes() == model.params.theta.tobytes()
    # saved without its data: the file says that it records no input (issue 17)
    assert loaded.metadata == {**metadata, "input": {"recorded": False}}
    got = loaded.optimizer
    assert got is not None
    assert got.name == opt.name
    assert got.hyper == opt.hyper
    assert got.step_count == opt.step_count
    assert sorted(got.state) == sorted(opt.state) == sorted(OPTIMIZERS[optimizer][0])
    for key, value in opt.state.items():
        assert got.state[key].dtype == value.dtype
        assert got.state[key].tobytes() == value.tobytes()

    X, _ = _data(25, seed=9)
    np.testing.assert_array_equal(loaded.model.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.model.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize(
    "hidden, activations, head, dtype",
    [
        ((5,), "tanh", "modified-softmax", "float64"),
        ((), "sigmoid", "softmax", "float32"),
        ((6, 3), ("relu", "softplus"), "softmax", "float64"),
        ((4, 4, 2), ("leaky_relu", "identity", "sigmoid"), "modified-softmax", "float32"),
    ],
)
def test_round_trip_architectures(tmp_path, hidden, activations, head, dtype):
    model, opt = _trained("sgd", hidden, activations, head, dtype, epochs=1)
    path = tmp_path / "m.npz"
    save_model(path, model, opt)
    loaded = load_model(path)
    assert loaded.model.architecture == model.architecture
    assert repr(loaded.model) == repr(model)
    assert loaded.model.params.theta.dtype == np.dtype(dtype)
    assert loaded.model.params.theta.tobytes() == model.params.theta.tobytes()
    X, _ = _data(10, seed=3)
    np.testing.assert_array_equal(loaded.model.predict_proba(X), model.predict_proba(X))


def test_without_optimizer_or_metadata(tmp_path, adam_model):
    model, _ = adam_model
    save_model(tmp_path / "m.npz", model)
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.optimizer is None
    assert loaded.metadata == {"input": {"recorded": False}}
    assert not loaded.input.known
    assert loaded.model.params.theta.tobytes() == model.params.theta.tobytes()


def test_loaded_arrays_are_private_copies(good_file, adam_model):
    model, _ = adam_model
    loaded = load_model(good_file)
    loaded.model.params.theta[:] = 0
    loaded.optimizer.state["m"][:] = 0
    assert np.any(model.params.theta != 0)
    again = load_model(good_file)
    assert again.model.params.theta.tobytes() == model.params.theta.tobytes()


def test_resumed_training_matches_uninterrupted(tmp_path):
    """The saved optimizer state is everything the next step needs: continuing from the loaded
    model and optimizer gives bit for bit the θ of continuing the original."""
    model, opt = _trained("adam", epochs=1)
    save_model(tmp_path / "m.npz", model, opt)
    loaded = load_model(tmp_path / "m.npz")
    X, y = _data()
    config = TrainConfig(epochs=1, batch_size=16, optimizer="adam")
    for m, o in ((model, opt), (loaded.model, loaded.optimizer)):
        Trainer(m, X, y, config, np.random.default_rng(5), optimizer=o).train_epoch()
    assert loaded.optimizer.step_count == opt.step_count
    assert loaded.model.params.theta.tobytes() == model.params.theta.tobytes()


def test_file_layout_is_plain_npz(good_file, adam_model):
    """One .npz readable with allow_pickle=False: a JSON text header, θ, the optimizer state."""
    model, optimizer = adam_model
    arrays = _arrays(good_file)
    assert set(arrays) == {"header", "theta", "optimizer_state/m", "optimizer_state/v"}
    assert arrays["header"].dtype.kind == "U"
    header = json.loads(str(arrays["header"]))
    assert header["format"] == FORMAT
    assert header["format_version"] == FORMAT_VERSION
    assert header["architecture"]["sizes"] == list(model.architecture.sizes)
    assert header["dtype"] == "float32"
    assert header["optimizer"]["name"] == "adam"
    assert header["optimizer"]["step_count"] == optimizer.step_count
    assert all(a.dtype != object for a in arrays.values())


def test_save_overwrites_atomically_and_leaves_no_temp(tmp_path, adam_model):
    model, opt = adam_model
    path = tmp_path / "m.npz"
    path.write_bytes(b"an older file")
    save_model(path, model, opt)
    assert load_model(path).model.params.theta.tobytes() == model.params.theta.tobytes()
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


# --- atomicity ----------------------------------------------------------------------------------


def test_failed_save_keeps_previous_file(tmp_path, good_file, adam_model, monkeypatch):
    before = good_file.read_bytes()
    model, opt = _trained("sgd", (7,), epochs=1)

    def savez_then_disk_full(file, *args, **kwds):
        file.write(b"PK\x03\x04 a few bytes of a new archive")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", savez_then_disk_full)
    with pytest.raises(NumbamlpError) as info:
        save_model(good_file, model, opt)
    assert "No space left on device" in str(info.value)
    assert str(good_file) in str(info.value)
    monkeypatch.undo()

    assert good_file.read_bytes() == before
    assert sorted(p.name for p in good_file.parent.iterdir()) == [good_file.name]
    assert load_model(good_file).model.architecture == adam_model[0].architecture


def test_save_into_missing_directory(tmp_path, adam_model):
    with pytest.raises(NumbamlpError, match="does not exist"):
        save_model(tmp_path / "nowhere" / "m.npz", adam_model[0])


# --- refusals -----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    _refused(tmp_path / "absent.npz", "does not exist")


def test_directory_instead_of_file(tmp_path):
    _refused(tmp_path, "does not exist")


def test_newer_format_version_is_refused(good_file, tmp_path):
    header = _header(good_file)
    header["format_version"] = FORMAT_VERSION + 1
    path = _rewrite(good_file, tmp_path / "newer.npz", header=header)
    message = _refused(path, f"format version {FORMAT_VERSION + 1}", "newer", "upgrade numbamlp")
    assert "train it again" not in message


@pytest.mark.parametrize("version", [0, -1, "1", 1.0, True, None])
def test_nonsense_format_version_is_refused(good_file, tmp_path, version):
    header = _header(good_file)
    header["format_version"] = version
    if version is None:
        del header["format_version"]
    _refused(_rewrite(good_file, tmp_path / "v.npz", header=header), "format version")


@pytest.mark.parametrize("keep", [0, 3, 30, 0.5, -22, -1])
def test_truncated_file(good_file, tmp_path, keep):
    data = good_file.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[:cut])
    _refused(path, "not a valid numbamlp model")


def test_flipped_byte_in_the_data(good_file, tmp_path):
    data = bytearray(good_file.read_bytes())
    start = data.index(b"theta.npy") + 200  # inside θ's stored bytes
    data[start] ^= 0xFF
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(data))
    _refused(path, "not a valid numbamlp model")


def test_random_bytes(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _refused(path, "not an .npz archive")


def test_random_bytes_after_zip_magic(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(1).bytes(4096))
    _refused(path, "not a valid numbamlp model")


def test_npy_file_is_not_a_model(tmp_path):
    path = tmp_path / "theta.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(10))
    _refused(path, "not an .npz archive")


def test_zip_without_header(good_file, tmp_path):
    _refused(_rewrite(good_file, tmp_path / "nohead.npz", drop=["header"]), "missing header")


def test_zip_without_theta(good_file, tmp_path):
    _refused(_rewrite(good_file, tmp_path / "notheta.npz", drop=["theta"]), "missing header")


def test_zip_of_other_files(tmp_path):
    path = tmp_path / "other.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    _refused(path, "missing header")


def test_zip_members_that_are_not_npy(good_file, tmp_path):
    """np.load returns raw bytes for a member without the .npy magic: that must not crash."""
    path = tmp_path / "raw.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("header.npy", json.dumps(_header(good_file)))
        z.writestr("theta.npy", b"\x00" * 64)
    _refused(path, "not a numpy array")


def test_empty_zip(tmp_path):
    path = tmp_path / "empty.npz"
    with zipfile.ZipFile(path, "w"):
        pass
    _refused(path, "not a valid numbamlp model")


def test_header_with_bad_json(good_file, tmp_path):
    path = _rewrite(good_file, tmp_path / "badjson.npz", header='{"format": "numbamlp-model", ')
    _refused(path, "header is not JSON")


def test_header_not_text(good_file, tmp_path):
    path = _rewrite(good_file, tmp_path / "numhead.npz", header=np.arange(3))
    _refused(path, "header is not text")


@pytest.mark.parametrize("header", [[1, 2], {"format": "something-else"}, "just a string"])
def test_header_of_another_format(good_file, tmp_path, header):
    _refused(
        _rewrite(good_file, tmp_path / "other.npz", header=json.dumps(header)), "not a numbamlp"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"sizes": [4, -5, 3]},
        {"sizes": [4, "five", 3]},
        {"sizes": None},
        {"activations": ["nope"]},
        {"activations": []},
        {"head": "sparsemax"},
    ],
    ids=["negative", "text", "null", "activation", "count", "head"],
)
def test_bad_architecture(good_file, tmp_path, change):
    header = _header(good_file)
    header["architecture"].update(change)
    _refused(_rewrite(good_file, tmp_path / "arch.npz", header=header), "bad architecture")


def test_architecture_missing(good_file, tmp_path):
    header = _header(good_file)
    del header["architecture"]
    _refused(_rewrite(good_file, tmp_path / "arch.npz", header=header), "bad architecture")


def test_unknown_dtype(good_file, tmp_path):
    header = _header(good_file) | {"dtype": "float16"}
    _refused(_rewrite(good_file, tmp_path / "f16.npz", header=header), "float16")


def test_theta_wrong_length(good_file, tmp_path):
    theta = _arrays(good_file)["theta"]
    path = _rewrite(good_file, tmp_path / "short.npz", theta=theta[:-1])
    _refused(path, f"({theta.size - 1},)", f"({theta.size},)")


def test_theta_wrong_dtype(good_file, tmp_path):
    theta = _arrays(good_file)["theta"].astype(np.float64)
    _refused(_rewrite(good_file, tmp_path / "f64.npz", theta=theta), "float64", "float32")


def test_theta_wrong_shape(good_file, tmp_path):
    theta = _arrays(good_file)["theta"][None, :]
    _refused(_rewrite(good_file, tmp_path / "2d.npz", theta=theta), "shape")


def test_theta_integer(good_file, tmp_path):
    theta = np.zeros(_arrays(good_file)["theta"].size, dtype=np.int32)
    _refused(_rewrite(good_file, tmp_path / "int.npz", theta=theta), "int32")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_theta(good_file, tmp_path, value):
    theta = _arrays(good_file)["theta"].copy()
    theta[3] = value
    _refused(_rewrite(good_file, tmp_path / "nan.npz", theta=theta), "NaN or Inf")


class _Trap:
    """Unpickling this object would create a file: proof that nothing was unpickled."""

    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


@pytest.mark.parametrize("member", ["theta", "extra", "optimizer_state/m"])
def test_object_array_is_never_unpickled(good_file, tmp_path, member):
    sentinel = tmp_path / "unpickled"
    evil = np.array([_Trap(str(sentinel)), 1.0], dtype=object)
    path = tmp_path / "evil.npz"
    arrays = _arrays(good_file) | {member: evil}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # savez pickles object arrays
    path.write_bytes(buffer.getvalue())
    _refused(path, "object array")
    assert not sentinel.exists()


def test_optimizer_state_missing(good_file, tmp_path):
    path = _rewrite(good_file, tmp_path / "nostate.npz", drop=["optimizer_state/v"])
    _refused(path, "bad optimizer state")


def test_optimizer_state_wrong_shape(good_file, tmp_path):
    path = _rewrite(good_file, tmp_path / "state.npz", **{"optimizer_state/m": np.zeros(3)})
    _refused(path, "optimizer state 'm'")


@pytest.mark.parametrize(
    "change",
    [
        {"name": "lbfgs"},
        {"name": None},
        {"hyper": {"lr": 0.001}},
        {"hyper": {"lr": "fast", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}},
        {"hyper": {"lr": -1.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}},
        {"hyper": {"lr": float("nan"), "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}},
        {"step_count": -3},
        {"step_count": "many"},
    ],
    ids=[
        "unknown",
        "null",
        "missing-hyper",
        "text-hyper",
        "negative-lr",
        "nan-lr",
        "neg-step",
        "t",
    ],
)
def test_bad_optimizer_header(good_file, tmp_path, change):
    header = _header(good_file)
    header["optimizer"].update(change)
    _refused(_rewrite(good_file, tmp_path / "opt.npz", header=header), "bad optimizer state")


def test_optimizer_header_not_a_mapping(good_file, tmp_path):
    header = _header(good_file) | {"optimizer": "adam"}
    _refused(_rewrite(good_file, tmp_path / "opt.npz", header=header), "bad optimizer state")


def test_metadata_not_a_mapping(good_file, tmp_path):
    header = _header(good_file) | {"metadata": [1, 2]}
    _refused(_rewrite(good_file, tmp_path / "meta.npz", header=header), "metadata")


def test_npy_header_declaring_terabytes_is_refused_before_allocating(good_file, tmp_path):
    # Found by tests/test_properties.py: np.load allocated 4 TB (virtual) for this 2 kB file
    # before failing; NpzReader compares the header with the member's size first.
    header = _npy_bytes(_arrays(good_file)["header"])
    fields = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"
    fields += b" " * (-(len(fields) + 11) % 64) + b"\n"
    theta = b"\x93NUMPY\x01\x00" + len(fields).to_bytes(2, "little") + fields + bytes(68)
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("header.npy", header)
        z.writestr("theta.npy", theta)
    tracemalloc.start()
    try:
        _refused(path, "array 'theta' is truncated or damaged", "holds at most 68 bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20


@pytest.mark.filterwarnings("error")
def test_damaged_file_is_closed(good_file, tmp_path):
    # np.load leaked the open file when the zip directory was damaged (ResourceWarning).
    path = tmp_path / "cut.npz"
    path.write_bytes(good_file.read_bytes()[:300])
    _refused(path, "damaged .npz archive")
    gc.collect()  # a leaked file would warn here, and the warning fail the test


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[" * 50_000 + "]" * 50_000, "nested too deeply"),  # was RecursionError
        ('{"format_version": ' + "9" * 5000 + "}", "number too long"),  # was ValueError
    ],
    ids=["deep", "long-number"],
)
def test_header_json_that_python_cannot_parse(good_file, tmp_path, text, fragment):
    # Found by tests/test_properties.py: json.loads raised these outside JSONDecodeError.
    _refused(
        _rewrite(good_file, tmp_path / "json.npz", header=text), "header is not JSON", fragment
    )


@pytest.mark.parametrize(
    "path, value, fragment",
    [
        (("architecture", "sizes"), [4, 5, float("inf")], "layer width inf is not an integer"),
        (("architecture", "sizes"), "453", "sizes is not a list"),  # was read as (4, 5, 3)
        (("architecture", "sizes"), [4, True, 3], "layer width True is not an integer"),
        (("architecture", "head"), ["softmax"], "head ['softmax'] is not text"),
        (("optimizer", "step_count"), float("inf"), "step count inf is not an integer"),
        (("optimizer", "step_count"), 2.5, "step count 2.5 is not an integer"),
        (("optimizer", "hyper", "lr"), 10**400, "is out of range"),
        (("optimizer", "hyper", "lr"), "0.001", "hyperparameter lr '0.001' is not a number"),
        (("optimizer", "name"), "lion", "unknown optimizer 'lion'"),
    ],
    ids=[
        "inf-width",
        "sizes-text",
        "bool-width",
        "head-list",
        "inf-step",
        "float-step",
        "huge-int-lr",
        "text-lr",
        "unknown-optimizer",
    ],
)
def test_header_fields_of_the_wrong_type(good_file, tmp_path, path, value, fragment):
    # Found by tests/test_properties.py: int(Infinity) and float(10**400) raised OverflowError;
    # int()/str() accepted values the writer never produces.
    header = _header(good_file)
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    _refused(_rewrite(good_file, tmp_path / "types.npz", header=header), fragment)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_optimizer_state(good_file, tmp_path, value):
    # Found by tests/test_properties.py: θ was checked for NaN/Inf, the optimizer state was not.
    m = _arrays(good_file)["optimizer_state/m"].copy()
    m[0] = value
    path = _rewrite(good_file, tmp_path / "state.npz", **{"optimizer_state/m": m})
    _refused(path, "optimizer state 'm' contains NaN or Inf")


@pytest.mark.parametrize(
    "metadata, fragment",
    [
        ({"dataset": 7}, "metadata dataset 7 is not a data set name"),
        ({"dataset": ["mnist"]}, "is not a data set name"),
        ({"class_names": 5}, "metadata class_names is not a list of names"),
        ({"class_names": [0, 1, 2]}, "metadata class_names is not a list of names"),
    ],
)
def test_metadata_fields_of_the_wrong_type(good_file, tmp_path, metadata, fragment):
    # Found by tests/test_properties.py: these loaded, then `numbamlp evaluate` crashed
    # (AttributeError: 'int' object has no attribute 'strip'; TypeError: no len()).
    header = _header(good_file)
    header["metadata"] |= metadata
    _refused(_rewrite(good_file, tmp_path / "meta.npz", header=header), fragment)


def test_a_hyperparameter_name_with_a_newline_gives_a_one_line_error(tmp_path):
    """Found by tests/test_properties.py's CI-sized run: the name went into the message as it
    was, so the one-line error had two lines."""
    model = MLP.create(3, [2], 3, rng=np.random.default_rng(0))
    path = tmp_path / "m.npz"
    save_model(path, model, Optimizer.create("adam", model.architecture.n_parameters, model.dtype))
    with np.load(path) as archive:
        arrays = dict(archive)
    header = json.loads(str(arrays["header"]))
    header["optimizer"]["hyper"] = {"\n": None}
    arrays["header"] = np.array(json.dumps(header))
    np.savez(path, **arrays)
    with pytest.raises(NumbamlpError) as caught:
        load_model(path)
    assert "\n" not in str(caught.value) and "hyperparameter '\\n'" in str(caught.value)
