"""Compression family: low-rank factorization, weight clustering (sharing) and Huffman coding.

``prune-magnitude:sparsity=0.9+cluster:bits=5+huffman`` is Deep Compression (Han, Mao, Dally,
ICLR 2016). ``cluster`` and ``huffman`` make a real packed file of the weights (see
``_weight_codec``) and name it in ``info["size_file"]``, so the size measured is the size a user
could ship; the candidate's model is the decoded network, so accuracy and latency are measured on
exactly what that file holds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from optim.candidate import Candidate
from optim.config import TechniqueConfig, lr_field
from optim.context import RunContext
from optim.errors import ConfigError, OptimError
from optim.registry import register_technique
from optim.techniques.base import Technique, require_torch
from optim.techniques.pruning import finetune, weight_key, weight_layer_types, weight_tensors

CLUSTER_FILE = "weights.cluster"
HUFFMAN_FILE = "weights.huffman"


def _weight_layers(module: Any) -> list[tuple[str, Any]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, weight_layer_types())]


def _needs_weight_layers(candidate: Candidate) -> str | None:
    reason = require_torch(candidate)
    if reason:
        return reason
    if not weight_tensors(candidate.model):
        return "the model has no Linear, Conv, GRU or LSTM layer (a quantized model's weights cannot be edited)"
    return None


def _pipeline(candidate: Candidate, module: Any) -> Any:
    """``module`` behind the candidate's transform, as one module: what the packed file holds."""
    import torch.nn as nn

    return module if candidate.transform is None else nn.Sequential(candidate.transform, module)


def _pack(candidate: Candidate, module: Any, coding: str) -> tuple[bytes, list, dict[str, str], set[str]]:
    """The packed file of transform + ``module``.

    Every float tensor with ≤ 256 distinct values (clustered weights, shared biases) is
    codebook-coded; other Linear/Conv weights are stored as sparse or dense floats; the encoder
    keeps whichever layout is smallest per tensor (raw included), so coding never costs more
    than the plain float bytes.
    """
    from optim.techniques._weight_codec import codebook_of, encode_state, module_state

    whole = _pipeline(candidate, module)
    state = module_state(whole)
    weights = {weight_key(name, attr) for name, _, attr in weight_tensors(whole)}
    coded: dict[str, str] = {}
    for key, array in state.items():
        if array.dtype.kind != "f" or array.ndim == 0:
            continue
        if codebook_of(array) is not None:
            coded[key] = "codebook"
        elif key in weights:
            coded[key] = "float"
    blob, reports = encode_state(state, coded, coding)  # type: ignore[arg-type]
    return blob, reports, coded, weights


def _unpack_into(candidate: Candidate, module: Any, blob: bytes) -> Any:
    """A copy of ``module`` holding the weights decoded from ``blob``; checked bit for bit."""
    import copy

    import torch

    from optim.techniques._weight_codec import decode_state, load_state

    decoded = copy.deepcopy(module)
    # Decode into copies only: the transform belongs to the parent candidate too.
    whole = decoded if candidate.transform is None else torch.nn.Sequential(copy.deepcopy(candidate.transform), decoded)
    load_state(whole, decode_state(blob))
    want = _pipeline(candidate, module).state_dict()
    for key, value in whole.state_dict().items():
        if not torch.equal(value, want[key]):
            raise OptimError(f"internal error: the packed weights of {key!r} do not decode to the same values; "
                             "please report it.")
    return decoded


def _size_info(blob: bytes, reports: list, coded: dict[str, str], weights: set[str],
               parent_params_bytes: int) -> dict[str, Any]:
    """Size figures in Han et al.'s terms: weights kept, bits per weight, ratio to float32."""
    from optim.techniques._weight_codec import summarize

    w = [r for r in reports if r.name in weights]
    w_bytes = sum(r.payload_bytes for r in w)
    w_numel = sum(r.numel for r in w)
    return {
        "size_bytes_packed": len(blob),
        "size_bytes_fp32_params": parent_params_bytes,
        "compression_ratio_vs_fp32_params": round(parent_params_bytes / max(1, len(blob)), 2),
        "bits_per_weight": round(8.0 * w_bytes / max(1, w_numel), 3),
        "weights_kept": round(sum(r.nonzeros for r in w) / max(1, w_numel), 4),
        "layers": summarize([r for r in reports if r.name in coded]),
    }


