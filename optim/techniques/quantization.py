"""Quantization family: int8 weights (and activations) to make models smaller and faster."""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from optim.candidate import Candidate, OnnxModel
from optim.config import TechniqueConfig
from optim.context import RunContext
from optim.onnx_convert import WEIGHTED_OPS, compact_onnx, strip_debug_info
from optim.registry import register_technique
from optim.techniques.base import Technique

if TYPE_CHECKING:
    from optim.dataset import Task


class QuantizeDynamicConfig(TechniqueConfig):
    backend: Literal["auto", "torch", "onnxruntime"] = Field(
        "auto",
        description="Runtime that quantizes and runs the model: torch (torch.ao dynamic quantization "
        "of Linear/LSTM/GRU) or onnxruntime (ONNX Runtime dynamic quantization). auto: the "
        "candidate's own runtime.",
    )
    include_conv: bool = Field(
        False,
        description="ONNX Runtime only: also quantize Conv weights (dynamic int8 convs are usually "
        "slower on CPU than fp32; static int8 is the fast path for convs).",
    )


@register_technique
class QuantizeDynamic(Technique[QuantizeDynamicConfig]):
    """Dynamic (weight-only ahead of time, activations at run time) int8 quantization.

    Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
    Inference", CVPR 2018; PyTorch dynamic quantization tutorial (BERT: 438 MB → 181 MB).
    """

    name = "quantize-dynamic"
    family = "quantization"
    Config = QuantizeDynamicConfig
    summary = "int8 weights, activations quantized on the fly (Linear/LSTM layers)."
    reference = "Jacob et al., CVPR 2018; PyTorch dynamic quantization tutorial"

    def supports(self, candidate: Candidate) -> str | None:
        if candidate.kind == "torch":
            import torch.nn as nn

            if not any(isinstance(m, (nn.Linear, nn.LSTM, nn.GRU)) for m in candidate.model.modules()):
                return "the model has no Linear, LSTM or GRU layer to quantize dynamically (try quantize-static)"
        return None

    def apply(self, candidate: Candidate, config: QuantizeDynamicConfig, ctx: RunContext) -> Candidate:
        backend = config.backend
        if backend == "auto":
            backend = "torch" if candidate.kind == "torch" else "onnxruntime"
        if backend == "torch":
            return self._torch(candidate, config)
        return self._onnxruntime(candidate, config)

    def _torch(self, candidate: Candidate, config: QuantizeDynamicConfig) -> Candidate:
        import warnings

        import torch
        import torch.nn as nn

        from optim.errors import UnsupportedError

        if candidate.kind != "torch":
            raise UnsupportedError("quantize-dynamic: backend=torch needs a PyTorch model; this one is ONNX "
                                   "(use backend=onnxruntime).")
        module = candidate.clone_module().eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from torch.ao.quantization import quantize_dynamic

            qmodel = quantize_dynamic(module, {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.qint8)
        info: dict[str, Any] = {"weight_bits": 8, "runtime": "torch", **_dynamic_share(module)}
        return candidate.derive(self.step(config), model=qmodel, info=info)

    def _onnxruntime(self, candidate: Candidate, config: QuantizeDynamicConfig) -> Candidate:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32 = fp32_onnx(candidate)
        ops = ["MatMul", "Gemm", "LSTM", "GRU", "Attention"] + (["Conv"] if config.include_conv else [])
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "fp32.onnx"), os.path.join(tmp, "int8.onnx")
            with open(src, "wb") as fh:
                fh.write(fp32)
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=ops)
            with open(dst, "rb") as fh:
                q = compact_onnx(fh.read())
        info: dict[str, Any] = {"weight_bits": 8, "runtime": "onnxruntime"}
        if not config.include_conv and (candidate.kind == "torch" or candidate.editable is not None):
            info.update(_dynamic_share(candidate.editable if candidate.kind == "onnx" else candidate.model))
        return candidate.derive(self.step(config), model=OnnxModel(q), transform=None, info=info)


def _dynamic_share(module: Any) -> dict[str, Any]:
    """Share of the weights dynamic int8 quantizes (Linear/LSTM/GRU), flagged when it is small:
    on a conv net only the classifier changes, so size and speed barely move."""
    import torch.nn as nn

    from optim.techniques.pruning import weight_tensors

    total = quantized = 0
    for _, layer, attr in weight_tensors(module):
        n = getattr(layer, attr).numel()
        total += n
        quantized += n if isinstance(layer, (nn.Linear, nn.LSTM, nn.GRU)) else 0
    share = quantized / total if total else 0.0
    out: dict[str, Any] = {"quantized_weight_share": round(share, 4)}
    if share < 0.25:
        out["little_effect"] = (f"only {share:.0%} of the weights are in Linear/LSTM/GRU layers (the only ones "
                                "dynamic int8 quantizes); the Conv weights stay float32, so size and latency "
                                "barely change: quantize-static quantizes convs")
    return out


