"""early-exit: exits really stop computation, the sweep, the statistics, exports that carry the exits."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from optim.candidate import Candidate
from optim.context import RunContext
from optim.errors import ConfigError
from optim.evaluation.metrics import score
from optim.registry import get
from optim.techniques._early_exit_net import EarlyExitNet, split_blocks
from tests.hardware import apply_technique

THRESHOLDS = (0.5, 0.9, 0.99)


@pytest.fixture(scope="module")
def cnn(load_sample):
    return load_sample("digits-cnn")


@pytest.fixture(scope="module")
def cnn_exits(cnn, tmp_path_factory):
    """digits-cnn with one exit after its first block, heads trained frozen; one candidate per threshold."""
    cand, splits = cnn
    return apply_technique("early-exit", cand, splits, tmp_path_factory.mktemp("ee"), thresholds=THRESHOLDS, epochs=8)


def _acc(cand: Candidate, split) -> float:
    return score(cand.predict(split.X), split.y, "classification")


def test_gate_half_the_test_samples_leave_early_at_a_moderate_threshold(cnn, cnn_exits):
    base, splits = cnn
    moderate = cnn_exits[THRESHOLDS.index(0.9)]
    info = moderate.info
    assert info["early_exit_fraction"] >= 0.5, info["exit_fractions"]
    # the first exit is far cheaper than the whole network, so average MACs drop with it
    assert info["macs"] < 0.6 * info["macs_full"]
    # accuracy within 2 points of the network without exits (measured through the real forward)
    assert _acc(moderate, splits.test) >= _acc(base, splits.test) - 0.02
    assert abs(_acc(moderate, splits.test) - info["accuracy_early_exit"]) < 1e-9


def test_sweep_gives_one_candidate_per_threshold_and_stricter_thresholds_exit_less(cnn_exits):
    assert [c.info["threshold"] for c in cnn_exits] == list(THRESHOLDS)
    assert [c.lineage[-1].label for c in cnn_exits] == [f"threshold={t:g}" for t in THRESHOLDS]
    assert [c.lineage[-1].config["threshold"] for c in cnn_exits[:2]] == [0.5, 0.9]
    assert "thresholds" not in cnn_exits[0].lineage[-1].config  # each point replays as one threshold
    assert cnn_exits[1].recipe == "early-exit:threshold=0.9,epochs=8"
    early = [c.info["early_exit_fraction"] for c in cnn_exits]
    macs = [c.info["macs"] for c in cnn_exits]
    assert early == sorted(early, reverse=True) and early[0] > early[-1]
    assert macs == sorted(macs) and macs[0] < macs[-1]
    for c in cnn_exits:
        fr = c.info["exit_fractions"]
        assert len(fr) == 2 and abs(sum(fr) - 1) < 1e-9
        per_exit = c.info["macs_per_exit"]
        assert abs(c.info["macs"] - (fr[0] * per_exit[0] + fr[1] * per_exit[1])) < 1e-6


def test_inference_really_stops_at_the_first_confident_exit(cnn, cnn_exits):
    _, splits = cnn
    net: EarlyExitNet = cnn_exits[THRESHOLDS.index(0.9)].model
    seen: list[int] = []
    handle = net.final.register_forward_hook(lambda m, inp, out: seen.append(int(inp[0].shape[0])))
    X = torch.from_numpy(splits.test.X[:64])
    try:
        with torch.inference_mode():
            conf = net.confidence(net.blocks[0](X)[1])
            confident = (conf >= net.threshold).numpy()
            assert confident.any() and not confident.all()
            # batch 1: a confident sample never reaches the rest of the network
            i = int(np.flatnonzero(confident)[0])
            net(X[i:i + 1])
            assert seen == []
            j = int(np.flatnonzero(~confident)[0])
            net(X[j:j + 1])
            assert seen == [1]
            # batch > 1: only the undecided rows go on
            seen.clear()
            batch_out = net(X)
            assert seen == [int((~confident).sum())]
            rows_out = torch.cat([net(X[k:k + 1]) for k in range(len(X))])
    finally:
        handle.remove()
    assert torch.allclose(batch_out, rows_out, atol=1e-5)


def test_torchscript_and_onnx_exports_carry_the_exits_and_match_torch(cnn, cnn_exits):
    import onnx
    import onnxruntime as ort

    _, splits = cnn
    cand = cnn_exits[THRESHOLDS.index(0.9)]
    X = splits.test.X[:48]
    want = cand.predict(X)
    name, data = cand.serialize()
    scripted = torch.jit.load(io.BytesIO(data))
    assert "prim::If" in str(scripted.inlined_graph)  # control flow kept, not traced away
    with torch.inference_mode():
        got = scripted(torch.from_numpy(X)).numpy()
        got_rows = np.concatenate([scripted(torch.from_numpy(X[k:k + 1])).numpy() for k in range(len(X))])
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got_rows, want, atol=1e-4, rtol=1e-4)

    # through the onnx-runtime technique, as `early-exit+onnx-runtime` would run
    (ort_cand,) = get("onnx-runtime").run(cand, get("onnx-runtime").config(), RunContext(data=splits, threads=1))
    onnx_bytes = ort_cand.model.model_bytes
    assert "If" in {n.op_type for n in onnx.load_model_from_string(onnx_bytes).graph.node}
    assert ort_cand.info["macs"] == cand.info["macs"]  # the average MACs survive the conversion
    # A variant of an ONNX upload goes back to ONNX by the same decision: the same dynamo graph.
    from optim.parent_runtime import MISMATCH, in_parent_runtime

    back = in_parent_runtime(cand, ort_cand, RunContext(data=splits, threads=1))
    assert MISMATCH not in back.info and back.model.model_bytes == onnx_bytes
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0].name
    np.testing.assert_allclose(sess.run(None, {inp: X})[0], want, atol=1e-4, rtol=1e-4)
    rows = np.concatenate([sess.run(None, {inp: X[k:k + 1]})[0] for k in range(len(X))])
    np.testing.assert_allclose(rows, want, atol=1e-4, rtol=1e-4)


def test_frozen_training_leaves_the_backbone_and_the_input_untouched(cnn, cnn_exits):
    base, splits = cnn
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    net = cnn_exits[0].model
    # the last exit's output is the original network's output, bit for bit
    X = torch.from_numpy(splits.test.X[:32])
    with torch.inference_mode():
        np.testing.assert_allclose(net.all_exits(X)[-1].numpy(), base.model(X).numpy(), atol=1e-5)
    for k, v in base.model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.requires_grad for p in base.model.parameters())


def test_blocks_of_the_mlp_cnn_and_a_torchvision_network():
    from optim.archs import build_arch

    assert len(split_blocks(build_arch("digits-mlp", 64, 10))) == 3
    assert len(split_blocks(build_arch("digits-cnn", 64, 10))) == 5
    # mobilenet_v3_small: 13 feature blocks + the classifier's two Linear layers
    assert len(split_blocks(build_arch("digits-mobilenet", 64, 10))) == 15


def test_torchvision_mobilenet_gets_exits_that_script(cnn, tmp_path):
    from optim.archs import build_arch

    _, splits = cnn
    torch.manual_seed(0)
    small = splits.train.take(120)
    mobilenet = Candidate(build_arch("digits-mobilenet", 64, 10).eval(), "classification", (64,), 10)
    data = type(splits)(train=small, val=splits.val.take(30), test=splits.test.take(30), task=splits.task,
                        num_classes=10)
    ctx = RunContext(data=data, threads=1, workdir=tmp_path)
    tech = get("early-exit")
    (out,) = tech.run(mobilenet, tech.config(exits=(2, 4), epochs=1, threshold=0.2), ctx)
    net = out.model
    assert len(net.blocks) == 2 and len(out.info["exit_fractions"]) == 3
    X = data.test.X[:8]
    want = out.predict(X)
    scripted = torch.jit.load(io.BytesIO(out.serialize()[1]))
    with torch.inference_mode():
        np.testing.assert_allclose(scripted(torch.from_numpy(X)).numpy(), want, atol=1e-4, rtol=1e-4)
    # exits after blocks 2 and 4 cost a fraction of the whole network
    assert out.info["macs_per_exit"][0] < 0.2 * out.info["macs_per_exit"][-1]


def test_joint_training_and_entropy_criterion_on_the_mlp(load_sample, tmp_path):
    cand, splits = load_sample("digits-mlp")
    ctx = RunContext(data=splits, threads=1, workdir=tmp_path)
    tech = get("early-exit")
    outs = tech.run(cand, tech.config(exits=(1, 2), train="joint", epochs=2, criterion="entropy",
                                      thresholds=(0.0, 1.0)), ctx)
    # threshold 0: everything leaves at the first exit; threshold 1: (almost) nothing leaves early
    assert outs[0].info["exit_fractions"][0] == 1.0
    assert outs[1].info["exit_fractions"][-1] > 0.9
    first_linear = outs[0].model.blocks[0].stage[1]
    assert not torch.equal(first_linear.weight, cand.model[1].weight)  # joint: the backbone trained too
    assert _acc(outs[1], splits.test) > 0.9


@pytest.mark.parametrize("settings, names", [
    ({"threshold": 1.5}, ["threshold", "1.5"]),
    ({"threshold": -0.1}, ["threshold"]),
    ({"thresholds": (0.5, 2.0)}, ["thresholds", "between 0 and 1"]),
    ({"exits": (0,)}, ["exits", "numbered from 1"]),
    ({"criterion": "margin"}, ["criterion", "max_softmax"]),
])
def test_bad_settings_name_the_value_and_the_rule(settings, names):
    with pytest.raises(ConfigError) as err:
        get("early-exit").config(**settings)
    for name in names:
        assert name in str(err.value)


def test_an_exit_after_the_last_block_is_refused(cnn, tmp_path):
    cand, splits = cnn
    tech = get("early-exit")
    with pytest.raises(ConfigError) as err:
        tech.run(cand, tech.config(exits=(2, 5), epochs=1), RunContext(data=splits, threads=1, workdir=tmp_path))
    msg = str(err.value)
    assert "exits=2;5" in msg and "5 blocks" in msg and "between 1 and 4" in msg


def test_supports_explains_what_it_cannot_cut(load_sample):
    tech = get("early-exit")
    cand, _ = load_sample("digits-mlp")
    regression = Candidate(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)),
                           "regression", (4,), 1)
    assert "classifier" in tech.supports(regression)
    single = Candidate(torch.nn.Sequential(torch.nn.Linear(4, 3)), "classification", (4,), 3)
    assert "blocks" in tech.supports(single)
    assert tech.supports(cand) is None


def test_a_custom_residual_class_is_cut_on_its_graph_and_exits_early(tmp_path, ctx_for):
    # A custom nn.Module (not a Sequential) with a skip connection: no cut inside the residual add.
    from optim.techniques._early_exit_net import graph_blocks
    from tests.matrix_models import ResidualCNN, make_dataset

    torch.manual_seed(0)
    model = ResidualCNN(4).eval()
    blocks = graph_blocks(model)
    assert len(blocks) == 4  # stem | bn1 + residual block (conv2, bn2, add) | conv3 + pool | head
    x = torch.randn(5, 64)
    h = x
    with torch.no_grad():
        for b in blocks:
            h = b(h)
        assert torch.allclose(h, model(x), atol=1e-6)
    data = make_dataset("images").splits()
    cand = Candidate(model, "classification", (64,), 4)
    tech = get("early-exit")
    assert tech.supports(cand) is None
    outs = tech.run(cand, tech.config(epochs=2, thresholds=(0.0, 1.0)), ctx_for(data))
    early, never = outs
    assert early.info["exit_fractions"][0] == 1.0  # threshold 0: every sample leaves at the first exit
    assert "no_effect" in never.info and never.info["speedup_mean_b1_test"] is None
