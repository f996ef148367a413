"""Dataset loading: bundled samples, CSV, NPZ, image zips, and every bad input the issue lists."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optim.errors import ConfigError, InputError, UnsafeFileError
from optim.io import datasets as D
from optim.io.datasets import list_sample_datasets, load_dataset

# --- bundled samples ---------------------------------------------------------------------------

def test_sample_datasets_list_matches_what_loads() -> None:
    listed = {name: (task, rows, feats) for name, _, task, rows, feats in list_sample_datasets()}
    assert listed == {
        "digits": ("classification", 1797, 64),
        "breast-cancer": ("classification", 569, 30),
        "wine": ("classification", 178, 13),
        "iris": ("classification", 150, 4),
        "diabetes": ("regression", 442, 10),
    }


def test_digits_sample_is_tabular_pixels_with_image_shape() -> None:
    ds = load_dataset("sample:digits")
    assert ds.X.dtype == np.float32 and ds.X.shape == (1797, 64)
    assert ds.X.min() == 0.0 and ds.X.max() == 16.0
    assert ds.kind == "tabular" and ds.extra["image_shape"] == (1, 8, 8)
    assert ds.class_names == tuple(str(i) for i in range(10)) and ds.num_classes == 10
    assert ds.feature_names[0] == "pixel_0_0" and len(ds.feature_names) == 64


def test_sample_feature_and_class_names_are_kept() -> None:
    bc = load_dataset("sample:breast-cancer")
    assert bc.feature_names[0] == "mean radius" and bc.class_names == ("malignant", "benign")
    diabetes = load_dataset("sample:diabetes")
    assert diabetes.task == "regression" and diabetes.y.dtype == np.float32
    assert diabetes.feature_names[:3] == ("age", "sex", "bmi")


def test_unknown_sample_dataset_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match="sample:nope.*sample:digits.*sample:diabetes"):
        load_dataset("sample:nope")


def test_forcing_classification_on_a_continuous_target_is_an_error() -> None:
    with pytest.raises(InputError, match="task='classification'.*continuous.*task='regression'"):
        load_dataset("sample:diabetes", task="classification")
    assert load_dataset("sample:iris", task="regression").task == "regression"


# --- CSV ---------------------------------------------------------------------------------------

def _csv(tmp_path: Path, df: pd.DataFrame, name: str = "data.csv", **kw) -> Path:
    path = tmp_path / name
    df.to_csv(path, index=False, **kw)
    return path


def _frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 5, n), "flag": rng.random(n) > 0.5})


def test_csv_with_string_labels_is_classification_with_class_names(tmp_path: Path) -> None:
    df = _frame()
    df["species"] = np.where(df["a"] > 0, "setosa", "virginica")
    ds = load_dataset(_csv(tmp_path, df), target="species")
    assert ds.task == "classification" and ds.class_names == ("setosa", "virginica")
    assert ds.feature_names == ("a", "b", "flag") and ds.X.dtype == np.float32 and ds.X.shape == (40, 3)
    np.testing.assert_array_equal(ds.y, (df["a"] <= 0).astype(int).to_numpy())
    assert set(ds.X[:, 2]) == {0.0, 1.0}  # bools become 0/1


def test_csv_default_target_column_and_task_inference(tmp_path: Path) -> None:
    df = _frame()
    df["Label"] = df["b"] % 3  # few integer values → classes
    ds = load_dataset(_csv(tmp_path, df))
    assert ds.extra["target"] == "Label" and ds.task == "classification" and ds.num_classes == 3
    df = _frame().rename(columns={"a": "y"})  # many distinct floats → regression
    ds = load_dataset(_csv(tmp_path, df, "reg.csv"))
    assert ds.task == "regression" and ds.y.dtype == np.float32 and ds.feature_names == ("b", "flag")
    assert load_dataset(_csv(tmp_path, df, "reg.csv"), target="b", task="regression").task == "regression"


def test_csv_written_with_its_index_drops_the_index_column(tmp_path: Path) -> None:
    df = _frame()
    df["target"] = df["b"] % 2
    path = tmp_path / "indexed.csv"
    df.to_csv(path)  # index=True: an "Unnamed: 0" column 0..n-1
    assert load_dataset(path).feature_names == ("a", "b", "flag")


def test_csv_semicolon_separated_is_read(tmp_path: Path) -> None:
    df = _frame()
    df["target"] = df["b"] % 2
    ds = load_dataset(_csv(tmp_path, df, sep=";"))
    assert ds.feature_names == ("a", "b", "flag") and len(ds.y) == 40


def test_empty_csv(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(InputError, match="'empty.csv' is empty"):
        load_dataset(path)


def test_header_only_csv(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("a,b,target\n")
    with pytest.raises(InputError, match="no data rows"):
        load_dataset(path)


def test_binary_file_is_not_csv(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(InputError, match="not a text CSV"):
        load_dataset(path)


def test_malformed_csv(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('a,b,target\n1,2,3\n4,"5,6\n' + "7,8,9,10,11\n" * 3)
    with pytest.raises(InputError, match="could not be read as CSV"):
        load_dataset(path)


def test_missing_target_names_it_and_lists_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path, _frame())
    with pytest.raises(InputError, match=r"target column 'outcome' is missing; available columns: 'a', 'b', 'flag'"):
        load_dataset(path, target="outcome")
    with pytest.raises(InputError, match=r"no target column given.*--target COLUMN.*'a', 'b', 'flag'"):
        load_dataset(path)


def test_non_numeric_features_are_named(tmp_path: Path) -> None:
    df = _frame()
    df["city"] = "Paris"
    df["when"] = "2024-01-01"
    df["target"] = df["b"] % 2
    with pytest.raises(InputError, match=r"non-numeric feature columns: 'city', 'when'; encode them"):
        load_dataset(_csv(tmp_path, df))


def test_nans_are_named_with_counts(tmp_path: Path) -> None:
    df = _frame()
    df["target"] = df["b"] % 2
    df.loc[[1, 5, 7], "a"] = np.nan
    df.loc[2, "b"] = np.nan
    with pytest.raises(InputError, match=r"missing values \(NaN\) in 2 column\(s\): a \(3\), b \(1\)"):
        load_dataset(_csv(tmp_path, df))


def test_too_few_rows(tmp_path: Path) -> None:
    df = _frame(6)
    df["target"] = [0, 1] * 3
    with pytest.raises(InputError, match="only 6 rows; at least 10"):
        load_dataset(_csv(tmp_path, df))


def test_single_class(tmp_path: Path) -> None:
    df = _frame()
    df["target"] = "yes"
    with pytest.raises(InputError, match="single class \\('yes'\\)"):
        load_dataset(_csv(tmp_path, df))


def test_forcing_classification_on_float_csv_target(tmp_path: Path) -> None:
    df = _frame().rename(columns={"a": "target"})
    with pytest.raises(InputError, match="task='classification' does not fit target 'target'"):
        load_dataset(_csv(tmp_path, df), task="classification")


def test_regression_on_string_target_and_bad_task_value(tmp_path: Path) -> None:
    df = _frame()
    df["target"] = np.where(df["a"] > 0, "hi", "lo")
    path = _csv(tmp_path, df)
    with pytest.raises(InputError, match="task='regression' needs a numeric target"):
        load_dataset(path, task="regression")
    with pytest.raises(ConfigError, match="task='clf'"):
        load_dataset(path, task="clf")  # type: ignore[arg-type]


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_dataset(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a folder"):
        load_dataset(tmp_path)


# --- NPZ ---------------------------------------------------------------------------------------

def test_npz_tabular_and_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5))
    y = np.array(["cat", "dog", "eel"] * 10)
    np.savez(tmp_path / "d.npz", X=X, y=y, feature_names=np.array(list("abcde")))
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.X.dtype == np.float32 and ds.X.shape == (30, 5) and ds.feature_names == tuple("abcde")
    assert ds.class_names == ("cat", "dog", "eel") and ds.kind == "tabular"
    np.savez(tmp_path / "img.npz", X=rng.random((20, 6, 6)), y=np.arange(20) % 2)
    img = load_dataset(tmp_path / "img.npz")
    assert img.kind == "image" and img.X.shape == (20, 1, 6, 6) and img.task == "classification"


def test_a_3d_npz_of_sequences_loads_and_a_gru_runs_on_it(tmp_path: Path, ctx_for) -> None:
    # N × steps × features: read as sequences when the file says so (layout="sequence"); without
    # it a 3-D X is N × H × W images, and a sequence model refusing that shape says how to tell.
    import torch
    import torch.nn as nn

    from optim.io.models import load_model
    from optim.registry import get
    from tests.matrix_models import run_cell

    class SeqGRU(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru, self.fc = nn.GRU(3, 8, batch_first=True), nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.gru(x)[0][:, -1])

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5, 3)).astype(np.float32)
    y = (X[:, :, 0].mean(axis=1) > 0).astype(np.int64)
    np.savez(tmp_path / "seq.npz", X=X, y=y, layout="sequence")
    ds = load_dataset(tmp_path / "seq.npz")
    assert ds.X.shape == (60, 5, 3) and ds.extra["layout"] == "sequence" and ds.input_shape == (5, 3)
    torch.manual_seed(0)
    torch.jit.save(torch.jit.trace(SeqGRU().eval(), torch.zeros(2, 5, 3)), str(tmp_path / "gru.pt"))
    cand = load_model(tmp_path / "gru.pt", dataset=ds)
    assert cand.input_shape == (5, 3) and cand.editable is not None
    splits = ds.splits()
    for name in ("prune-magnitude", "quantize-dynamic"):
        outputs: list = []
        assert run_cell(cand, splits, get(name), tmp_path / name, outputs) == ("ok", ""), name
        assert outputs[0].predict(splits.test.X).shape == (len(splits.test), 2)
    np.savez(tmp_path / "img.npz", X=X, y=y)
    with pytest.raises(InputError) as err:
        load_model(tmp_path / "gru.pt", dataset=load_dataset(tmp_path / "img.npz"))
    assert "layout='sequence'" in err.value.hint
    np.savez(tmp_path / "bad.npz", X=X, y=y, layout="time")
    with pytest.raises(InputError, match="layout='time'"):
        load_dataset(tmp_path / "bad.npz")


def test_npz_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    X = np.empty((20, 2), dtype=object)
    X[:] = 1.0
    np.savez(tmp_path / "obj.npz", X=X, y=np.arange(20) % 2)
    with pytest.raises(UnsafeFileError, match="object array.*unpickling"):
        load_dataset(tmp_path / "obj.npz")


def test_npz_missing_arrays_are_listed(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", features=np.zeros((20, 2)), labels=np.arange(20) % 2)
    with pytest.raises(InputError, match=r"missing array\(s\) 'X', 'y'; it holds 'features', 'labels'"):
        load_dataset(tmp_path / "d.npz")


def test_npz_nan_and_length_mismatch(tmp_path: Path) -> None:
    X = np.zeros((20, 2))
    X[3, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, y=np.arange(20) % 2)
    with pytest.raises(InputError, match="1 NaN"):
        load_dataset(tmp_path / "nan.npz")
    np.savez(tmp_path / "len.npz", X=np.zeros((20, 2)), y=np.arange(19) % 2)
    with pytest.raises(InputError, match=r"y has shape \(19,\) but X has 20 rows"):
        load_dataset(tmp_path / "len.npz")


# --- image zips --------------------------------------------------------------------------------

def _png(color: tuple[int, ...] | int, size: tuple[int, int] = (12, 10), mode: str = "RGB") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_image_zip_classes_from_folders(tmp_path: Path) -> None:
    members = {f"cats/{i}.png": _png((200, 10, 10)) for i in range(6)}
    members |= {f"dogs/{i}.png": _png((10, 10, 200)) for i in range(5)}
    members["dogs/big.png"] = _png((10, 10, 200), size=(24, 20))
    members["README.txt"] = b"not an image"
    members["__MACOSX/cats/._0.png"] = b"junk"
    ds = load_dataset(_zip(tmp_path / "pets.zip", members))
    assert ds.kind == "image" and ds.task == "classification" and ds.class_names == ("cats", "dogs")
    assert ds.X.shape == (12, 3, 10, 12) and ds.X.dtype == np.float32  # most common size: 12 wide, 10 high
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0
    np.testing.assert_allclose(ds.X[0, :, 0, 0], np.array([200, 10, 10]) / 255, atol=1e-6)
    assert list(ds.y) == [0] * 6 + [1] * 6 and ds.extra["image_shape"] == (3, 10, 12)
    small = load_dataset(tmp_path / "pets.zip", image_size=8)
    assert small.X.shape == (12, 3, 8, 8)


def test_grayscale_zip_has_one_channel_and_big_images_are_capped(tmp_path: Path) -> None:
    members = {f"{c}/{i}.png": _png(40 * (k + 1), size=(100, 100), mode="L")
               for k, c in enumerate("ab") for i in range(6)}
    ds = load_dataset(_zip(tmp_path / "gray.zip", members))
    assert ds.X.shape == (12, 1, 64, 64) and ds.extra["color_mode"] == "L"


def test_zip_with_dotdot_member_is_refused(tmp_path: Path) -> None:
    members = {f"a/{i}.png": _png(1) for i in range(6)} | {"../evil/x.png": _png(2)}
    with pytest.raises(UnsafeFileError, match=r"member '../evil/x.png' points outside the archive"):
        load_dataset(_zip(tmp_path / "dots.zip", members))
    assert not (tmp_path.parent / "evil").exists()


def test_zip_with_absolute_member_is_refused(tmp_path: Path) -> None:
    members = {f"a/{i}.png": _png(1) for i in range(6)} | {"/tmp/abs.png": _png(2)}
    with pytest.raises(UnsafeFileError, match=r"'/tmp/abs.png' points outside"):
        load_dataset(_zip(tmp_path / "abs.zip", members))


def test_zip_member_count_and_total_size_caps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = {f"{c}/{i}.png": _png(i) for c in "ab" for i in range(8)}
    path = _zip(tmp_path / "many.zip", members)
    monkeypatch.setattr(D, "MAX_ZIP_MEMBERS", 10)
    with pytest.raises(InputError, match="has 16 members; at most 10"):
        load_dataset(path)
    monkeypatch.setattr(D, "MAX_ZIP_MEMBERS", 20_000)
    monkeypatch.setattr(D, "MAX_ZIP_TOTAL_BYTES", 1000)
    with pytest.raises(InputError, match="unpacks to .* MiB; at most"):
        load_dataset(path)


def test_zip_bomb_is_refused_before_decompressing(tmp_path: Path) -> None:
    members = {f"a/{i}.png": _png(1) for i in range(6)} | {"b/bomb.png": b"\0" * (64 * 2**20)}
    path = _zip(tmp_path / "bomb.zip", members)
    assert path.stat().st_size < 2**20
    with pytest.raises(UnsafeFileError, match=r"'b/bomb.png' expands [\d,]+× .*zip bomb"):
        load_dataset(path)


def test_image_with_too_many_pixels_is_refused_before_decoding(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    members = {f"{c}/{i}.png": _png(i) for c in "ab" for i in range(6)}
    monkeypatch.setattr(D, "MAX_IMAGE_PIXELS", 100)  # the images are 12×10
    with pytest.raises(UnsafeFileError, match=r"image 'a/0.png' declares too many pixels \(12×10 pixels, over 100\)"):
        load_dataset(_zip(tmp_path / "huge.zip", members))


def test_zip_member_that_is_not_an_image(tmp_path: Path) -> None:
    members = {f"a/{i}.png": _png(1) for i in range(6)} | {f"b/{i}.png": _png(2) for i in range(5)}
    members["b/broken.png"] = b"\x89PNG\r\n\x1a\n garbage"
    with pytest.raises(InputError, match="member 'b/broken.png' is not a readable image"):
        load_dataset(_zip(tmp_path / "broken.zip", members))


def test_zip_images_outside_class_folders_and_single_class(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="'0.png' is not inside a class folder"):
        load_dataset(_zip(tmp_path / "flat.zip", {f"{i}.png": _png(1) for i in range(12)}))
    with pytest.raises(InputError, match="all images are in one class folder \\('only'\\)"):
        load_dataset(_zip(tmp_path / "one.zip", {f"only/{i}.png": _png(1) for i in range(12)}))


def test_damaged_zip(tmp_path: Path) -> None:
    members = {f"{c}/{i}.png": _png(i) for c in "ab" for i in range(8)}
    data = _zip(tmp_path / "ok.zip", members).read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not a readable zip"):
        load_dataset(tmp_path / "cut.zip")