# --- shared ONNX helpers -----------------------------------------------------------------------
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
              "ConvInteger", "DynamicQuantizeLinear"}


def fp32_onnx(candidate: Candidate) -> bytes:
    """The candidate as float ONNX bytes (transform baked in), without exporter debug metadata.

    Torch candidates go through the shared export cache: one conversion per parent model.
    """
    if candidate.kind == "torch":
        return fp32_module_onnx(candidate.torch_module(), candidate.input_shape)
    return strip_debug_info(candidate.model.model_bytes)


def fp32_module_onnx(module, input_shape: tuple[int, ...], *, opset: int | None = None) -> bytes:
    """A torch module as the float ONNX graph the ONNX-based techniques start from (stripped, cached).

    It comes from the TorchScript exporter, checked against torch's outputs, because the dynamo
    exporter spends 25-60 s on MobileNetV3 here (torch.export's decompositions, ~90% of making an
    int8 candidate) where the TorchScript one takes 1-2 s; dynamo is the fallback. The conversion is
    cached per module content, so quantize-static, quantize-dynamic and onnx-runtime on the same
    parent export it once. The TorchScript exporter writes opset 17 at most: with ``opset`` the
    graph is converted to that opset (``onnx.version_converter``, same cache entry); where that
    fails, the module is exported again at that opset. Callers that hand the result to a user check
    it against torch on real rows (``check_onnx_matches``).
    """
    from optim.onnx_convert import torch_to_onnx_bytes

    data = torch_to_onnx_bytes(module, input_shape, exporter="torchscript")
    if opset is None:
        return data
    return _with_opset(data, opset) or torch_to_onnx_bytes(module, input_shape, opset=opset)


def _with_opset(model_bytes: bytes, opset: int) -> bytes | None:
    """``model_bytes`` at ONNX opset ``opset`` (unchanged when it already is), None when the converter fails."""
    import onnx

    model = onnx.load_model_from_string(model_bytes)
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if current == opset:
        return model_bytes
    try:
        from onnx import version_converter

        converted = version_converter.convert_version(model, opset)
        onnx.checker.check_model(converted)
    except Exception:  # an operator the converter has no adapter for: the caller re-exports
        return None
    return converted.SerializeToString()


def is_quantized_onnx(model_bytes: bytes) -> bool:
    import onnx

    return any(n.op_type in _QUANT_OPS for n in onnx.load_model_from_string(model_bytes).graph.node)


# --- static int8 (ONNX Runtime QDQ) ----------------------------------------------------------
class QuantizeStaticConfig(TechniqueConfig):
    calibration: Literal["minmax", "entropy", "percentile", "auto"] = Field(
        "minmax",
        description="How activation ranges are chosen from the calibration batches: min/max seen, the "
        "KL-divergence (entropy) threshold, or a percentile of the values (clips outliers). auto: try "
        "all three and keep the best on the validation split.",
        json_schema_extra={"sweep": ["minmax", "entropy", "percentile"]},
    )
    calibration_samples: int = Field(
        256, ge=1, le=100_000,
        description="Training rows fed through the model to calibrate activation ranges.",
        json_schema_extra={"sweep": [16, 64, 256, 1024]},
    )
    max_drop: float | None = Field(
        None, ge=0.0, le=100.0,
        description="Accuracy control: the most the primary metric (accuracy, or R²) may fall on the "
        "validation split, in points (0.5 = half a percentage point). Layers are ranked by how much "
        "error they add when quantized and the most sensitive stay float until the drop is within "
        "the limit; if none is, the best model found is kept and the row says so. Costs one quantization "
        "per weighted layer when the all-int8 model misses the limit (MobileNet-size models: minutes). "
        "Off when empty.",
    )
    per_channel: bool = Field(
        True, description="One scale per output channel of each weight (per-tensor loses more accuracy, "
        "e.g. MobileNetV2 67.3% vs 56.7% in the PyTorch tutorial).")
    quant_format: Literal["qdq", "qoperator"] = Field(
        "qdq", description="qdq: QuantizeLinear/DequantizeLinear pairs the runtime fuses into int8 kernels "
        "(ONNX Runtime's recommended form); qoperator: QLinearConv/QLinearMatMul operators.")
    activation_type: Literal["uint8", "int8"] = Field(
        "uint8", description="Activation integer type. uint8 activations with int8 weights (U8S8) use ONNX "
        "Runtime's fast x86 int8 kernels: on digits-mobilenet here int8 activations (S8S8) made the model "
        "4-10× slower than fp32 while U8S8 ran 4× faster at batch 64.")
    reduce_range: Literal["auto", "on", "off"] = Field(
        "auto", description="7-bit weights. x86 CPUs without VNNI add pairs of uint8×int8 products in a "
        "saturating int16, so 8-bit weights overflow and lose accuracy (digits-cnn 98.9% → 97.2%); 7-bit "
        "weights are exact there. auto: on for x86 without VNNI/AMX, off where int8 dot products "
        "(VNNI, AMX, Arm) are exact. The choice and its reason are recorded in the row.")
    percentile: float = Field(99.999, ge=90.0, le=100.0,
                              description="Percentile kept when calibration=percentile.")
    preprocess: bool = Field(
        True, description="Run onnxruntime.quantization.shape_inference.quant_pre_process first "
        "(shape inference and graph optimizations such as batch-norm folding).")


