"""federated: FedAvg close to centralized training on IID clients, non-IID splits, bytes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optim.errors import ConfigError
from optim.experiment import parse_recipe
from optim.registry import get
from optim.techniques.federated import average_states, clients_per_round, label_skew, split_clients
from tests.hardware import apply_technique


@pytest.fixture(scope="module")
def mlp(load_sample):
    return load_sample("digits-mlp")


@pytest.fixture(scope="module")
def fedavg_iid(mlp, tmp_path_factory):
    cand, splits = mlp
    settings = dict(clients=10, fraction=0.5, local_epochs=5, local_batch=20, rounds=12, lr=0.1, split="iid",
                    centralized_epochs=20)
    (out,) = apply_technique("federated", cand, splits, tmp_path_factory.mktemp("fl"), **settings)
    return out, get("federated").config(**settings)


def test_gate_fedavg_on_10_iid_clients_is_within_3_points_of_centralized(fedavg_iid):
    out, _ = fedavg_iid
    info = out.info
    assert info["final_accuracy"] >= info["centralized_accuracy"] - 0.03, (
        info["final_accuracy"],
        info["centralized_accuracy"],
    )
    assert info["final_accuracy"] > 0.9 and info["centralized_epochs"] == 20


def test_rounds_bytes_and_comparisons_are_reported(fedavg_iid, mlp):
    out, cfg = fedavg_iid
    cand, splits = mlp
    info = out.info
    rounds = info["fl_rounds"]
    assert [r["round"] for r in rounds] == list(range(1, cfg.rounds + 1))
    model_bytes = sum(t.numel() * t.element_size() for t in cand.model.state_dict().values())
    m = clients_per_round(cfg.clients, cfg.fraction)
    assert m == 5
    assert [r["bytes"] for r in rounds] == [2 * m * model_bytes * r for r in range(1, cfg.rounds + 1)]
    assert info["bytes_communicated"] == rounds[-1]["bytes"]
    assert rounds[-1]["accuracy"] > rounds[0]["accuracy"]
    assert (
        len(info["learning_curve"]) == cfg.rounds and info["learning_curve"][-1]["val_metric"] == rounds[-1]["accuracy"]
    )
    # FedSGD (E=1, B=inf) makes one step per client per round: far behind FedAvg after as many rounds
    assert len(info["fedsgd_rounds"]) == cfg.rounds and info["fedsgd_accuracy"] < info["final_accuracy"] - 0.1
    # The target is 99% of the centralized model's accuracy; rounds_to_target is the first round at it.
    assert info["target_accuracy"] == pytest.approx(0.99 * info["centralized_accuracy"])
    reached = [r["round"] for r in rounds if r["accuracy"] >= info["target_accuracy"]]
    assert info["rounds_to_target"] == (reached[0] if reached else None)
    assert info["fedsgd_rounds_to_target"] is None
    acc = (out.predict(splits.test.X).argmax(1) == splits.test.y).mean()
    assert abs(acc - rounds[-1]["accuracy"]) < 1e-9
    # reinit: the global model did not start from the input's weights, and the input is untouched
    assert not torch.equal(out.model[1].weight, cand.model[1].weight)


def test_client_splits_partition_the_data_and_non_iid_ones_are_skewed():
    y = np.repeat(np.arange(10), 60)
    iid = split_clients(y, 10, "iid", seed=0)
    shards = split_clients(y, 10, "shards", shards_per_client=2, seed=0)
    dirichlet = split_clients(y, 10, "dirichlet", alpha=0.1, seed=0)
    for parts in (iid, shards, dirichlet):
        allrows = np.sort(np.concatenate(parts))
        assert np.array_equal(allrows, np.arange(len(y))) and all(len(p) > 0 for p in parts)
    assert {len(p) for p in iid} == {60}
    assert all(len(np.unique(y[p])) <= 2 for p in shards)  # two shards of sorted labels each
    skews = [label_skew(y, parts) for parts in (iid, shards, dirichlet)]
    assert skews[0] < 0.2 and skews[1] > 0.7 and skews[2] > 0.5
    assert label_skew(y, split_clients(y, 10, "dirichlet", alpha=100.0, seed=0)) < skews[2]


def test_average_states_weights_by_client_size():
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(2)}
    b = {"w": torch.tensor([3.0, 7.0]), "n": torch.tensor(5)}
    avg = average_states([a, b], [1.0, 3.0])
    assert torch.allclose(avg["w"], torch.tensor([2.5, 6.0])) and int(avg["n"]) == 5


def test_non_iid_shards_run_and_report_label_skew(mlp, ctx_for):
    cand, splits = mlp
    tech = get("federated")
    cfg = tech.config(clients=20, fraction=0.25, local_epochs=1, local_batch=16, rounds=2, split="shards",
                      compare_fedsgd=False, compare_centralized=False, init="finetune", target_accuracy=0.5)
    (out,) = tech.run(cand, cfg, ctx_for(splits))
    assert out.info["label_skew"] > 0.6 and out.info["clients_per_round"] == 5
    assert out.info["rounds_to_target"] == 1  # fine-tuning starts from a trained model
    assert "centralized_accuracy" not in out.info


@pytest.mark.parametrize("settings, needle", [
    ({"fraction": 0.0}, "fraction"),
    ({"fraction": 1.5}, "fraction"),
    ({"split": "label"}, "split"),
    ({"clients": 0}, "clients"),
    ({"alpha": 0}, "alpha"),
])
def test_bad_settings_are_config_errors(settings, needle):
    with pytest.raises(ConfigError) as err:
        get("federated").config(**settings)
    assert needle in str(err.value)


def test_more_clients_than_samples_is_refused(mlp, ctx_for):
    cand, splits = mlp
    tech = get("federated")
    with pytest.raises(ConfigError) as err:
        tech.run(cand, tech.config(clients=5000, rounds=1), ctx_for(splits))
    msg = str(err.value)
    assert "clients=5000" in msg and f"({len(splits.train)})" in msg and "at most" in msg
    with pytest.raises(ConfigError, match="shards_per_client=50"):
        split_clients(np.arange(100), 10, "shards", shards_per_client=50)


def test_command_line_spelling():
    recipes = parse_recipe("federated:clients=10,fraction=0.5,local_epochs=5,rounds=20,split=iid|dirichlet")
    assert [r.steps[0].config.split for r in recipes] == ["iid", "dirichlet"]
    assert recipes[0].steps[0].config.local_epochs == 5


def test_regression_trains_on_scaled_targets_and_stays_finite(load_sample, tmp_path):
    # diabetes targets run from 25 to 346: raw-target SGD at lr=0.1 diverged to NaN weights.
    cand, splits = load_sample("diabetes-mlp")
    (out,) = apply_technique("federated", cand, splits, tmp_path, clients=4, rounds=3, local_epochs=2,
                             local_batch=16, lr=0.1, split="iid", compare_centralized=False)
    assert all(bool(torch.isfinite(p).all()) for p in out.model.parameters())
    pred = out.predict(splits.test.X)
    # outputs are back in the targets' own units (the scale was folded into the last layer)
    assert abs(float(pred.mean()) - float(np.mean(splits.test.y))) < 0.5 * float(np.std(splits.test.y))
    assert out.info["final_accuracy"] > 0.0  # R² on the test split: better than predicting the mean


def test_a_collapsed_model_is_flagged_and_a_diverged_one_fails(mlp):
    from optim.errors import OptimError
    from optim.techniques.federated import _check_converged

    cand, splits = mlp
    cfg = get("federated").config()
    info = {"final_accuracy": 0.125}  # MobileNetV2 after FedAvg in the issue: 10 balanced classes
    _check_converged(cand.model, splits, info, cfg, 5)
    assert info["warning"].startswith("collapsed: test accuracy 0.125")
    fine = {"final_accuracy": 0.9}
    _check_converged(cand.model, splits, fine, cfg, 5)
    assert "warning" not in fine
    broken = torch.nn.Linear(2, 2)
    with torch.no_grad():
        broken.weight[0, 0] = float("nan")
    with pytest.raises(OptimError, match="diverged"):
        _check_converged(broken, splits, {"final_accuracy": 0.9}, cfg, 5)
