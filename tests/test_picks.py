"""Runs are comparable when they share model, data, target and task — whatever the spelling."""

from __future__ import annotations

import pytest

from optim.errors import ConfigError
from optim.experiment import load_inputs
from optim.io.models import sample_data_ref
from optim.picks import same_setup
from optim.settings import ExperimentSpec


def _run(model: str, data: str, **kw: object) -> dict[str, object]:
    return {"spec": {"model": model, "data": data, "target": None, "task": None, **kw}}


def test_a_samples_data_has_one_spelling() -> None:
    assert sample_data_ref("sample:digits-mlp", "sample") == "sample:digits"
    assert sample_data_ref("sample:digits-mlp", "") == "sample:digits"
    assert sample_data_ref("sample:digits-mlp", "sample:digits") == "sample:digits"
    assert sample_data_ref("sample:digits-mlp", "sample:wine") is None  # other data: not its own
    assert sample_data_ref("model.pt", "sample") is None
    with pytest.raises(ConfigError, match="unknown sample model"):
        sample_data_ref("sample:nope", "sample")


def test_sidebar_and_cli_spellings_compare_as_one_setup() -> None:
    a = same_setup(_run("sample:digits-mlp", "sample"))
    b = same_setup(_run("sample:digits-mlp", "sample:digits"))
    assert a == b == ("sample:digits-mlp", "sample:digits", None, None)
    assert same_setup(_run("sample:digits-mlp", "sample:wine")) != a
    # A sample this version no longer ships still compares by its stored text.
    assert same_setup(_run("sample:gone", "sample"))[1] == "sample"


def test_both_spellings_load_the_same_baseline_and_splits() -> None:
    c1, s1 = load_inputs(ExperimentSpec(model="sample:digits-mlp", data="sample"))
    c2, s2 = load_inputs(ExperimentSpec(model="sample:digits-mlp", data="sample:digits"))
    assert c1.info == c2.info == {"sample": "digits-mlp"}
    assert s1.test.X.shape == s2.test.X.shape and (s1.test.y == s2.test.y).all()