class _CalibrationReader:
    """Feeds calibration batches to ONNX Runtime's calibrator."""

    def __init__(self, X, input_name: str, batch_size: int) -> None:
        import numpy as np

        X = np.asarray(X, np.float32)
        self._batches = iter([{input_name: X[i:i + batch_size]} for i in range(0, len(X), batch_size)])

    def get_next(self):
        return next(self._batches, None)

    def rewind(self) -> None:  # not needed: each quantize_static call builds a new reader
        pass


@register_technique
class QuantizeStatic(Technique[QuantizeStaticConfig]):
    """Static post-training int8: weights and activations int8, activation ranges calibrated on a
    sample of the training split; ONNX Runtime QDQ with per-channel weights, in the scheme that is
    exact on this CPU; optional accuracy control keeps the most sensitive layers float.

    Jacob et al., CVPR 2018 (ResNet-50 76.4% → 74.9% at 8 bits); ONNX Runtime quantization docs
    (per-channel QDQ is the fast int8 path for convolutions on x86; reduce_range on CPUs without
    VNNI). Accuracy control as in NNCF's ``quantize_with_accuracy_control`` (ranked layer-wise
    fallback to float). The result is an ONNX model.
    """

    name = "quantize-static"
    family = "quantization"
    Config = QuantizeStaticConfig
    summary = "int8 weights and activations (calibrated on training rows), ONNX Runtime QDQ per-channel."
    reference = "Jacob et al., CVPR 2018; ONNX Runtime static quantization"
    needs_training_data = True
    sweep_field = "calibration"
    fast_config = {"calibration_samples": 64}

    def supports(self, candidate: Candidate) -> str | None:
        if candidate.kind == "onnx" and is_quantized_onnx(candidate.model.model_bytes):
            return ("the ONNX model is already quantized (it has QuantizeLinear / QLinear / integer operators); "
                    "quantizing int8 again only loses accuracy: apply quantize-static to its float parent")
        if candidate.kind == "torch" and _is_torch_quantized(candidate.model):
            return ("the PyTorch model is already quantized with torch.ao int8 modules, which ONNX cannot express; "
                    "apply quantize-static to its float parent")
        return None

    def apply(self, candidate: Candidate, config: QuantizeStaticConfig, ctx: RunContext) -> Candidate:
        quantized, info = static_quantize_bytes(fp32_onnx(candidate), ctx.data, config, ctx)
        return candidate.derive(self.step(config), model=OnnxModel(quantized), transform=None, info=info)


#: Int8 kernels losing more than this (points) against the same file run as float ops is reported.
_SATURATION_POINTS = 1.0


