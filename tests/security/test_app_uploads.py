"""Rejected uploads do not stay on disk, and the uploads folder is size-capped (oldest unused first).

The adversarial inputs: a zip bomb (one highly compressible member) and an NPZ holding a pickled
object array, uploaded as datasets; a model upload that never answers.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import optim
from app.components import uploads
from optim.errors import InputError, UnsafeFileError
from optim.io.uploads import enforce_uploads_cap, uploads_dir


def _files() -> list[str]:
    return sorted(p.name for p in uploads_dir().iterdir())


def _zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cats/a.png", b"\0" * (64 * 2**20))  # 64 MiB of zeros: ~64 KiB compressed
    return buf.getvalue()


def _pickled_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, X=np.array([{"a": 1}, {"b": 2}], dtype=object), y=np.array([0, 1]))
    return buf.getvalue()


def test_zip_bomb_is_refused_and_deleted() -> None:
    with pytest.raises(InputError, match="bomb.zip"):
        uploads.accept_dataset("bomb.zip", _zip_bomb())
    assert _files() == []


def test_pickled_npz_is_refused_and_deleted() -> None:
    with pytest.raises(UnsafeFileError, match="bad.npz"):
        uploads.accept_dataset("bad.npz", _pickled_npz())
    assert _files() == []


def test_a_model_that_fails_its_probe_is_deleted(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="junk.onnx"):
        uploads.accept_model("junk.onnx", b"\x08\x07" + b"\xff" * 300, data_ref="sample:digits")
    assert _files() == []


def test_an_accepted_file_is_kept_when_other_settings_fail() -> None:
    data = b"a,b,target\n" + b"".join(f"{i},{i % 3},{i % 2}\n".encode() for i in range(40))
    ref, _ = uploads.accept_dataset("ok.csv", data)
    with pytest.raises(InputError, match="ok.csv"):
        uploads.accept_dataset("ok.csv", data, target="nope")
    assert Path(ref).exists()  # the session that accepted it still reads it


def test_the_folder_is_capped_oldest_unused_first(monkeypatch) -> None:
    from optim.store import Store

    monkeypatch.setenv("OPTIM_UPLOADS_MAX_MB", str(10 / 1024))  # 10 KiB
    a = optim.save_upload("a.csv", b"a" * 4096)
    b = optim.save_upload("b.csv", b"b" * 4096)
    os.utime(a, (1_000, 1_000))  # a: oldest, but a running run reads it
    os.utime(b, (2_000, 2_000))
    store = Store()
    run = store.create_run({"model": str(a), "data": "sample:digits", "recipes": []})
    store.update_run(run, status="running")
    c = optim.save_upload("c.csv", b"c" * 4096)  # 12 KiB > 10 KiB: b goes (a is in use, c is new)
    assert a.exists() and c.exists() and not b.exists()
    store.update_run(run, status="done")
    d = optim.save_upload("d.csv", b"d" * 4096)
    assert not a.exists() and c.exists() and d.exists()
    assert sum(p.stat().st_size for p in uploads_dir().iterdir()) <= 10 * 1024
    assert enforce_uploads_cap() == []


def test_a_file_larger_than_the_cap_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("OPTIM_UPLOADS_MAX_MB", "0.001")
    with pytest.raises(InputError, match="more than the uploads folder holds.*OPTIM_UPLOADS_MAX_MB"):
        optim.save_upload("big.csv", b"x" * 4096)
    assert _files() == []
