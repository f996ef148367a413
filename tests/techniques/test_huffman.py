"""Huffman coding: the file decodes to the exact clustered weights and is smaller than the
fixed-length packing; the codec round-trips every layout."""

from __future__ import annotations

import numpy as np
import pytest

from optim.registry import get
from optim.techniques._weight_codec import decode_state, encode_state
from optim.testing import fingerprint


@pytest.fixture
def clustered(load_sample, ctx_for):
    base, splits = load_sample("digits-mlp")
    ctx = ctx_for(splits)
    pruned = get("prune-magnitude").run(base, get("prune-magnitude").config(sparsity=0.9, scope="lamp"), ctx)[0]
    return get("cluster").run(pruned, get("cluster").config(bits=5), ctx)[0], splits, ctx


def test_huffman_decodes_exactly_and_is_smaller_than_clustered(clustered):
    import torch

    from optim.techniques.compression import decode_weights_file

    cluster, splits, ctx = clustered
    before = fingerprint(cluster)
    out = get("huffman").run(cluster, get("huffman").config(), ctx)[0]
    assert fingerprint(cluster) == before
    name, blob = out.serialize()
    assert name == out.info["size_file"] and blob == out.extra_files[name]
    assert len(blob) < len(cluster.serialize()[1])  # smaller than the fixed-length clustered file
    assert out.info["huffman_saving"] > 0.02
    decoded = decode_weights_file(blob, cluster.model)
    want = cluster.model.state_dict()
    for key, value in decoded.state_dict().items():
        assert torch.equal(value, want[key]), key
    # The candidate runs the decoded weights: same outputs as the clustered model, bit for bit.
    assert np.array_equal(out.predict(splits.test.X), cluster.predict(splits.test.X))


def test_huffman_refuses_unclustered_weights(load_sample):
    base, _ = load_sample("digits-mlp")
    reason = get("huffman").supports(base)
    assert reason and "cluster" in reason


@pytest.mark.parametrize("coding", ["fixed", "huffman"])
@pytest.mark.parametrize("density", [1.0, 0.3, 0.02, 0.0])
def test_codec_round_trip(coding, density):
    rng = np.random.default_rng(1)
    book = rng.normal(size=16).astype(np.float32)
    skewed = rng.dirichlet(np.full(16, 0.3))
    w = (book[rng.choice(16, p=skewed, size=(40, 30))] * (rng.random((40, 30)) < density)).astype(np.float32)
    state = {
        "w": w,
        "pruned_float": (rng.normal(size=(20, 9)) * (rng.random((20, 9)) < density)).astype(np.float32),
        "bias": rng.normal(size=40).astype(np.float32),
        "count": np.array(7),
        "empty": np.zeros((0, 3), np.float32),
    }
    blob, reports = encode_state(state, {"w": "codebook", "pruned_float": "float"}, coding)
    out = decode_state(blob)
    assert list(out) == list(state)
    for key, value in state.items():
        assert out[key].dtype == value.dtype and out[key].shape == value.shape
        assert np.array_equal(out[key], value), key
    raw = sum(v.nbytes for v in state.values())
    assert len(blob) < raw + 400  # the encoder never picks a layout larger than the raw array


def test_deep_compression_recipe_chains_through_the_recipe_parser(load_sample, ctx_for):
    from optim.experiment import parse_recipe

    base, splits = load_sample("digits-mlp")
    ctx = ctx_for(splits)
    (recipe,) = parse_recipe("prune-magnitude:sparsity=0.9+cluster:bits=5+huffman")
    candidate = base
    for step in recipe.steps:
        candidate = get(step.technique).run(candidate, step.config, ctx)[0]
    assert [s.technique for s in candidate.lineage] == ["prune-magnitude", "cluster", "huffman"]
    size = len(candidate.serialize()[1])
    assert size < len(base.serialize()[1]) / 20  # ~10% of weights, 5-bit indices, Huffman; fp32 biases
    assert candidate.info["weights_kept"] == pytest.approx(0.1, abs=0.002)