class _StaticQuantizer:
    """One fp32 model prepared once (pre-processed, calibrated once per method), quantized with
    different layers left float, each result scored on the validation rows."""

    def __init__(self, fp32: bytes, rows, config: QuantizeStaticConfig, reduce_range: bool, tmp: str,
                 ctx: RunContext, info: dict) -> None:
        import onnx

        self.config, self.reduce_range, self.tmp, self.ctx, self.rows = config, reduce_range, tmp, ctx, rows
        self.src = os.path.join(tmp, "fp32.onnx")
        with open(self.src, "wb") as fh:
            fh.write(fp32)
        if config.preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            pre = os.path.join(tmp, "pre.onnx")
            try:
                quant_pre_process(self.src, pre)
                self.src = pre
                info["preprocess"] = "quant_pre_process"
            except Exception as err:  # keep going on the raw export, and say so
                info["preprocess"] = f"skipped: quant_pre_process failed ({type(err).__name__}: {err})"[:300]
                ctx.log(f"quantize-static: {info['preprocess']}")
        graph = onnx.load(self.src, load_external_data=False).graph
        self.input_name = graph.input[0].name
        self.layers = [n.name for n in graph.node if n.op_type in WEIGHTED_OPS and n.name]
        self.op_of = {n.name: n.op_type for n in graph.node}
        self.made = 0

    def quantize(self, method: str, exclude: tuple[str, ...] = ()) -> bytes:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        from optim.errors import OptimError

        config = self.config
        dst = os.path.join(self.tmp, f"int8-{self.made}.onnx")
        cache = os.path.join(self.tmp, f"calibration-{method}.json")
        self.made += 1
        try:
            if method == "entropy" and not os.path.exists(cache):
                self._entropy_ranges(cache)
            quantize_static(
                self.src, dst, _CalibrationReader(self.rows, self.input_name, max(1, self.ctx.batch_size)),
                quant_format=QuantFormat.QDQ if config.quant_format == "qdq" else QuantFormat.QOperator,
                per_channel=config.per_channel, reduce_range=self.reduce_range,
                activation_type=QuantType.QInt8 if config.activation_type == "int8" else QuantType.QUInt8,
                weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude),
                calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                                  "percentile": CalibrationMethod.Percentile}[method],
                # Calibrate once per method: leaving layers float does not change activation ranges.
                calibration_cache_path=cache,
                # Float bias: the fused int8 kernel folds it in at the same speed, and it saves the int32
                # bias's scale and zero-point arrays (3 arrays per layer become 1).
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, "QuantizeBias": False,
                               "CalibPercentile": config.percentile},
            )
        except Exception as err:
            raise OptimError(f"quantize-static: ONNX Runtime could not quantize this model ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''}).",
                             hint="Try preprocess=false, quant_format=qoperator, or quantize-dynamic.") from None
        with open(dst, "rb") as fh:
            data = compact_onnx(strip_debug_info(fh.read()))
        os.remove(dst)
        return data

    def _entropy_ranges(self, cache: str) -> None:
        """KL-divergence ranges from a 2048-bin histogram (TensorRT's setting). quantize_static builds
        128 bins for 128 quantized levels, which leaves one candidate threshold: the min/max range."""
        from pathlib import Path

        from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

        calibrator = create_calibrator(Path(self.src), None, os.path.join(self.tmp, "augmented.onnx"),
                                       CalibrationMethod.Entropy,
                                       extra_options={"num_bins": 2048, "num_quantized_bins": 128})
        calibrator.collect_data(_CalibrationReader(self.rows, self.input_name, max(1, self.ctx.batch_size)))
        # The same search as ONNX Runtime's, without its per-bin Python loops (5 CPU s on digits-mlp,
        # minutes on MobileNetV3's ~130 tensors).
        calibrator.collector.get_entropy_threshold = entropy_threshold
        save_tensors_data(calibrator.compute_data(), cache)


