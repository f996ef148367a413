"""Errors the dashboard shows speak of its controls, not of CLI flags (issue: a CSV loaded before the
model said "'digits-mlp.safetensors' does not fit --arch digits-mlp … shape mismatch")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from optim.errors import InputError, OptimError
from optim.io.datasets import load_dataset
from optim.io.models import load_model

ROOT = Path(__file__).resolve().parents[2]
FLAG = re.compile(r"(?<![\w-])--[a-z]")


def test_weights_on_other_data_say_what_to_do_in_dashboard_words() -> None:
    with pytest.raises(InputError) as info:
        load_model(ROOT / "sample_models" / "digits-mlp.safetensors", arch="digits-mlp",
                   dataset=load_dataset("sample:wine"))
    err = info.value
    assert "--arch digits-mlp" in err.one_line()  # the CLI keeps naming its flag
    ui = err.for_dashboard()
    assert not FLAG.search(ui), ui
    assert "does not fit the loaded data, a dataset of input shape (13,)" in ui and "shape mismatch" in ui, ui


def test_for_dashboard_falls_back_to_the_message_and_renames_every_wording() -> None:
    plain = OptimError("bad  value\n here.", hint="Fix it.")
    assert plain.for_dashboard() == plain.one_line() == "bad value here. Fix it."
    err = OptimError("x.bin failed; pass --arch.", hint="h", ui="x.bin failed: choose an architecture.")
    renamed = err.with_name("x.bin", "my model.pt")
    assert renamed.for_dashboard() == "my model.pt failed: choose an architecture."
    assert renamed.one_line() == "my model.pt failed; pass --arch. h" and type(renamed) is OptimError


def test_pages_show_the_dashboard_wording() -> None:
    uses = [p for p in (ROOT / "app").rglob("*.py") if ".one_line()" in p.read_text(encoding="utf-8")]
    assert not uses, uses