def _fp32_param_bytes(candidate: Candidate) -> int:
    """Bytes of the state (parameters and buffers) if every float were float32: Han et al.'s base."""
    module = candidate.torch_module()
    return int(sum(v.numel() * (4 if v.is_floating_point() else v.element_size())
                   for v in module.state_dict().values()))


# --- cluster ---------------------------------------------------------------------------------
class ClusterConfig(TechniqueConfig):
    bits: int = Field(
        5,
        ge=1,
        le=8,
        description="Index width: each Linear/Conv layer shares 2^bits weight values (k-means centroids).",
        json_schema_extra={"sweep": [2, 3, 4, 5, 6, 8]},
    )
    init: Literal["linear", "density", "random"] = Field(
        "linear",
        description="Centroid initialization: evenly spaced between min and max weight (Han et al. found "
        "it best: it keeps the rare large weights), at weight quantiles, or random weights.",
    )
    finetune_epochs: int = Field(
        0, ge=0, le=200,
        description="Epochs fine-tuning the shared centroids (each centroid moves by the summed gradient "
        "of its weights; biases and normalization train as usual). Pruned weights stay zero.",
    )
    lr: float = lr_field()
    biases: bool = Field(
        False,
        description="Also share each layer's bias values (2^bits per layer). Deep Compression keeps "
        "biases at 32 bits; on a small model they become a large part of the compressed file.",
    )