def entropy_threshold(histogram, num_quantized_bins: int):
    """ONNX Runtime's ``HistogramCollector.get_entropy_threshold`` (TensorRT's KL-divergence search over
    symmetric ranges of the histogram), step for step with the same integer arithmetic, the per-bin
    loops replaced by array operations. ``histogram`` is (counts, edges, min, max)."""
    import numpy as np
    from onnxruntime.quantization.calibrate import entropy
    from onnxruntime.quantization.quant_utils import smooth_distribution

    hist, edges = histogram[0], histogram[1]
    num_bins, dtype = hist.size, edges.dtype
    zero, half = num_bins // 2, num_quantized_bins // 2
    prefix = np.concatenate([[0], np.cumsum(hist)])
    kl = np.zeros(zero - half + 1)
    thresholds = []
    for i in range(half, zero + 1):
        start, end = zero - i, min(zero + i + 1, num_bins)
        thresholds.append((edges[start], edges[end]))
        sliced = hist[start:end]
        p = sliced.copy()
        p[0] += prefix[start]  # outliers on either side join the edge bins
        p[-1] += prefix[-1] - prefix[end]
        merged = sliced.size // num_quantized_bins
        body = num_quantized_bins * merged
        quantized = sliced[:body].reshape(num_quantized_bins, merged).sum(axis=1).astype(np.int64)
        quantized[-1] += sliced[body:].sum()
        norm = (p[:body] != 0).reshape(num_quantized_bins, merged).sum(axis=1)
        q = np.zeros(p.size, dtype=np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = np.where(norm != 0, quantized / np.where(norm != 0, norm, 1), 0.0)
        q[:body] = np.repeat(spread.astype(np.int64), merged)  # ORT stores into int64: truncation
        ps, qs = smooth_distribution(p), smooth_distribution(q)
        kl[i - half] = np.inf if ps is None or qs is None else np.array(entropy(ps, qs), dtype=dtype)
    low, high = thresholds[int(np.argmin(kl))]
    if low < histogram[2]:
        low = histogram[2]
    if high > histogram[3]:
        high = histogram[3]
    return low, high


class _Validation:
    """Scores models on the validation rows against the fp32 model: points of the primary metric
    (accuracy or R² × 100) and the mean squared output error, which ranks layers where accuracy ties."""

    def __init__(self, fp32: bytes, X, y, task: Task) -> None:
        import numpy as np

        self.X, self.y, self.task = np.asarray(X, np.float32), np.asarray(y), task
        self.reference = self.outputs(fp32)
        self.fp32_points = self.points(self.reference)

    def outputs(self, model_bytes: bytes, graph_optimization: str = "all"):
        import numpy as np

        model = OnnxModel(model_bytes, graph_optimization=graph_optimization)
        return np.concatenate([model.run(self.X[i:i + 256]) for i in range(0, len(self.X), 256)])

    def points(self, outputs) -> float:
        from optim.evaluation.metrics import score

        return 100.0 * score(outputs, self.y, self.task)

    def evaluate(self, model_bytes: bytes) -> tuple[float, float]:
        """(drop in points vs fp32, mean squared output error vs fp32)."""
        import numpy as np

        out = self.outputs(model_bytes)
        return self.fp32_points - self.points(out), float(np.mean((out - self.reference) ** 2))


def static_quantize_bytes(fp32: bytes, data, config: QuantizeStaticConfig, ctx: RunContext) -> tuple[bytes, dict]:
    """ONNX Runtime static quantization of ``fp32`` (bytes in, bytes out) and what was done.

    ``data`` is the run's DataSplits: calibration rows come from ``train``; ``calibration=auto``,
    ``max_drop`` and the saturation check score on ``val`` (never ``test``).
    """
    import numpy as np

    from optim.dataset import Split
    from optim.errors import ConfigError

    calibration_X = np.asarray(data.train.X)
    n = min(config.calibration_samples, len(calibration_X))
    if n == 0:
        raise ConfigError("quantize-static: the training split is empty; calibration needs rows.")
    rows = Split(calibration_X, np.zeros(len(calibration_X))).take(n, seed=ctx.seed).X
    reduce_range, scheme_info = _reduce_range(config)
    info: dict = {"weight_bits": 8, "activation_bits": 8, "runtime": "onnxruntime",
                  "calibration": config.calibration, "calibration_samples": int(n),
                  "per_channel": config.per_channel, "quant_format": config.quant_format, **scheme_info}
    needs_val = config.calibration == "auto" or config.max_drop is not None
    if needs_val and len(data.val) == 0:
        raise ConfigError("quantize-static: calibration=auto and max_drop score on the validation split, "
                          "which is empty; give the dataset a validation split or set calibration and "
                          "leave max_drop empty.")
    val = _Validation(fp32, data.val.X, data.val.y, data.task) if len(data.val) else None
    with tempfile.TemporaryDirectory() as tmp:
        q = _StaticQuantizer(fp32, rows, config, reduce_range, tmp, ctx, info)
        method: str = config.calibration
        if method == "auto":
            assert val is not None  # needs_val above: a validation split exists
            tried: dict[str, tuple[float, float]] = {}
            for m in ("minmax", "entropy", "percentile"):
                tried[m] = val.evaluate(q.quantize(m))
                ctx.log(f"quantize-static: calibration={m}: validation drop {tried[m][0]:.2f} points")
            method = min(tried, key=lambda m: (round(tried[m][0], 6), tried[m][1]))
            info["calibration"] = method
            info["calibration_tried"] = {m: f"validation drop {d:.2f} points, output MSE {e:.3g}"
                                         for m, (d, e) in tried.items()}
        quantized = q.quantize(method)
        if config.max_drop is not None:
            assert val is not None  # needs_val above
            quantized = _accuracy_control(q, method, quantized, val, config.max_drop, info, ctx)
        if val is not None:
            _saturation_check(quantized, val, reduce_range, config, info)
        else:
            info["saturation"] = "not checked: the dataset has no validation split"
    return quantized, info


def _accuracy_control(q: _StaticQuantizer, method: str, quantized: bytes, val: _Validation, max_drop: float,
                      info: dict, ctx: RunContext) -> bytes:
    """Keep the most sensitive weighted layers float until the validation drop is ≤ ``max_drop``.

    Sensitivity of a layer = how much the validation score and output error recover when only that
    layer stays float (one quantization per layer, calibration reused). Layers then go float in that
    order, one at a time, until the limit holds; the best model seen is returned either way.
    """
    drop, err = val.evaluate(quantized)
    tried: dict[tuple[str, ...], tuple[float, float, bytes]] = {(): (drop, err, quantized)}
    info["fp32_val_points"] = round(val.fp32_points, 3)
    info["val_drop_all_int8_points"] = round(drop, 3)
    info["float_layers"] = []
    if drop <= max_drop:
        info["accuracy_control"] = (f"met with every layer int8: validation drop {drop:.2f} ≤ {max_drop:g} "
                                    f"points ({len(val.y)} rows)")
        info["val_drop_points"] = round(drop, 3)
        return quantized
    sens = {}
    for layer in q.layers:
        if ctx.cancelled():
            break
        d, e = val.evaluate(b := q.quantize(method, (layer,)))
        tried[(layer,)] = (d, e, b)
        sens[layer] = (drop - d, err - e)
    ranked = sorted(sens, key=lambda L: (-round(sens[L][0], 6), -sens[L][1]))
    excluded: tuple[str, ...] = ()
    for layer in ranked:
        excluded = excluded + (layer,)
        if excluded not in tried:
            d, e = val.evaluate(b := q.quantize(method, excluded))
            tried[excluded] = (d, e, b)
        if tried[excluded][0] <= max_drop:
            break
    # Within the limit: fewest float layers (smallest, fastest), then the smallest drop. Otherwise the
    # smallest drop: the best model found, never nothing.
    meeting = [k for k in tried if tried[k][0] <= max_drop]
    best = (min(meeting, key=lambda k: (len(k), tried[k][0], tried[k][1])) if meeting else
            min(tried, key=lambda k: (tried[k][0], len(k), tried[k][1])))
    drop_best = tried[best][0]
    info["float_layers"] = [
        {"layer": L, "op": q.op_of.get(L, ""), "why": f"sensitivity rank {ranked.index(L) + 1} of {len(ranked)}: "
         f"float alone recovers {sens[L][0]:.2f} points and {100 * sens[L][1] / err if err else 0:.0f}% of the "
         "output error"} for L in best if L in sens]
    info["val_drop_points"] = round(drop_best, 3)
    info["accuracy_control_trials"] = len(tried)
    where = f"validation drop {drop_best:.2f} points ({len(val.y)} rows) with {len(best)} of {len(q.layers)} " \
            f"weighted layers float"
    if drop_best <= max_drop:
        info["accuracy_control"] = f"met: {where} (all int8: {drop:.2f} points)"
    else:
        info["accuracy_control"] = (f"not met: no configuration tried is within {max_drop:g} points; the best "
                                    f"found is kept: {where} (all int8: {drop:.2f} points)")
        ctx.log(f"quantize-static: {info['accuracy_control']}")
    return tried[best][2]


def _saturation_check(quantized: bytes, val: _Validation, reduce_range: bool, config: QuantizeStaticConfig,
                      info: dict) -> None:
    """Score the file once with graph optimizations off: Q/DQ then run as float ops, the accuracy
    the quantization itself allows. Int8 kernels far below that means the CPU's arithmetic overflows."""
    emulated = val.fp32_points - val.points(val.outputs(quantized, graph_optimization="disable"))
    kernels = val.fp32_points - val.points(val.outputs(quantized))
    info["val_drop_emulated_points"] = round(emulated, 3)
    info["val_drop_int8_kernels_points"] = round(kernels, 3)
    if kernels - emulated > _SATURATION_POINTS:
        fix = ("set reduce_range=on (7-bit weights)" if not reduce_range else
               "use per_channel=true and calibration=percentile, or max_drop to keep the saturating layers float")
        info["saturation"] = (f"int8 kernels lose {kernels - emulated:.2f} points more than the same file run as "
                              f"float ops (validation): the CPU's int8 arithmetic saturates; {fix}")
    else:
        info["saturation"] = (f"none: int8 kernels within {_SATURATION_POINTS:g} point of the float-emulated "
                              f"file on validation ({kernels:.2f} vs {emulated:.2f} points drop)")


def _reduce_range(config: QuantizeStaticConfig) -> tuple[bool, dict]:
    """Whether weights use 7 bits, and the row info that says why (CPU-aware when ``auto``)."""
    from optim.hardware.detect import int8_scheme

    scheme = int8_scheme()
    act = "U8" if config.activation_type == "uint8" else "S8"
    if config.reduce_range == "auto":
        chosen, reason = scheme.reduce_range, f"auto: {scheme.reason}"
    else:
        chosen = config.reduce_range == "on"
        reason = f"set by the user (reduce_range={config.reduce_range}); auto would choose " \
                 f"{'on' if scheme.reduce_range else 'off'} on {scheme.instructions}"
        if scheme.reduce_range and not chosen and config.activation_type == "uint8":
            reason += ": 8-bit weights may saturate on this CPU, compare accuracy"
    return chosen, {"int8_scheme": f"{act}S{7 if chosen else 8}", "reduce_range": chosen,
                    "cpu_int8": scheme.instructions, "scheme_reason": reason}


def _is_torch_quantized(module) -> bool:
    return any(type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.nn.quantized"))
               for m in module.modules())


# --- quantization-aware training (fake quant in torch, shipped as ONNX Runtime QDQ) ----------------
class QuantizeQATConfig(TechniqueConfig):
    epochs: int = Field(3, ge=1, le=200,
                        description="Fine-tuning epochs with fake-quantized weights and activations.",
                        json_schema_extra={"sweep": [1, 2, 3, 5, 10]})
    lr: float = Field(3e-5, gt=0.0, le=1.0,
                      description="Fine-tuning learning rate (Adam); small, since the model is already trained "
                      "(on digits-cnn 1e-4 lost 0.8 pt where 3e-5 lost 0.3).",
                      json_schema_extra={"search": [1e-6, 1e-3, "log"]})
    freeze_after: float = Field(
        0.5, ge=0.0, le=1.0,
        description="Share of the epochs after which activation ranges stop following the data, so the "
        "last epochs train against fixed quantization grids.")
    reduce_range: Literal["auto", "on", "off"] = Field(
        "auto", description="7-bit weights, as in quantize-static: auto picks the scheme exact on this CPU "
        "(on for x86 without VNNI/AMX). Training simulates the same grid the ONNX file uses.")
    calibration_samples: int = Field(
        256, ge=1, le=100_000,
        description="Training rows that calibrate the activation ranges of the fine-tuned model in ONNX Runtime.")


def _weight_fake_quant(qmax: int):
    """Parametrization: per-output-channel symmetric int8 weights (ONNX Runtime's WeightSymmetric rule,
    scale = max|w| / qmax), with the straight-through estimator for gradients."""
    import torch

    class WeightFakeQuant(torch.nn.Module):
        def forward(self, w):
            dims = tuple(range(1, w.dim()))
            scale = (w.detach().abs().amax(dim=dims, keepdim=True) / qmax).clamp_min(1e-12)
            q = torch.clamp(torch.round(w / scale), -qmax, qmax) * scale
            return w + (q - w).detach()

    return WeightFakeQuant()


def _act_fake_quant_hook(state: dict):
    """Forward pre-hook: uint8 asymmetric fake quantization of a layer's input, range tracked by an
    exponential moving average of batch min/max until ``state["frozen"]``."""
    import torch

    def hook(module, args):
        x = args[0]
        if module.training and not state["frozen"]:
            lo, hi = float(x.detach().min()), float(x.detach().max())
            r = state.setdefault(id(module), [min(lo, 0.0), max(hi, 0.0)])
            r[0], r[1] = 0.9 * r[0] + 0.1 * min(lo, 0.0), 0.9 * r[1] + 0.1 * max(hi, 0.0)
        r = state.get(id(module))
        if r is None or r[1] - r[0] <= 0:
            return None
        scale = (r[1] - r[0]) / 255.0
        zero = int(round(-r[0] / scale))
        return (torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255),) + tuple(args[1:])

    return hook


