"""The applicability matrix: every registered technique on models nobody in the project wrote, in
every format a user brings (scripted / traced TorchScript, ``.pt2``, ONNX).

    nice -n 10 .venv/bin/python benchmarks/matrix.py [--out benchmarks/results/matrix.md] [--models resnet,gru]
        [--skip-matrix]  (only the ResNet-18 conversion figures)

Models (tests/matrix_models.py, built small and untrained, no downloads): torchvision ResNet
(narrow BasicBlock stages), MobileNetV2 (width 0.25, three stages), ShuffleNetV2 and EfficientNet
(two MBConv stages), a custom residual CNN, a custom MLP class with BatchNorm1d and Dropout, a GRU
classifier and an MLP regressor. Each cell is the technique's quick config (a few steps) run through
``Technique.run`` on the loaded model: ok, refused (``supports()``'s reason), failed (an OptimError at
run time) or crashed. Also times the conversion of a full-size torchvision ResNet-18.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit  # noqa: E402

from optim.evaluation.environment import environment_info  # noqa: E402
from tests.matrix_models import FORMATS, MODELS, Cell, run_matrix  # noqa: E402


def resnet18_conversion() -> dict:
    """Seconds to convert a full-size ResNet-18 (3×224×224) from each format, and the latency of the
    converted fp32 graph against the original (median of 5 alternating rounds of 20 single-image runs,
    1 thread). For ONNX, also the graph exported back to ONNX and run in ONNX Runtime with the
    original's settings, as a variant of an ONNX upload is (:mod:`optim.parent_runtime`)."""
    import numpy as np
    import torch
    import torchvision

    from optim.candidate import OnnxModel
    from optim.io.convert import editable_graph
    from optim.io.models import _load_export, _load_torchscript
    from tests.matrix_models import save_model

    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = torchvision.models.resnet18(num_classes=10).eval()

    class Flat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x.reshape(x.shape[0], 3, 224, 224))

    model = Flat().eval()
    X = np.random.default_rng(0).normal(size=(8, 3 * 224 * 224)).astype(np.float32)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        loaders = (("trace", "torchscript", _load_torchscript),
                   ("pt2", "export", lambda p: _load_export(p, p.read_bytes())),
                   ("onnx", "onnx", lambda p: OnnxModel(p.read_bytes())))
        for fmt, kind, load in loaders:
            original = load(save_model(model, fmt, X, Path(tmp) / f"r18.{fmt}"))
            graph, report = editable_graph(original, kind, X)

            def median_ms(f) -> float:
                x = torch.from_numpy(X[:1])
                times = []
                with torch.inference_mode():
                    f(x)
                    for _ in range(20):
                        t0 = time.perf_counter()
                        f(x)
                        times.append((time.perf_counter() - t0) * 1e3)
                return float(np.median(times))

            run_original = (lambda x, original=original: original.run(x.numpy())) if kind == "onnx" else original
            runs = {"original_ms": run_original, "graph_ms": graph}
            extra = {}
            if kind == "onnx":  # what a variant of an ONNX upload runs: the graph exported back, in ORT
                from optim.onnx_convert import check_onnx_matches
                from optim.techniques.edge import ATOL, RTOL
                from optim.techniques.quantization import fp32_module_onnx

                t0 = time.perf_counter()
                back_bytes = fp32_module_onnx(graph, (3 * 224 * 224,))
                diff = check_onnx_matches(back_bytes, graph, X, atol=ATOL, rtol=RTOL)
                back = OnnxModel(back_bytes, original.providers, original.graph_optimization)
                runs["back_ms"] = lambda x, back=back: back.run(x.numpy())
                extra = {"back_seconds": round(time.perf_counter() - t0, 2), "back_max_abs_diff": diff,
                         "back_bytes": len(back_bytes), "original_bytes": len(original.model_bytes)}
            # alternate them so machine drift hits all alike
            times: dict[str, list[float]] = {k: [] for k in runs}
            for _ in range(5):
                for k, f in runs.items():
                    times[k].append(median_ms(f))
            out[fmt] = {"seconds": report["seconds"], "route": report.get("route", report.get("reason")),
                        **{k: float(np.median(v)) for k, v in times.items()}, **extra}
    return out


