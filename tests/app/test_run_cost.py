"""Run page (AppTest): each recipe's estimated time shows before the run starts, with a warning
above five minutes. The machine's calibration is fixed here (written to OPTIM_HOME), so the
figures are arithmetic, not a timing of the test machine."""

from __future__ import annotations

import json
from dataclasses import asdict

import torch

from app import state
from optim import cost
from tests.app._stored import page


def _calibrate(home, per_mac: float) -> None:
    cal = cost.Calibration(train_s_per_batch=1e-3, train_s_per_mac=per_mac, infer_s_per_mac=per_mac / 3,
                           threads=2, torch=torch.__version__)
    (home / "cost_calibration.json").write_text(json.dumps(asdict(cal)))


def test_estimates_show_before_the_run_and_warn_when_long(optim_home) -> None:
    _calibrate(optim_home, 1e-6)  # a slow machine: twenty trials of twenty epochs take far more than 5 min
    at = page("run", **{state.RECIPES: ["quantize-dynamic", "hpo"], state.THREADS: 2})
    table = next(d.value for d in at.dataframe if "Estimated time" in d.value.columns)
    assert table["Recipe"].tolist() == ["quantize-dynamic", "hpo"]
    assert table["Training epochs"].tolist() == [0, 240]
    warning = " ".join(w.value for w in at.warning)
    assert "This run may take" in warning and "`hpo` alone" in warning

    _calibrate(optim_home, 1e-12)  # a fast machine: no warning, a caption with the total
    at = page("run", **{state.RECIPES: ["quantize-dynamic"], state.THREADS: 2})
    assert not [w for w in at.warning if "may take" in w.value]
    assert any(c.value.startswith("Estimated time: ~") for c in at.caption)