def _fold_batch_norms(module):
    """Conv/Linear followed by BatchNorm folded into one layer (torch.fx), so training sees the weights
    ONNX Runtime quantizes (its pre-processing folds them too). None when the model cannot be traced."""
    import copy

    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(copy.deepcopy(module).eval())
    except Exception:
        return None


@register_technique
class QuantizeQAT(Technique[QuantizeQATConfig]):
    """Quantization-aware training: fine-tune with fake-quantized weights and activations
    (straight-through estimator) on exactly the int8 grid the shipped file uses, then quantize the
    fine-tuned model with ONNX Runtime (per-channel QDQ, the CPU-exact scheme). The result is an
    ONNX model, like quantize-static's; no deprecated torch.ao API is involved.

    Jacob et al., CVPR 2018; Krishnamoorthi, "Quantizing deep convolutional networks for efficient
    inference", 2018; PyTorch static quantization tutorial (MobileNetV2: per-channel PTQ 67.3%,
    QAT > 71.5%, fp32 71.9%).
    """

    name = "quantize-qat"
    family = "quantization"
    Config = QuantizeQATConfig
    summary = "Fake-quant fine-tuning, then int8 ONNX (QDQ): recovers accuracy static PTQ loses."
    reference = "Jacob et al., CVPR 2018; Krishnamoorthi 2018"
    needs_training_data = True
    sweep_field = "epochs"
    fast_config = {"epochs": 1}

    def supports(self, candidate: Candidate) -> str | None:
        if candidate.kind != "torch":
            return ("it fine-tunes a PyTorch model and this candidate is ONNX (ONNX graphs are not trained here); "
                    "use quantize-static for post-training int8 of an ONNX model, or apply quantize-qat to the "
                    "PyTorch model before any ONNX step")
        if _is_torch_quantized(candidate.model):
            return ("the PyTorch model is already quantized with torch.ao int8 modules; apply quantize-qat to its "
                    "float parent")
        return None

    def apply(self, candidate: Candidate, config: QuantizeQATConfig, ctx: RunContext) -> Candidate:
        import copy

        import torch.nn as nn
        from torch.nn.utils import parametrize

        from optim.training import TrainSettings, fit

        static = QuantizeStaticConfig(reduce_range=config.reduce_range,
                                      calibration_samples=config.calibration_samples)
        reduce_range, _ = _reduce_range(static)
        source = candidate.torch_module()  # the transform is quantized along with the model
        folded = _fold_batch_norms(source)
        module = folded if folded is not None else copy.deepcopy(source)
        layers = [m for m in module.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]
        state: dict = {"frozen": False}
        hooks = []
        for layer in layers:
            parametrize.register_parametrization(layer, "weight", _weight_fake_quant(64 if reduce_range else 127))
            hooks.append(layer.register_forward_pre_hook(_act_fake_quant_hook(state)))
        freeze_at = max(1, int(round(config.freeze_after * config.epochs)))

        def on_epoch(rec) -> None:
            if rec.epoch >= freeze_at:
                state["frozen"] = True

        try:
            result = fit(module, ctx.data.train, ctx.data.val, ctx.data.task,
                         TrainSettings(epochs=config.epochs, lr=config.lr, seed=ctx.seed), ctx, on_epoch=on_epoch)
        finally:
            for h in hooks:
                h.remove()
        for layer in layers:  # keep the trained weights on their int8 grid
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
        quantized, info = static_quantize_bytes(fp32_module_onnx(module.eval(), candidate.input_shape),
                                                ctx.data, static, ctx)
        info.update({
            "learning_curve": result.curve_dicts(),
            "qat_path": "fake quantization in torch (straight-through estimator, per-channel symmetric weights "
                        "on the ONNX Runtime grid, uint8 activations), then ONNX Runtime QDQ of the fine-tuned "
                        "weights with activation ranges recalibrated; not torch.ao (deprecated)",
            "batch_norm": "folded before training (torch.fx)" if folded is not None else
                          "not folded: torch.fx could not trace the model; the shipped grid of conv+BN layers "
                          "differs slightly from the trained one",
        })
        return candidate.derive(self.step(config), model=OnnxModel(quantized), transform=None, info=info)


