"""Datasets from the bundled scikit-learn sets, CSV, NPZ and zips of images in class folders.

Formats are recognised by content (a zip is a zip whatever its name). Every problem a user can
fix is an :class:`~optim.errors.InputError` naming the file, the column or member and the fix;
zips are read in memory (never extracted) with caps on members, bytes and compression ratio.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from optim.dataset import Dataset, Task
from optim.errors import ConfigError, InputError, UnsafeFileError
from optim.io import read_input_file, sample_ref

ACCEPTED = ("a CSV file with a target column, an NPZ file with arrays X and y, a zip of images in "
            "class folders (class_name/image.png), or sample:NAME (digits, breast-cancer, wine, iris, "
            "diabetes)")

#: Fewer rows than this cannot be split into train / validation / test meaningfully.
MIN_ROWS = 10
#: Integer-valued targets with at most this many distinct values are class labels by default.
MAX_AUTO_CLASSES = 20
#: A float target with more distinct values than this cannot be forced to classification.
MAX_FORCED_FLOAT_CLASSES = 50
#: Default names of the target column of a CSV, tried case-insensitively in this order.
DEFAULT_TARGETS = ("target", "label", "class", "y")

# Image zip limits: a zip is untrusted input; these bound memory and time before any decoding.
MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_TOTAL_BYTES = 500 * 2**20
#: Uncompressed / compressed size above which a member (larger than 1 MiB) is a zip bomb.
MAX_ZIP_RATIO = 100
MAX_DEFAULT_IMAGE_SIDE = 64
MAX_IMAGE_ARRAY_BYTES = 2**30
#: Pixels of one image (its header is read before any decoding).
MAX_IMAGE_PIXELS = 50_000_000
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


# --- bundled scikit-learn datasets -----------------------------------------------------------

def _sk(loader: str) -> Callable[[], Any]:
    def load() -> Any:
        import sklearn.datasets as skd

        return getattr(skd, loader)()
    return load


#: name -> (scikit-learn loader, task, description). All ship inside scikit-learn: no download.
SAMPLE_DATASETS: dict[str, tuple[Callable[[], Any], Task, str]] = {
    "digits": (_sk("load_digits"), "classification",
               "8×8 images of handwritten digits as 64 pixel values 0–16, 10 classes (UCI)"),
    "breast-cancer": (_sk("load_breast_cancer"), "classification",
                      "Wisconsin diagnostic breast cancer: 30 cell-nucleus features, malignant / benign"),
    "wine": (_sk("load_wine"), "classification", "13 chemical measurements of wines from 3 cultivars"),
    "iris": (_sk("load_iris"), "classification", "4 flower measurements, 3 iris species (Fisher 1936)"),
    "diabetes": (_sk("load_diabetes"), "regression",
                 "10 baseline features (age, sex, BMI, blood pressure, 6 serum measures) → disease "
                 "progression after one year"),
}


def list_sample_datasets() -> list[tuple[str, str, str, int, int]]:
    """``(name, description, task, n_rows, n_features)`` of each bundled dataset (``sample:NAME``)."""
    out: list[tuple[str, str, str, int, int]] = []
    for name, (_, task, desc) in SAMPLE_DATASETS.items():
        ds = _load_sample(name, None)
        out.append((name, desc, task, int(ds.X.shape[0]), int(np.prod(ds.input_shape))))
    return out


def _load_sample(name: str, task: Task | None) -> Dataset:
    if name not in SAMPLE_DATASETS:
        raise ConfigError(f"sample:{name}: unknown sample dataset; known: "
                          f"{', '.join('sample:' + n for n in SAMPLE_DATASETS)}.")
    loader, default_task, desc = SAMPLE_DATASETS[name]
    bunch = loader()
    X = np.asarray(bunch.data, dtype=np.float32)
    feature_names = tuple(str(f) for f in bunch.feature_names)
    y = np.asarray(bunch.target)
    label = f"sample:{name}"
    task = _resolve_task(y, task, label, "target") if task else default_task
    extra: dict[str, Any] = {"description": desc}
    if name == "digits":
        extra["image_shape"] = (1, 8, 8)  # tabular rows that are 8×8 images (row-major pixels)
    if task == "classification":
        names = tuple(str(c) for c in getattr(bunch, "target_names", np.unique(y)))
        return Dataset(name, X, y.astype(np.int64), "classification", feature_names, names,
                       source=label, extra=extra)
    return Dataset(name, X, y.astype(np.float32), "regression", feature_names, source=label, extra=extra)


# --- task inference and target encoding ------------------------------------------------------

def _is_integral(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(np.all(finite == np.round(finite)))


def _resolve_task(y: np.ndarray, task: Task | None, where: str, target: str) -> Task:
    """Classification for labels (strings, bools, few integer values); regression for the rest."""
    if task not in (None, "classification", "regression"):
        raise ConfigError(f"task={task!r}: must be 'classification' or 'regression' (or None to infer it).")
    numeric = y.dtype.kind in "iuf"
    if task == "regression":
        if not numeric:
            raise InputError(f"{where}: task='regression' needs a numeric target, but {target!r} holds "
                             f"labels such as {str(y[0])!r}; use task='classification' or pick a numeric column.")
        return "regression"
    if task == "classification":
        if y.dtype.kind == "f" and (not _is_integral(y) or len(np.unique(y)) > MAX_FORCED_FLOAT_CLASSES):
            raise InputError(
                f"{where}: task='classification' does not fit target {target!r}: it holds continuous "
                f"values ({len(np.unique(y))} distinct, e.g. {y[0]:g}); use task='regression', or "
                f"bin the values into classes first.")
        return "classification"
    if not numeric:
        return "classification"  # strings, bools, categories
    if _is_integral(y.astype(np.float64)) and len(np.unique(y)) <= MAX_AUTO_CLASSES:
        return "classification"
    return "regression"


def _encode_target(y: np.ndarray, task: Task, where: str, target: str) -> tuple[np.ndarray, tuple[str, ...]]:
    if task == "regression":
        return y.astype(np.float32), ()
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise InputError(f"{where}: target {target!r} has a single class ({_label(classes[0])!r}); "
                         f"classification needs at least two classes.")
    return codes.astype(np.int64).reshape(-1), tuple(_label(c) for c in classes)


def _label(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else str(value)
    return str(value)


def _check_rows(n: int, where: str) -> None:
    if n < MIN_ROWS:
        raise InputError(f"{where}: only {n} rows; at least {MIN_ROWS} are needed to split into "
                         f"train, validation and test sets.")


# --- CSV --------------------------------------------------------------------------------------

def _load_csv(path: Path, data: bytes, target: str | None, task: Task | None) -> Dataset:
    import pandas as pd

    where = repr(path.name)
    if b"\x00" in data[:8192]:
        raise InputError(f"{where} is not a text CSV file (it holds binary data).", hint=f"Accepted: {ACCEPTED}.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # every byte string decodes; Excel exports often are latin-1
    sep = _sniff_separator(text)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{where} could not be read as CSV ({first}).",
                         hint="Save it as comma-separated text with one header row.") from None
    if df.shape[0] == 0:
        raise InputError(f"{where} has a header but no data rows.")
    df = _drop_index_column(df)
    columns = [str(c) for c in df.columns]
    df.columns = columns
    target = _pick_target(columns, target, where)
    features = [c for c in columns if c != target]
    if not features:
        raise InputError(f"{where}: no feature columns besides the target {target!r}.")
    non_numeric = [c for c in features if not (pd.api.types.is_numeric_dtype(df[c])
                                               or pd.api.types.is_bool_dtype(df[c]))]
    if non_numeric:
        raise InputError(f"{where}: non-numeric feature columns: {_names(non_numeric)}; encode them as "
                         f"numbers (e.g. one-hot or ordinal codes) or drop them.")
    nans = df.isna().sum()
    bad = [(c, int(nans[c])) for c in columns if nans[c] > 0]
    if bad:
        listed = ", ".join(f"{c} ({k})" for c, k in bad[:8]) + (", ..." if len(bad) > 8 else "")
        raise InputError(f"{where}: missing values (NaN) in {len(bad)} column(s): {listed}; fill them "
                         f"or drop those rows first.")
    X = df[features].to_numpy(dtype=np.float64)
    inf_cols = [c for c, bad_col in zip(features, ~np.isfinite(X).all(axis=0)) if bad_col]
    if inf_cols:
        raise InputError(f"{where}: infinite values in {_names(inf_cols)}; replace them with finite numbers.")
    _check_rows(len(df), where)
    y_raw = df[target].to_numpy()
    if y_raw.dtype.kind not in "iufb":
        y_raw = y_raw.astype(str)
    task = _resolve_task(y_raw, task, where, target)
    y, class_names = _encode_target(y_raw, task, where, target)
    return Dataset(path.stem, X.astype(np.float32), y, task, tuple(features), class_names,
                   source=str(path), kind="tabular", extra={"target": target})


def _sniff_separator(text: str) -> str:
    import csv

    try:
        return csv.Sniffer().sniff(text[:65536], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _drop_index_column(df: Any) -> Any:
    # DataFrame.to_csv writes the row index as an unnamed first column by default; as a feature it
    # would leak the row order into the model.
    first = str(df.columns[0])
    if first.startswith("Unnamed: 0") and np.array_equal(df.iloc[:, 0].to_numpy(), np.arange(len(df))):
        return df.iloc[:, 1:]
    return df


def _pick_target(columns: list[str], target: str | None, where: str) -> str:
    if target is not None:
        if target in columns:
            return target
        raise InputError(f"{where}: target column {target!r} is missing; available columns: "
                         f"{_names(columns)}.")
    lower = {c.lower(): c for c in columns}
    for name in DEFAULT_TARGETS:
        if name in lower:
            return lower[name]
    raise InputError(f"{where}: no target column given and none named {'/'.join(DEFAULT_TARGETS)}; "
                     f"pick one with --target COLUMN (target=...) from: {_names(columns)}.")


def _names(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(repr(c) for c in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


# --- NPZ --------------------------------------------------------------------------------------

def _load_npz(path: Path, data: bytes, target: str | None, task: Task | None) -> Dataset:
    where = repr(path.name)
    y_key = target or "y"
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
        keys = list(archive.files)
        arrays = {}
        for key in keys:
            arrays[key] = archive[key]
    except ValueError as err:
        if "allow_pickle" in str(err) or "Object arrays" in str(err):
            raise UnsafeFileError(
                f"{where} holds an object array, which only loads by unpickling (that runs code from "
                f"the file); refused.", hint="Save plain numeric or string arrays: "
                "np.savez(path, X=X.astype('float32'), y=y).") from None
        raise InputError(f"{where} is not a readable NPZ file ({err}).", hint=f"Accepted: {ACCEPTED}.") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise InputError(f"{where} is not a readable NPZ file ({err}).", hint=f"Accepted: {ACCEPTED}.") from None
    x_key = "X" if "X" in arrays else "x" if "x" in arrays else None
    if x_key is None or y_key not in arrays:
        missing = [k for k in ("X", y_key) if k not in arrays and (k != "X" or "x" not in arrays)]
        raise InputError(f"{where}: missing array(s) {_names(missing)}; it holds {_names(keys)}. "
                         f"Save features as X and targets as y (or pass target=NAME).")
    X, y_raw = arrays[x_key], arrays[y_key]
    if X.dtype.kind not in "iufb":
        raise InputError(f"{where}: X has dtype {X.dtype}; features must be numbers.")
    if y_raw.ndim != 1:
        y_raw = y_raw.reshape(-1) if y_raw.ndim == 2 and y_raw.shape[1] == 1 else y_raw
    if y_raw.ndim != 1 or len(y_raw) != len(X):
        raise InputError(f"{where}: y has shape {y_raw.shape} but X has {len(X)} rows; y needs one value per row.")
    X = X.reshape(len(X), 1) if X.ndim == 1 else X
    layout = str(arrays["layout"]) if "layout" in arrays and arrays["layout"].dtype.kind in "US" else None
    if layout not in (None, "images", "sequence"):
        raise InputError(f"{where}: layout={layout!r}; it says how to read a 3-D X: 'sequence' (N × steps × "
                         "features, e.g. for a GRU/LSTM) or 'images' (N × H × W grayscale).")
    sequence = X.ndim == 3 and layout == "sequence"
    # A 3-D X is ambiguous: N × H × W grayscale images (the default, → N×1×H×W) or N × T × F
    # sequences, which the file says with layout="sequence"; a model that rejects the images
    # shape gets that hint (optim.io.models).
    X = X[:, None] if X.ndim == 3 and not sequence else X
    if X.ndim not in (2, 4) and not sequence:
        raise InputError(f"{where}: X has shape {X.shape}; expected rows × features, N × C × H × W images or "
                         "N × steps × features sequences (with layout='sequence').")
    X = X.astype(np.float32)
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).sum())
        raise InputError(f"{where}: X holds {bad} NaN or infinite values; fill or drop them first.")
    if y_raw.dtype.kind == "f" and not np.isfinite(y_raw).all():
        raise InputError(f"{where}: y holds {int((~np.isfinite(y_raw)).sum())} NaN or infinite values.")
    _check_rows(len(X), where)
    task = _resolve_task(y_raw, task, where, y_key)
    y, class_names = _encode_target(y_raw, task, where, y_key)
    kind: Literal["tabular", "image"] = "image" if X.ndim == 4 else "tabular"
    feature_names: tuple[str, ...] = ()
    if kind == "tabular" and not sequence:
        names = arrays.get("feature_names")
        if names is not None and names.dtype.kind in "US" and names.shape == (X.shape[1],):
            feature_names = tuple(str(n) for n in names)
        else:
            feature_names = tuple(f"x{i}" for i in range(X.shape[1]))
    given = arrays.get("class_names")
    if task == "classification" and given is not None and given.dtype.kind in "US" and y_raw.dtype.kind in "iu" \
            and len(given) > int(y_raw.max()) and y_raw.min() >= 0:
        class_names = tuple(str(given[int(c)]) for c in np.unique(y_raw))
    extra: dict[str, Any] = {"image_shape": tuple(X.shape[1:])} if kind == "image" else {}
    if sequence:
        extra["layout"] = "sequence"
    return Dataset(path.stem, X, y, task, feature_names, class_names, source=str(path), kind=kind, extra=extra)


# --- image zip --------------------------------------------------------------------------------

def _unsafe_member(name: str) -> bool:
    name = name.replace("\\", "/")
    return name.startswith("/") or bool(re.match(r"^[A-Za-z]:", name)) or ".." in name.split("/")


def _check_zip(zf: zipfile.ZipFile, where: str) -> list[zipfile.ZipInfo]:
    """Every member checked before any is read: paths, count, total size, compression ratio."""
    infos = zf.infolist()
    for info in infos:
        if _unsafe_member(info.filename):
            raise UnsafeFileError(
                f"{where}: member {info.filename!r} points outside the archive (absolute path or '..'); "
                f"the zip was refused.", hint="Re-create it with relative paths like class_name/image.png.")
    if len(infos) > MAX_ZIP_MEMBERS:
        raise InputError(f"{where} has {len(infos):,} members; at most {MAX_ZIP_MEMBERS:,} are accepted. "
                         f"Use fewer or smaller images, or an NPZ file.")
    total = sum(i.file_size for i in infos)
    if total > MAX_ZIP_TOTAL_BYTES:
        raise InputError(f"{where} unpacks to {total / 2**20:,.0f} MiB; at most "
                         f"{MAX_ZIP_TOTAL_BYTES / 2**20:,.0f} MiB are accepted. Use fewer or smaller images.")
    for info in infos:
        if info.file_size > 2**20 and info.file_size > MAX_ZIP_RATIO * max(1, info.compress_size):
            raise UnsafeFileError(
                f"{where}: member {info.filename!r} expands {info.file_size / max(1, info.compress_size):,.0f}× "
                f"(over {MAX_ZIP_RATIO}×): a zip bomb; the zip was refused.")
    return infos


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    with zf.open(info) as fh:
        data = fh.read(info.file_size + 1)  # never more than the header declared (plus one to notice)
    if len(data) > info.file_size:
        raise UnsafeFileError(f"{where}: member {info.filename!r} holds more bytes than its header declares; "
                              f"the zip was refused.")
    return data


def _class_of(name: str) -> str | None:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return parts[-2] if len(parts) >= 2 else None


def _open_image(raw: bytes, name: str, where: str, *, decode: bool) -> Any:
    """A Pillow image of one zip member (header only unless ``decode``); damaged or huge → error."""
    from PIL import Image

    with warnings.catch_warnings():
        # A decompression bomb inside an image (huge declared pixel count) is refused, not decoded.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(raw))
            if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(f"{img.size[0]}×{img.size[1]} pixels, over {MAX_IMAGE_PIXELS:,}")
            if decode:
                img.load()
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
            raise UnsafeFileError(f"{where}: image {name!r} declares too many pixels ({err}); refused.") from None
        except Exception as err:  # Pillow raises many types for damaged files
            raise InputError(f"{where}: member {name!r} is not a readable image "
                             f"({type(err).__name__}: {err}).") from None
    return img


def _load_image_zip(path: Path, data: bytes, task: Task | None, image_size: int | None) -> Dataset:
    from PIL import Image

    where = repr(path.name)
    if task == "regression":
        raise InputError(f"{where}: a zip of images in class folders is a classification dataset; "
                         f"task='regression' does not apply.")
    if image_size is not None and not (4 <= int(image_size) <= 512):
        raise ConfigError(f"image_size={image_size}: must be between 4 and 512 pixels.")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise InputError(f"{where} is not a readable zip file ({err}).", hint=f"Accepted: {ACCEPTED}.") from None
    with zf:
        infos = _check_zip(zf, where)
        members = []
        for info in infos:
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if info.is_dir() or any(p.startswith(".") or p == "__MACOSX" for p in parts):
                continue
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            label = _class_of(name)
            if label is None:
                raise InputError(f"{where}: image {name!r} is not inside a class folder; put each image "
                                 f"in a folder named after its class (class_name/image.png).")
            members.append((label, name, info))
        if not members:
            raise InputError(f"{where} holds no images ({', '.join(IMAGE_EXTENSIONS[:4])}, ...) in class "
                             f"folders (class_name/image.png).", hint=f"Accepted: {ACCEPTED}.")
        members.sort(key=lambda m: (m[0], m[1]))
        # Pass 1 reads only each image's header (mode, size), so nothing big is decoded before
        # the output size is known; pass 2 decodes one image at a time straight into X.
        raws, modes, sizes = [], [], []
        for _label, name, info in members:
            raw = _read_member(zf, info, where)
            img = _open_image(raw, name, where, decode=False)
            raws.append(raw)
            modes.append(img.mode)
            sizes.append(img.size)
    labels = [m[0] for m in members]
    _check_rows(len(raws), where)
    class_names = tuple(sorted(set(labels)))
    if len(class_names) < 2:
        raise InputError(f"{where}: all images are in one class folder ({class_names[0]!r}); "
                         f"classification needs at least two class folders.")
    gray = all(m in _GRAY_MODES for m in modes)
    mode, channels = ("L", 1) if gray else ("RGB", 3)
    if image_size is not None:
        width = height = int(image_size)
    else:
        (width, height), _ = Counter(sizes).most_common(1)[0]
        scale = min(1.0, MAX_DEFAULT_IMAGE_SIDE / max(width, height))
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    n_bytes = len(raws) * channels * height * width * 4
    if n_bytes > MAX_IMAGE_ARRAY_BYTES:
        raise InputError(f"{where}: {len(raws)} images of {channels}×{height}×{width} need "
                         f"{n_bytes / 2**30:.1f} GiB; pass a smaller image_size.")
    X = np.empty((len(raws), channels, height, width), dtype=np.float32)
    for i, (raw, (_, name, _)) in enumerate(zip(raws, members)):
        img = _open_image(raw, name, where, decode=True).convert(mode)
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        X[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    index = {c: i for i, c in enumerate(class_names)}
    y = np.array([index[c] for c in labels], dtype=np.int64)
    return Dataset(path.stem, X, y, "classification", (), class_names, source=str(path), kind="image",
                   extra={"image_shape": (channels, height, width), "color_mode": mode})


# --- entry point ------------------------------------------------------------------------------

def load_dataset(ref: str | Path, *, target: str | None = None,
                 task: Literal["classification", "regression"] | None = None,
                 image_size: int | None = None) -> Dataset:
    """Load a dataset: ``sample:NAME``, a CSV, an NPZ (arrays ``X``, ``y``) or a zip of class folders.

    ``target`` names the CSV column (default: one called target/label/class/y) or the NPZ array
    holding the targets; ``task`` forces classification or regression (inferred otherwise:
    strings, bools and integers with few distinct values are classes); ``image_size`` is the side
    images are resized to (default: their most common size, at most 64). Raises InputError
    (UnsafeFileError for pickled arrays and unsafe zips) with a message naming the problem.
    """
    name = sample_ref(ref)
    if name is not None:
        if target is not None:
            raise ConfigError(f"target={target!r}: sample:{name} has its own target; target= is for CSV and NPZ files.")
        if image_size is not None:
            raise ConfigError(f"image_size={image_size}: applies to zips of images; drop it for sample:{name}.")
        return _load_sample(name, task)
    path, data = read_input_file(ref, "dataset", ACCEPTED)
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile as err:
            raise InputError(
                f"{path.name!r} is not a readable zip file ({err}).", hint=f"Accepted: {ACCEPTED}."
            ) from None
        if names and all(n.endswith(".npy") for n in names):
            if image_size is not None:
                raise ConfigError(f"image_size={image_size}: applies to zips of images, not to NPZ files; drop it.")
            return _load_npz(path, data, target, task)
        if target is not None:
            raise ConfigError(f"target={target!r}: an image zip takes its classes from folder names; "
                              f"drop target=.")
        return _load_image_zip(path, data, task, image_size)
    if image_size is not None:
        raise ConfigError(f"image_size={image_size}: applies to zips of images, not to {path.name!r}; drop it.")
    if data[:6] == b"\x93NUMPY":
        raise InputError(f"{path.name!r} is a single NumPy array (.npy); save X and y together with "
                         f"np.savez(path, X=X, y=y).")
    return _load_csv(path, data, target, task)
