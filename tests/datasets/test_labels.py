"""Labels of any type, regression targets, sample and class weights, and the standardisation
(Z.1, Z.2) of user data: what datasets.userfiles and datasets.inputscale make of a file."""

from __future__ import annotations

import re

import numpy as np
import pytest

from numbamlp.datasets.inputscale import (
    InputRecord,
    TargetRecord,
    prepare_input,
    record_for,
    record_from_metadata,
    target_from_metadata,
)
from numbamlp.datasets.loaders import Dataset
from numbamlp.datasets.userfiles import (
    arrays_dataset,
    class_weights,
    load_arrays_file,
    load_user_dataset,
)
from numbamlp.errors import NumbamlpError


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# --- classes as scikit-learn numbers them ----------------------------------------------------


def test_text_labels_are_sorted_classes(tmp_path):
    train = write(tmp_path / "a.csv", "x,species\n1,virginica\n2,setosa\n3,versicolor\n4,setosa\n")
    test = write(tmp_path / "b.csv", "x,species\n5,versicolor\n6,virginica\n")
    ds = load_user_dataset(train, test, label_column="species")
    assert ds.class_names == ("setosa", "versicolor", "virginica") and ds.n_classes == 3
    assert ds.y_train.tolist() == [2, 0, 1, 0] and ds.y_test.tolist() == [1, 2]
    assert ds.y_train.dtype == np.int64 and ds.task == "classification"


def test_integer_labels_with_gaps_make_as_many_classes_as_they_have_values(tmp_path):
    """Labels {3, 8}: a 2-class network with classes "3" and "8", not 9 classes."""
    p = write(tmp_path / "a.csv", "x,label\n1,8\n2,3\n3,8\n")
    ds = load_user_dataset(p, p)
    assert ds.class_names == ("3", "8") and ds.n_classes == 2
    assert ds.y_train.tolist() == [1, 0, 1]


def test_numbers_sort_numerically_not_as_text(tmp_path):
    p = write(tmp_path / "a.csv", "x,label\n1,10\n2,-1\n3,2\n")
    ds = load_user_dataset(p, p)
    assert ds.class_names == ("-1", "2", "10") and ds.y_train.tolist() == [2, 0, 1]


def test_booleans_in_npz_and_csv(tmp_path):
    np.savez(tmp_path / "b.npz", X=np.ones((3, 2)), y=np.array([True, False, True]))
    ds = load_user_dataset(tmp_path / "b.npz", tmp_path / "b.npz")
    assert ds.class_names == ("False", "True") and ds.y_train.tolist() == [1, 0, 1]
    p = write(tmp_path / "b.csv", "x,ok\n1,True\n2,False\n")
    assert load_user_dataset(p, p, label_column="ok").class_names == ("False", "True")


def test_text_labels_in_npz(tmp_path):
    np.savez(tmp_path / "s.npz", X=np.ones((3, 2)), y=np.array(["dog", "cat", "dog"]))
    ds = load_user_dataset(tmp_path / "s.npz", tmp_path / "s.npz")
    assert ds.class_names == ("cat", "dog") and ds.y_train.tolist() == [1, 0, 1]


def test_same_classes_as_scikit_learn(tmp_path):
    """The classes and indices are LabelEncoder's (MLPClassifier's classes_)."""
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    labels = np.array([7, -2, 7, 11, 0, -2])
    np.savez(tmp_path / "l.npz", X=np.ones((6, 1)), y=labels)
    ds = load_user_dataset(tmp_path / "l.npz", tmp_path / "l.npz")
    encoder = preprocessing.LabelEncoder().fit(labels)
    assert ds.class_names == tuple(str(c) for c in encoder.classes_)
    assert ds.y_train.tolist() == encoder.transform(labels).tolist()


def test_a_test_label_unseen_in_training_is_named(tmp_path):
    train = write(tmp_path / "a.csv", "x,label\n1,cat\n2,dog\n")
    test = write(tmp_path / "b.csv", "x,label\n1,cat\n2,\n3,emu\n")
    with pytest.raises(NumbamlpError, match="missing value '' at line 3, column 'label'"):
        load_user_dataset(train, test)
    write(test, "x,label\n1,cat\n3,emu\n")
    with pytest.raises(NumbamlpError) as error:
        load_user_dataset(train, test)
    message = str(error.value)
    assert "label 'emu' at row 1 (line 3)" in message and "cat, dog" in message
    assert str(test) in message