# --- half precision ----------------------------------------------------------------------------
class HalfConfig(TechniqueConfig):
    dtype: Literal["fp16", "bf16"] = Field(
        "bf16",
        description="fp16 (IEEE half) or bf16 (bfloat16: float32's range, fewer mantissa bits). On x86 "
        "CPUs without native fp16 math, fp16 often runs many times slower than fp32, while bf16 can "
        "run faster on CPUs with AVX512-BF16/AMX; both halve the file. Measured, not assumed.",
        json_schema_extra={"sweep": ["fp16", "bf16"]},
    )


@register_technique
class Half(Technique[HalfConfig]):
    """Half-precision weights and arithmetic (fp16 or bf16) in PyTorch.

    Micikevicius et al., "Mixed Precision Training", ICLR 2018 (fp16); Kalamkar et al., "A Study of
    BFLOAT16 for Deep Learning Training", 2019 (bf16). Halves the size; speed depends on the CPU's
    native support, so it is measured per machine.
    """

    name = "half"
    family = "quantization"
    Config = HalfConfig
    summary = "fp16 or bf16 weights and math: half the size; CPU speed varies (fp16 is often slower)."
    reference = "Micikevicius et al., ICLR 2018; Kalamkar et al. 2019"
    sweep_field = "dtype"

    def supports(self, candidate: Candidate) -> str | None:
        if candidate.kind != "torch":
            return ("it casts PyTorch modules; this candidate is ONNX (ONNX Runtime's CPU provider has few "
                    "fp16 kernels and would insert casts around most operators)")
        if _is_torch_quantized(candidate.model):
            return "the model is already quantized to int8"
        return None

    def apply(self, candidate: Candidate, config: HalfConfig, ctx: RunContext) -> Candidate:
        import torch

        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[config.dtype]
        inner = candidate.clone_module().to(dtype).eval()
        transform = None
        if candidate.transform is not None:
            import copy

            transform = copy.deepcopy(candidate.transform).to(dtype).eval()
            inner = torch.nn.Sequential(transform, inner)
        from optim.techniques._cast import CastIO

        return candidate.derive(self.step(config), model=CastIO(inner, dtype).eval(), transform=None,
                                info={"dtype": config.dtype, "weight_bits": 16})
