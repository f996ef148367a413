"""Compression: low-rank factorization and k-means weight clustering — numeric gates."""

from __future__ import annotations

import numpy as np
import pytest

from optim.errors import ConfigError
from optim.registry import get
from optim.testing import fingerprint


def accuracy(candidate, split) -> float:
    return float((candidate.predict(split.X).argmax(1) == split.y).mean())


@pytest.mark.parametrize(
    "sample,conv", [("digits-mlp", "tucker2"), ("digits-cnn", "tucker2"), ("digits-cnn", "spatial")]
)
def test_low_rank_at_full_rank_reproduces_outputs(sample, conv, load_sample, ctx_for):
    base, splits = load_sample(sample)
    before = fingerprint(base)
    tech = get("low-rank")
    out = tech.run(base, tech.config(energy=1.0, conv=conv, only_if_smaller=False), ctx_for(splits))[0]
    assert fingerprint(base) == before
    assert out.info["params_after"] > out.info["params_before"]  # really factorized
    diff = np.abs(out.predict(splits.test.X) - base.predict(splits.test.X)).max()
    assert diff < 1e-4, diff


def test_low_rank_by_energy_shrinks_and_keeps_accuracy(load_sample, ctx_for):
    base, splits = load_sample("digits-mlp")
    tech = get("low-rank")
    out = tech.run(base, tech.config(energy=0.9), ctx_for(splits))[0]
    assert out.info["params_after"] < 0.85 * out.info["params_before"]
    assert accuracy(out, splits.test) >= accuracy(base, splits.test) - 0.02
    by_rank = tech.run(base, tech.config(rank=16), ctx_for(splits))[0]
    assert by_rank.info["layers"]["1"]["rank"] == 16
    assert by_rank.info["layers"]["5"]["kept"]  # a 10-output layer is not worth factorizing at rank 16


def test_low_rank_rank_larger_than_every_layer_is_a_config_error(load_sample, ctx_for):
    base, splits = load_sample("digits-mlp")
    with pytest.raises(ConfigError) as err:
        get("low-rank").run(base, get("low-rank").config(rank=1000), ctx_for(splits))
    assert "rank=1000" in str(err.value) and "rank ≤ 100" in str(err.value)


@pytest.mark.parametrize("bits", [0, 9])
def test_cluster_bad_bits_is_a_config_error(bits):
    with pytest.raises(ConfigError) as err:
        get("cluster").config(bits=bits)
    assert f"bits={bits}" in str(err.value) and "≤" in str(err.value)


def test_cluster_shares_2_to_the_bits_values_and_packs_them(load_sample, ctx_for):
    base, splits = load_sample("digits-mlp")
    before = fingerprint(base)
    tech = get("cluster")
    out = tech.run(base, tech.config(bits=5), ctx_for(splits))[0]
    assert fingerprint(base) == before
    for name in ("1", "3", "5"):
        w = out.model.get_submodule(name).weight.detach().numpy()
        assert len(np.unique(w)) <= 32
    assert accuracy(out, splits.test) >= accuracy(base, splits.test) - 0.01
    # The shippable file is the packed one: 5-bit indices instead of 32-bit floats.
    name, data = out.serialize()
    assert name == out.info["size_file"] and data == out.extra_files[name]
    assert len(data) < 0.2 * len(base.serialize()[1])
    assert out.info["bits_per_weight"] == pytest.approx(5.0, abs=0.3)


def test_cluster_fine_tunes_centroids_and_keeps_pruned_zeros(load_sample, ctx_for):
    base, splits = load_sample("digits-mlp")
    ctx = ctx_for(splits)
    pruned = get("prune-magnitude").run(base, get("prune-magnitude").config(sparsity=0.8, scope="layer"), ctx)[0]
    plain = get("cluster").run(pruned, get("cluster").config(bits=3), ctx)[0]
    tuned = get("cluster").run(pruned, get("cluster").config(bits=3, finetune_epochs=1, lr=1e-3, biases=True), ctx)[0]
    for name in ("1", "3", "5"):
        zeros = pruned.model.get_submodule(name).weight.detach().numpy() == 0
        w_tuned = tuned.model.get_submodule(name).weight.detach().numpy()
        assert (w_tuned[zeros] == 0).all()
        assert len(np.unique(w_tuned[~zeros])) <= 8
        assert len(np.unique(tuned.model.get_submodule(name).bias.detach().numpy())) <= 8
    w_plain = plain.model.get_submodule("3").weight.detach().numpy()
    assert not np.array_equal(np.unique(w_plain), np.unique(tuned.model.get_submodule("3").weight.detach().numpy()))
    assert len(tuned.info["learning_curve"]) == 1


def test_cluster_shares_gru_weights_and_huffman_codes_them(ctx_for):
    from tests.techniques.test_pruning import _gru_candidate

    base, splits = _gru_candidate()
    cluster = get("cluster")
    out = cluster.run(base, cluster.config(bits=3, finetune_epochs=1), ctx_for(splits))[0]
    for name in ("weight_ih_l0", "weight_hh_l0"):  # fine-tuning leaves the GRU's codebook as it is
        assert len(np.unique(getattr(out.model.gru, name).detach().numpy())) <= 8, name
    assert out.info["layers"]["gru.weight_hh_l0"]["codebook_size"] <= 8
    huffman = get("huffman")
    assert huffman.supports(out) is None
    coded = huffman.run(out, huffman.config(), ctx_for(splits))[0]
    assert "no_effect" not in coded.info
    np.testing.assert_array_equal(coded.predict(splits.test.X), out.predict(splits.test.X))