def test_evaluate_style_mapping_onto_a_model_s_classes(tmp_path):
    p = write(tmp_path / "b.csv", "x,label\n1,8.0\n2,3\n")
    assert load_arrays_file(p, class_names=("3", "8")).__getitem__(1).tolist() == [1, 0]
    with pytest.raises(NumbamlpError, match="label '8' at row 0 .* not one of the 2 classes"):
        load_arrays_file(p, class_names=("0", "3"))


def test_one_class_is_refused(tmp_path):
    p = write(tmp_path / "a.csv", "x,label\n1,cat\n2,cat\n")
    with pytest.raises(NumbamlpError, match="only one class \\('cat'\\)"):
        load_user_dataset(p, p)


def test_n_classes_takes_the_labels_as_indices(tmp_path):
    p = write(tmp_path / "a.csv", "x,label\n1,cat\n")
    with pytest.raises(NumbamlpError, match="with `n_classes` the labels must be class indices"):
        load_user_dataset(p, p, n_classes=3)


# --- regression ------------------------------------------------------------------------------


def test_non_integer_numbers_are_a_regression(tmp_path):
    p = write(tmp_path / "r.csv", "x,price\n1,2.5\n2,3\n3,-1.25\n")
    ds = load_user_dataset(p, p, label_column="price")
    assert ds.task == "regression" and ds.target_names == ("price",) and ds.n_outputs == 1
    assert ds.y_train.dtype == np.float64 and ds.y_train[:, 0].tolist() == [2.5, 3, -1.25]
    assert ds.class_names == ()


def test_the_task_follows_how_the_labels_are_written(tmp_path):
    """151.0 (diabetes' targets as numpy writes them) is a number, 151 a class; a float array
    in an .npz is a regression's, an integer array a classification's."""
    floats = write(tmp_path / "f.csv", "x,y\n1,151.0\n2,75.0\n3,1e2\n")
    integers = write(tmp_path / "i.csv", "x,y\n1,151\n2,75\n3,100\n")
    assert load_user_dataset(floats, floats, label_column="y").task == "regression"
    ds = load_user_dataset(integers, integers, label_column="y")
    assert ds.task == "classification" and ds.class_names == ("75", "100", "151")
    np.savez(tmp_path / "f.npz", X=np.ones((3, 1)), y=np.array([1.0, 2.0, 1.0]))
    np.savez(tmp_path / "i.npz", X=np.ones((3, 1)), y=np.array([1, 2, 1]))
    assert load_user_dataset(tmp_path / "f.npz", tmp_path / "f.npz").task == "regression"
    assert load_user_dataset(tmp_path / "i.npz", tmp_path / "i.npz").task == "classification"


def test_several_target_columns(tmp_path):
    p = write(tmp_path / "r.csv", "a,y1,b,y2\n1,1,2,10\n2,2,3,20\n")
    ds = load_user_dataset(p, p, label_column="y1,y2")
    assert ds.task == "regression" and ds.target_names == ("y1", "y2")
    np.testing.assert_array_equal(ds.X_train, [[1, 2], [2, 3]])
    np.testing.assert_array_equal(ds.y_train, [[1, 10], [2, 20]])


def test_task_forces_regression_on_integers_and_refuses_text(tmp_path):
    p = write(tmp_path / "r.csv", "x,y\n1,1\n2,2\n")
    ds = load_user_dataset(p, p, label_column="y", task="regression")
    assert ds.task == "regression" and ds.y_train[:, 0].tolist() == [1.0, 2.0]
    q = write(tmp_path / "t.csv", "x,y\n1,1\n2,cat\n")
    with pytest.raises(NumbamlpError, match="target 'cat' at row 1 \\(line 3\\).*not a number"):
        load_user_dataset(q, q, label_column="y", task="regression")
    with pytest.raises(NumbamlpError, match="label 2.5 .* is not an integer.*regression"):
        write(q, "x,y\n1,1\n2,2.5\n")
        load_user_dataset(q, q, label_column="y", task="classification")


# --- weights ---------------------------------------------------------------------------------