def export_lines(cells: list[Cell]) -> list[str]:
    """The export check: each ok cell's candidates exported as ``optim export`` writes them
    (TorchScript for torch candidates, ONNX for ONNX Runtime ones), scored on the test rows."""
    checks = [(c, e) for c in cells if c.status == "ok" for e in c.exports]
    ok_cells = [c for c in cells if c.status == "ok"]
    unchecked = sum(not c.exports for c in ok_cells)
    if not checks:
        return []
    within = [(c, e) for c, e in checks if e.get("delta_points") is not None and e["delta_points"] <= 1.0]
    formats = collections.Counter(e.get("format") for _, e in checks if e.get("format"))
    worst = max((e["delta_points"] for _, e in checks if e.get("delta_points") is not None), default=0.0)
    share = 100 * len(within) / len(checks)
    lines = ["", f"**Export check: {len(within)} of {len(checks)} exported candidates ({share:.1f}%) "
             f"reproduce the table's metric within 1 point** (|Δ accuracy| or |Δ R²| × 100 on the test rows; largest "
             f"|Δ| {worst:.2f} points) — each ok cell's candidates saved to a candidate folder, read back and exported "
             f"with optim's export code (`optim.export`, as `optim export` does, which checks the file against the "
             f"candidate on 64 rows): " + ", ".join(f"{k} {v}" for k, v in formats.most_common())
             + (f"; {unchecked} ok cells made no candidate to export or were logged before the check" if unchecked
                else "") + "."]
    bad = [(c, e) for c, e in checks if (c, e) not in within]
    for c, e in bad[:20]:
        why = (f"{e['format']}: Δ {e['delta_points']:.2f} points" if e.get("delta_points") is not None
               else e.get("error", "no export"))
        lines.append(f"- not within: {c.model}/{c.format}/`{c.technique}`: {why[:200]}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument("--models", default="")
    parser.add_argument("--skip-matrix", action="store_true")
    parser.add_argument("--log", type=Path, help="JSON lines, one per cell as it runs; cells already in it are "
                        "not run again (resume)")
    parser.add_argument("--also-log", type=Path, action="append", default=[],
                        help="another process's --log, merged into the report (models split across processes)")
    parser.add_argument("--r18", type=Path, help="JSON file of the ResNet-18 figures: read when it exists, "
                        "else measured (first) and written")
    parser.add_argument("--skip-r18", action="store_true")
    args = parser.parse_args()
    models = tuple(m for m in MODELS if not args.models or m.name in args.models.split(","))
    warnings.simplefilter("ignore")
    conv: dict = {}
    if args.r18 and args.r18.exists():
        conv = json.loads(args.r18.read_text())
    elif not args.skip_r18:
        load_r18 = os.getloadavg()[0]
        conv = {"load": load_r18, "formats": resnet18_conversion()}  # first: what the conversion targets are about
        print(json.dumps(conv), file=sys.stderr, flush=True)
        if args.r18:
            args.r18.write_text(json.dumps(conv))
    load_before = os.getloadavg()
    t0 = time.time()

    def read(path: Path | None) -> list[Cell]:
        return [Cell(**{**(d := json.loads(line)), "exports": tuple(d.get("exports") or ())})
                for line in path.read_text().splitlines()] if path and path.exists() else []

    cells = [c for c in read(args.log) if c.model in {m.name for m in models}]
    others = [c for path in args.also_log for c in read(path)]
    log = args.log.open("a") if args.log else None

    def on_cell(cell: Cell) -> None:
        if log is not None:
            log.write(json.dumps(dataclasses.asdict(cell)) + "\n")
            log.flush()

    with tempfile.TemporaryDirectory() as tmp:
        for mm in () if args.skip_matrix else models:  # one model at a time, with progress on stderr
            cells += run_matrix(Path(tmp), (mm,), FORMATS, done=frozenset((c.model, c.format, c.technique)
                                                                         for c in cells), on_cell=on_cell)
            print(f"{mm.name}: {sum(c.status == 'ok' for c in cells)} of {len(cells)} ok so far, "
                  f"{time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    seconds = time.time() - t0
    load_after = os.getloadavg()
    cells += [c for c in others if (c.model, c.format, c.technique) not in {(x.model, x.format, x.technique)
                                                                          for x in cells}]
    cells.sort(key=lambda c: ([m.name for m in MODELS].index(c.model), FORMATS.index(c.format)))
    env = environment_info()
    n = len(cells)
    ok = sum(c.status == "ok" for c in cells)
    n_models = len({c.model for c in cells})
    status = collections.Counter(c.status for c in cells)
    lines = [
        "## Applicability matrix (every technique × user models × formats)",
        "",
        f"Command: `nice -n 10 .venv/bin/python benchmarks/matrix.py` · date {date.today()} · machine: "
        f"{env['cpu_model']}, {env['cpu_logical_cores']} logical cores (shared), flags of interest: "
        f"{' '.join(env['cpu_flags']) or 'none'} · load average (1 min) {load_before[0]:.1f} at the start, "
        f"{load_after[0]:.1f} at the end of the matrix · {n_models} models × {len(FORMATS)} formats × "
        f"{n // max(1, n_models * len(FORMATS))} techniques = {n} cells ({seconds:.0f} s in this process). Models "
        "and formats: "
        "`tests/matrix_models.py`; each technique runs its quick config (a few training steps) on the loaded model "
        "(`huffman` after `cluster`, the recipe it needs: its `supports()` refuses unclustered weights).",
        "",
        f"**{ok} of {n} cells ok ({100 * ok / max(1, n):.1f}%)**; refused with a reason: {status['refused']}; "
        f"failed at run time: {status['failed']}; crashed: {status['crashed']}. (Issue 12's starting point on a "
        "similar matrix: 83 of 480, 17%.)",
        "",
        "| format | ok | share |", "| --- | --- | --- |",
    ]
    for fmt in FORMATS:
        sub = [c for c in cells if c.format == fmt]
        k = sum(c.status == "ok" for c in sub)
        lines.append(f"| {fmt} | {k} / {len(sub)} | {100 * k / max(1, len(sub)):.0f}% |")
    lines += ["", "| technique | ok | share | not ok (model/format: reason) |", "| --- | --- | --- | --- |"]
    for tech in dict.fromkeys(c.technique for c in cells):
        sub = [c for c in cells if c.technique == tech]
        k = sum(c.status == "ok" for c in sub)
        reasons = collections.Counter(f"{c.status}: {c.detail[:110]}" for c in sub if c.status != "ok")
        why = "; ".join(f"{r} (×{m})" for r, m in reasons.most_common(3)).replace("|", "/")
        lines.append(f"| `{tech}` | {k} / {len(sub)} | {100 * k / len(sub):.0f}% | {why} |")
    lines += export_lines(cells)
    if conv:
        lines += ["", "Conversion of a full-size torchvision ResNet-18 (3×224×224) to the editable graph (target "
                  "≤ 3 s), and batch-1 latency of the converted fp32 graph vs the original (target within 10%; "
                  f"median of 5 alternating rounds of 20 runs, 1 thread; load average {conv['load']:.1f} when it "
                  "started):", "", "| format | route | seconds | original ms | graph ms | ratio |",
                  "| --- | --- | --- | --- | --- | --- |"]
    for fmt, r in conv.get("formats", {}).items():
        lines.append(f"| {fmt} | {r['route']} | {r['seconds']:.1f} | {r['original_ms']:.1f} | {r['graph_ms']:.1f} | "
                     f"{r['graph_ms'] / r['original_ms']:.2f}× |")
    back = conv.get("formats", {}).get("onnx", {})
    if "back_ms" in back:
        lines += ["", "ONNX upload, as its variants run (`optim.parent_runtime`): the converted graph exported back "
                  "to ONNX (TorchScript exporter, checked against PyTorch within 1e-4 + 1e-3·|y|) and run in ONNX "
                  "Runtime with the original's providers and graph optimization, same rounds:", "",
                  "| original in ONNX Runtime ms | graph in PyTorch ms | exported back, in ONNX Runtime ms | ratio "
                  "(back / original) | export + check s | max abs diff | file bytes (original → back) |",
                  "| --- | --- | --- | --- | --- | --- | --- |",
                  f"| {back['original_ms']:.1f} | {back['graph_ms']:.1f} | {back['back_ms']:.1f} | "
                  f"{back['back_ms'] / back['original_ms']:.2f}× | {back['back_seconds']:.1f} | "
                  f"{back['back_max_abs_diff']:.2g} | {back['original_bytes']:,} → {back['back_bytes']:,} |"]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