class _SharedWeights:
    """Parametrization ``weight = centroids[labels]`` (zero where pruned): gradients of the weights
    of one cluster add up on its centroid (Deep Compression, Fig. 3)."""

    @staticmethod
    def make(centroids: Any, labels: Any, mask: Any) -> Any:
        import torch
        import torch.nn as nn

        class SharedWeights(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.centroids = nn.Parameter(centroids.clone())
                self.register_buffer("labels", labels)
                self.register_buffer("mask", mask)

            def forward(self, _weight: torch.Tensor) -> torch.Tensor:
                # torch types a module attribute (buffer, submodule) as Tensor | Module.
                return torch.where(self.mask, self.centroids[self.labels], torch.zeros((), dtype=self.centroids.dtype))  # type: ignore[arg-type,index]

        return SharedWeights()


def kmeans_1d(values: Any, k: int, init: str, seed: int) -> tuple[Any, Any]:
    """(centroids, labels) of 1-D ``values`` with ``k`` clusters (scikit-learn's KMeans)."""
    import numpy as np
    from sklearn.cluster import KMeans

    uniq = np.unique(values)
    if len(uniq) <= k:  # already shares few enough values (e.g. clustered before): keep them exactly
        return uniq.astype(values.dtype), np.searchsorted(uniq, values)
    if init == "linear":
        start = np.linspace(values.min(), values.max(), k)
    elif init == "density":
        start = np.quantile(values, np.linspace(0, 1, k))
    else:
        start = np.random.default_rng(seed).choice(values, size=k, replace=False)
    start = np.unique(start)
    km = KMeans(n_clusters=len(start), init=start.reshape(-1, 1), n_init=1, max_iter=100, random_state=seed)
    labels = km.fit_predict(values.reshape(-1, 1).astype(np.float64))
    return km.cluster_centers_.reshape(-1).astype(values.dtype), labels


@register_technique
class Cluster(Technique[ClusterConfig]):
    """Weight sharing: per-layer k-means of the weights into 2^bits shared values, optionally
    fine-tuning the centroids, stored as bits-wide indices into a per-layer codebook.

    Han, Mao, Dally, "Deep Compression", ICLR 2016, Sec. 3 (fc layers lose nothing at 5 bits,
    conv at 8; LeNet-300-100 pruned + 6-bit shared weights: 32×). Zeros left by pruning stay zero
    and are stored in the relative-index sparse layout. ``size_bytes`` is that packed file.
    """

    name = "cluster"
    family = "compression"
    Config = ClusterConfig
    summary = "k-means weight sharing: 2^bits values per layer, indices packed (optionally fine-tuned)."
    reference = "Han, Mao, Dally, Deep Compression, ICLR 2016"
    needs_training_data = False
    sweep_field = "bits"

    def supports(self, candidate: Candidate) -> str | None:
        return _needs_weight_layers(candidate)

    def apply(self, candidate: Candidate, config: ClusterConfig, ctx: RunContext) -> Candidate:
        import numpy as np
        import torch
        import torch.nn.utils.parametrize as P

        module = candidate.clone_module().eval()
        k = 2 ** config.bits
        shared = [(name, layer, a) for name, layer, attr in weight_tensors(module)
                  for a in ((attr, attr.replace("weight", "bias", 1)) if config.biases else (attr,))
                  if getattr(layer, a, None) is not None]
        # An RNN reads its flat weight list, not a parametrization: its clustered values are
        # written in place and left out of the centroid fine-tuning (they stay on the codebook).
        fixed = [(layer, attr) for _, layer, attr in shared if isinstance(layer, torch.nn.RNNBase)]
        for i, (name, layer, attr) in enumerate(shared):
            ctx.check_cancelled()
            w = getattr(layer, attr).detach()
            mask = w != 0  # pruned weights stay zero: they live in the sparse index, not the codebook
            values = w[mask].cpu().numpy()
            centroids = np.zeros(1, np.float32)
            labels_full = torch.zeros(w.shape, dtype=torch.long)
            if values.size:
                centroids, labels = kmeans_1d(values, k, config.init, ctx.seed)
                labels_full[mask] = torch.from_numpy(labels.astype(np.int64))
            make = _SharedWeights.make(torch.from_numpy(centroids.astype(np.float32)), labels_full, mask)
            if (layer, attr) in fixed:
                with torch.no_grad():
                    getattr(layer, attr).copy_(make(w))
            else:
                P.register_parametrization(layer, attr, make, unsafe=True)
            ctx.progress(f"clustered {name}.{attr}", (i + 1) / len(shared) / (2 if config.finetune_epochs else 1))
        info: dict[str, Any] = {"weight_bits": config.bits, "clusters_per_layer": k}
        if config.finetune_epochs:
            frozen = {id(getattr(layer, attr)) for layer, attr in fixed}
            params = [p for n, p in module.named_parameters() if ".original" not in n and id(p) not in frozen]
            result = finetune(candidate, module, config.finetune_epochs, config.lr, ctx, params=params)
            info["learning_curve"] = result.curve_dicts()
        for _, layer, attr in shared:
            if (layer, attr) not in fixed:
                P.remove_parametrizations(layer, attr, leave_parametrized=True)
        module.eval()
        blob, reports, coded, weights = _pack(candidate, module, "fixed")
        info.update(_size_info(blob, reports, coded, weights, _fp32_param_bytes(candidate)))
        info["size_file"] = CLUSTER_FILE
        return candidate.derive(self.step(config), model=module, info=info, extra_files={CLUSTER_FILE: blob})


# --- huffman ---------------------------------------------------------------------------------
class HuffmanConfig(TechniqueConfig):
    """Huffman coding has no settings: the code is optimal for the weights it is given."""


@register_technique
class Huffman(Technique[HuffmanConfig]):
    """Entropy coding of the shared-weight indices and the sparse index gaps (canonical Huffman,
    one code per stream per layer), in one file a decoder turns back into the exact weights.

    Han, Mao, Dally, "Deep Compression", ICLR 2016, Sec. 4 (saves a further 20-30%; LeNet-300-100
    reaches 40×). It codes layers whose weights share at most 256 values, so it goes after
    ``cluster`` (``cluster:bits=5+huffman``); a layer with more distinct values (not clustered) is
    stored as sparse or dense float32, and a model with no clustered layer is refused.
    """

    name = "huffman"
    requires = ("cluster",)
    family = "compression"
    Config = HuffmanConfig
    summary = "Huffman-code clustered weight indices and sparse gaps into one shippable file (after cluster)."
    reference = "Han, Mao, Dally, Deep Compression, ICLR 2016"

    def supports(self, candidate: Candidate) -> str | None:
        from optim.techniques._weight_codec import MAX_CODEBOOK, codebook_of

        reason = _needs_weight_layers(candidate)
        if reason:
            return reason
        weights = [getattr(m, attr).detach().cpu().numpy() for _, m, attr in weight_tensors(candidate.model)]
        shared = sum(w.size for w in weights if codebook_of(w) is not None)
        # A tiny layer (e.g. 16×2 outputs) has few distinct values without being clustered: ask
        # that most of the weights share a codebook before calling the model clustered.
        if shared < 0.5 * sum(w.size for w in weights):
            return ("it codes shared-weight indices and most Linear/Conv/GRU/LSTM weights do not share "
                    f"≤ {MAX_CODEBOOK} "
                    "values (they are not clustered); apply cluster first, e.g. recipe 'cluster:bits=5+huffman'")
        return None

    def apply(self, candidate: Candidate, config: HuffmanConfig, ctx: RunContext) -> Candidate:
        module = candidate.clone_module().eval()
        blob, reports, coded, weights = _pack(candidate, module, "huffman")
        fixed = _pack(candidate, module, "fixed")[0]
        decoded = _unpack_into(candidate, module, blob)  # the candidate runs what the file holds
        info = _size_info(blob, reports, coded, weights, _fp32_param_bytes(candidate))
        info.update({
            "size_file": HUFFMAN_FILE,
            "size_bytes_fixed_length": len(fixed),
            "huffman_saving": round(1 - len(blob) / max(1, len(fixed)), 4),
            "layers_not_clustered": sorted(k for k, v in coded.items() if v == "float"),
        })
        if info["compression_ratio_vs_fp32_params"] <= 1.01:
            info["no_effect"] = ("the packed file is no smaller than the float weights: no layer holds shared "
                                 "(clustered) or zero weights the code can exploit")
        return candidate.derive(self.step(config), model=decoded, info=info, extra_files={HUFFMAN_FILE: blob})


def decode_weights_file(blob: bytes, template: Any) -> Any:
    """A copy of ``template`` (a module of the same architecture, transform included when the
    candidate had one) with the weights stored in a ``cluster``/``huffman`` file."""
    import copy

    from optim.techniques._weight_codec import decode_state, load_state

    module = copy.deepcopy(template)
    load_state(module, decode_state(blob))
    return module


# --- low-rank --------------------------------------------------------------------------------
class LowRankConfig(TechniqueConfig):
    rank: int | None = Field(
        None, ge=1, le=65536,
        description="Rank kept in every factorized layer (capped at each layer's own rank); overrides "
        "energy. Larger than every layer's rank is an error.",
        json_schema_extra={"sweep": [2, 4, 8, 16, 32, 64]},
    )
    energy: float = Field(
        0.9, gt=0.0, le=1.0,
        description="Per layer, the smallest rank whose singular values keep this share of the squared "
        "spectrum (used when rank is not set).",
        json_schema_extra={"sweep": [0.5, 0.7, 0.8, 0.9, 0.95, 0.99]},
    )
    conv: Literal["tucker2", "spatial", "none"] = Field(
        "tucker2",
        description="Conv factorization: tucker2 (1×1 → k×k core → 1×1 over input and output channels, "
        "Kim et al. 2016), spatial (k×1 then 1×k, Jaderberg et al. 2014), or none (Linear only). "
        "Grouped/depthwise convs are kept.",
    )
    only_if_smaller: bool = Field(
        True, description="Keep a layer as it is when its factorized form would not have fewer parameters.")
    finetune_epochs: int = Field(0, ge=0, le=200, description="Fine-tuning epochs after factorizing.")
    lr: float = lr_field()


@register_technique
class LowRank(Technique[LowRankConfig]):
    """Low-rank factorization: each Linear layer becomes two thinner ones (truncated SVD); each
    Conv becomes a Tucker-2 chain (1×1, k×k core, 1×1) or a spatial k×1 → 1×k pair.

    Denton et al., NIPS 2014 (~2× faster conv layers within 1%); Jaderberg, Vedaldi, Zisserman,
    BMVC 2014 (2.5× at no loss); Kim et al., ICLR 2016 (Tucker-2). The ranks come from HOSVD
    (truncated SVD of each unfolding). At full rank the factorization is exact.
    """

    name = "low-rank"
    family = "compression"
    Config = LowRankConfig
    summary = "Truncated SVD of Linear layers, Tucker-2 or spatial SVD of convs (by rank or energy kept)."
    reference = "Denton et al., NIPS 2014; Jaderberg et al., BMVC 2014; Kim et al., ICLR 2016"
    sweep_field = "energy"

    def supports(self, candidate: Candidate) -> str | None:
        reason = require_torch(candidate)
        if reason:
            return reason
        if not _weight_layers(candidate.model):
            return "the model has no Linear or Conv layer to factorize (GRU/LSTM weights are not factorized)"
        return None

    def apply(self, candidate: Candidate, config: LowRankConfig, ctx: RunContext) -> Candidate:
        module = candidate.clone_module().eval()
        targets = [(n, m) for n, m in _weight_layers(module) if _full_ranks(m, config.conv)]
        if not targets:
            raise ConfigError(f"low-rank: no layer can be factorized with conv={config.conv!r} "
                              "(only grouped convs or conv=none on a conv-only model); try conv=tucker2.")
        largest = max(max(_full_ranks(m, config.conv)) for _, m in targets)
        if config.rank is not None and config.rank > largest:
            biggest = max(targets, key=lambda t: max(_full_ranks(t[1], config.conv)))[0]
            raise ConfigError(f"low-rank: rank={config.rank} is larger than every layer's rank (the largest is "
                              f"{largest}, layer {biggest!r}); use rank ≤ {largest}, or energy=0.9.")
        params_before = sum(p.numel() for p in module.parameters())
        report: dict[str, Any] = {}
        for name, layer in targets:
            ctx.check_cancelled()
            new, detail = _factorize(layer, config)
            report[name or "(model)"] = detail
            if new is not None and name:
                _replace(module, name, new)
            elif new is not None:  # the model is the layer itself
                module = new
        info: dict[str, Any] = {"layers": report, "params_before": params_before,
                                "params_after": sum(p.numel() for p in module.parameters())}
        if config.finetune_epochs:
            info["learning_curve"] = finetune(candidate, module, config.finetune_epochs, config.lr, ctx).curve_dicts()
        module.eval()
        return candidate.derive(self.step(config), model=module, info=info)


def _full_ranks(layer: Any, conv: str) -> tuple[int, ...]:
    """The ranks a layer can be cut at (empty when it is not factorized)."""
    import torch.nn as nn

    if isinstance(layer, nn.Linear):
        return (min(layer.in_features, layer.out_features),)
    if not isinstance(layer, nn.Conv2d) or layer.groups != 1 or conv == "none":
        return ()
    out, inp, kh, kw = layer.weight.shape
    if (kh, kw) == (1, 1):
        return (min(out, inp),)
    if conv == "spatial":
        return (min(inp * kh, out * kw),)
    return (out, inp)


def _rank_for(singular: Any, full: int, config: LowRankConfig) -> int:
    import torch

    if config.rank is not None:
        return min(config.rank, full)
    share = torch.cumsum(singular.double() ** 2, 0) / (singular.double() ** 2).sum().clamp_min(1e-30)
    return min(full, int((share < config.energy - 1e-12).sum()) + 1)


def _factorize(layer: Any, config: LowRankConfig) -> tuple[Any, dict]:
    """(replacement module or None to keep the layer, what was done)."""
    import torch
    import torch.nn as nn

    w = layer.weight.detach().double()
    before = layer.weight.numel()
    if isinstance(layer, nn.Linear) or w.shape[2:] == (1, 1):
        mat = w.reshape(w.shape[0], w.shape[1])
        U, S, Vh = torch.linalg.svd(mat, full_matrices=False)
        r = _rank_for(S, len(S), config)
        after = r * (mat.shape[0] + mat.shape[1])
        detail = {"kind": "svd", "rank": r, "full_rank": len(S), "weights_before": before, "weights_after": after}
        if config.only_if_smaller and after >= before:
            return None, dict(detail, kept="factorized form not smaller")
        root = S[:r].sqrt()
        first, second = (root[:, None] * Vh[:r]), (U[:, :r] * root[None, :])
        a: nn.Module  # Linear or Conv2d, as the layer they replace
        b: nn.Module
        if isinstance(layer, nn.Linear):
            a = nn.Linear(mat.shape[1], r, bias=False)
            b = nn.Linear(r, mat.shape[0], bias=layer.bias is not None)
        else:
            a = nn.Conv2d(mat.shape[1], r, 1, stride=layer.stride, bias=False)
            b = nn.Conv2d(r, mat.shape[0], 1, bias=layer.bias is not None)
            first, second = first[:, :, None, None], second[:, :, None, None]
        return _assemble([a, b], [first, second], layer), detail
    out, inp, kh, kw = w.shape
    if config.conv == "spatial":
        mat = w.permute(1, 2, 0, 3).reshape(inp * kh, out * kw)  # rows (c, i), columns (o, j)
        U, S, Vh = torch.linalg.svd(mat, full_matrices=False)
        r = _rank_for(S, len(S), config)
        after = r * (inp * kh + out * kw)
        detail = {"kind": "spatial", "rank": r, "full_rank": len(S), "weights_before": before, "weights_after": after}
        if config.only_if_smaller and after >= before:
            return None, dict(detail, kept="factorized form not smaller")
        root = S[:r].sqrt()
        vertical = (U[:, :r] * root).reshape(inp, kh, r).permute(2, 0, 1)[..., None]  # (r, in, kh, 1)
        horizontal = (root[:, None] * Vh[:r]).reshape(r, out, kw).permute(1, 0, 2)[:, :, None, :]  # (out, r, 1, kw)
        a = nn.Conv2d(inp, r, (kh, 1), stride=(layer.stride[0], 1), padding=(layer.padding[0], 0),
                      dilation=(layer.dilation[0], 1), bias=False)
        b = nn.Conv2d(r, out, (1, kw), stride=(1, layer.stride[1]), padding=(0, layer.padding[1]),
                      dilation=(1, layer.dilation[1]), bias=layer.bias is not None)
        return _assemble([a, b], [vertical, horizontal], layer), detail
    # Tucker-2 by HOSVD: W ≈ core ×_out U_out ×_in U_in
    U_out, S_out, _ = torch.linalg.svd(w.reshape(out, -1), full_matrices=False)
    U_in, S_in, _ = torch.linalg.svd(w.permute(1, 0, 2, 3).reshape(inp, -1), full_matrices=False)
    r_out = _rank_for(S_out, out, config)
    r_in = _rank_for(S_in, inp, config)
    after = inp * r_in + r_out * r_in * kh * kw + r_out * out
    detail = {"kind": "tucker2", "rank": [r_out, r_in], "full_rank": [out, inp], "weights_before": before,
              "weights_after": after}
    if config.only_if_smaller and after >= before:
        return None, dict(detail, kept="factorized form not smaller")
    U_out, U_in = U_out[:, :r_out], U_in[:, :r_in]
    core = torch.einsum("oikl,or,is->rskl", w, U_out, U_in)
    a = nn.Conv2d(inp, r_in, 1, bias=False)
    c = nn.Conv2d(r_in, r_out, (kh, kw), stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                  padding_mode=layer.padding_mode, bias=False)
    b = nn.Conv2d(r_out, out, 1, bias=layer.bias is not None)
    return _assemble([a, c, b], [U_in.T[:, :, None, None], core, U_out[:, :, None, None]], layer), detail


def _assemble(parts: list[Any], weights: list[Any], original: Any) -> Any:
    import torch
    import torch.nn as nn

    with torch.no_grad():
        for part, w in zip(parts, weights):
            part.weight.copy_(w.to(original.weight.dtype))
        if original.bias is not None:
            parts[-1].bias.copy_(original.bias)
    return nn.Sequential(*parts)


def _replace(root: Any, dotted: str, new: Any) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