def test_sample_weight_column_is_not_a_feature(tmp_path):
    p = write(tmp_path / "w.csv", "a,w,b,label\n1,0.5,2,0\n3,2,4,1\n")
    ds = load_user_dataset(p, p, sample_weight_column="w")
    np.testing.assert_array_equal(ds.X_train, [[1, 2], [3, 4]])
    assert ds.sample_weight.tolist() == [0.5, 2.0]


@pytest.mark.parametrize(
    "weights, message",
    [
        ("-1,1", "sample weight -1.0 at row 0 (line 2) is not a finite number ≥ 0"),
        ("0,0", "every sample weight is 0"),
    ],
)
def test_bad_sample_weights_are_one_error(tmp_path, weights, message):
    a, b = weights.split(",")
    p = write(tmp_path / "w.csv", f"a,w,label\n1,{a},0\n3,{b},1\n")
    with pytest.raises(NumbamlpError, match=re.escape(message)):
        load_user_dataset(p, p, sample_weight_column="w")
    q = write(tmp_path / "m.csv", "a,w,label\n1,,0\n3,1,1\n")
    with pytest.raises(NumbamlpError, match="missing value '' at line 2, column 'w'"):
        load_user_dataset(q, q, sample_weight_column="w")


def test_balanced_class_weights_are_scikit_learn_s():
    """C.1: w_s = n / (M · n_{Y_s})."""
    class_weight = pytest.importorskip("sklearn.utils.class_weight")
    y = np.array([0, 0, 0, 1, 2, 2])
    ours = class_weights(y, ("a", "b", "c"), "balanced")
    np.testing.assert_allclose(ours, class_weight.compute_sample_weight("balanced", y))
    assert ours.tolist() == [6 / 9, 6 / 9, 6 / 9, 2.0, 1.0, 1.0]


def test_class_weight_mapping_by_label():
    y = np.array([0, 1, 1])
    assert class_weights(y, ("3", "8"), {8: 2.5}).tolist() == [1.0, 2.5, 2.5]
    assert class_weights(y, ("no", "yes"), {"no": 0}).tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(NumbamlpError, match="`class_weight`: '5' is not a class"):
        class_weights(y, ("3", "8"), {5: 1.0})
    with pytest.raises(NumbamlpError, match="finite number ≥ 0"):
        class_weights(y, ("3", "8"), {3: -1.0})
    with pytest.raises(NumbamlpError, match="'balanced' or a mapping"):
        class_weights(y, ("3", "8"), "heavy")


def test_arrays_take_any_labels_and_weights():
    ds = arrays_dataset(np.ones((3, 2)), np.array(["b", "a", "b"]), sample_weight=[1, 2, 3])
    assert ds.class_names == ("a", "b") and ds.y_train.tolist() == [1, 0, 1]
    assert ds.sample_weight.tolist() == [1.0, 2.0, 3.0]
    reg = arrays_dataset(np.ones((3, 2)), np.array([0.5, 1.0, 2.0]))
    assert reg.task == "regression" and reg.y_train.shape == (3, 1)
    with pytest.raises(NumbamlpError, match="`sample_weight`: sample weight nan"):
        arrays_dataset(np.ones((2, 2)), np.array([0, 1]), sample_weight=[np.nan, 1])


# --- Z.1 and Z.2 -----------------------------------------------------------------------------


def _features(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 4)) * [1.0, 100.0, 1e-3, 1.0] + [0, 50, 3, 0]
    X[:, 3] = 7.0  # a constant feature
    return X


def test_standardisation_is_scikit_learn_s_standard_scaler():
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    X = _features()
    record = record_for(X, 1.0, standardize=True)
    expected = preprocessing.StandardScaler().fit(X)
    np.testing.assert_allclose(record.mean, expected.mean_, rtol=1e-15)
    np.testing.assert_allclose(record.std, expected.scale_, rtol=1e-13)
    assert record.std[3] == 1.0  # constant: σ := 1, the feature becomes 0
    np.testing.assert_allclose(record.standardise(X), expected.transform(X), atol=1e-12)


def test_dataset_standardized_defaults():
    X = _features()
    y = np.arange(30) % 2
    floats = Dataset("f", X, y, X[:5], y[:5], 2, ("0", "1"), "test")
    on = floats.standardized(None, "float32")
    assert on.X_train_raw.dtype == np.float32 and on.feature_scale == 1.0
    assert on.input is not None and on.input_record() is on.input
    np.testing.assert_allclose(on.X_train_raw.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_array_equal(on.X_test_raw, on.X_train_raw[:5])
    assert floats.standardized(False, "float32") is floats
    pixels = Dataset("p", X.astype(np.uint8), y, X[:5].astype(np.uint8), y[:5], 2, ("0", "1"),
                     "test", feature_scale=1 / 255)  # fmt: skip
    assert pixels.standardized(None, "float32") is pixels  # the built-in sets: unchanged
    assert pixels.standardized(True, "float32").input.scale == pytest.approx(1 / 255)


def test_a_regression_standardises_its_targets_too():
    X = _features()
    Y = np.stack([np.arange(30.0), 1000 + np.arange(30.0) ** 2], axis=1)
    ds = Dataset("r", X, Y, X, Y, 2, (), "test", task="regression", target_names=("a", "b"))
    on = ds.standardized(None, "float64")
    np.testing.assert_allclose(on.y_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(on.y_train.std(axis=0), 1, atol=1e-12)
    np.testing.assert_allclose(on.target.restore(on.y_train), Y, rtol=1e-12)
    assert on.target_record().names == ("a", "b")


def test_records_round_trip_through_metadata():
    record = record_for(_features(), 1.0, standardize=True)
    back = record_from_metadata({"input": record.as_metadata()})
    assert back == record
    target = TargetRecord.fit(np.array([[1.0], [3.0]]), ("y",))
    assert target.mean == (2.0,) and target.std == (1.0,)
    assert target_from_metadata({"target": target.as_metadata()}) == target
    assert target_from_metadata({}) is None
    with pytest.raises(ValueError, match="std is not positive"):
        record_from_metadata({"input": {"scale": 1, "dtype": "float64", "mean": [0], "std": [0]}})


def test_prepare_input_applies_z1_in_float64_then_casts():
    X = _features()
    record = record_for(X, 1.0, standardize=True)
    prepared, scale = prepare_input(X, record, "x", dtype=np.float32)
    assert scale == 1.0 and prepared.dtype == np.float32
    np.testing.assert_array_equal(prepared, record.standardise(X).astype(np.float32))
    with pytest.raises(NumbamlpError, match="has 3 features but the model's input record"):
        prepare_input(X[:, :3], record, "x")
    plain = InputRecord(1.0, "float64")
    assert prepare_input(X, plain, "x")[0] is X  # no record of Z.1: the input as it is


def test_target_record_takes_empty_and_one_dimensional_targets():
    target = TargetRecord.fit(np.array([1.0, 3.0]), ("y",))
    assert target.standardise(np.empty((0, 1))).shape == (0, 1)
    assert target.standardise(np.array([1.0, 3.0]))[:, 0].tolist() == [-1.0, 1.0]
    assert target.restore(np.array([-1.0, 1.0]))[:, 0].tolist() == [1.0, 3.0]


def test_a_continued_model_keeps_its_standardisation():
    """Dataset.standardized(record=…): training further on new rows applies the statistics
    the model began with, not the new rows' own."""
    X = _features()
    y = np.arange(30) % 2
    first = Dataset("a", X, y, X[:0], y[:0], 2, ("0", "1"), "t").standardized(None, "float64")
    later = Dataset("b", X[:10] + 5, y[:10], X[:0], y[:0], 2, ("0", "1"), "t")
    again = later.standardized(None, "float64", first.input)
    assert again.input is first.input
    np.testing.assert_array_equal(again.X_train_raw, first.input.standardise(X[:10] + 5))
    assert later.standardized(False, "float64", first.input) is later


@pytest.mark.parametrize("cell", ["inf", "-1e999"])
def test_an_infinite_target_is_one_error(tmp_path, cell):
    # Found by tests/test_properties.py (NUMBAMLP_FUZZ=deep): "inf" read as a target.
    p = write(tmp_path / "r.csv", f"x,y\n0,1.5\n1,{cell}\n")
    with pytest.raises(NumbamlpError, match=r"label -?inf at row 1 \(line 3\) is not a finite"):
        load_user_dataset(p, p, label_column="y")
