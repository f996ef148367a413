"""Making candidates on Ray: 8 fine-tuning candidates, one after another vs on 2 Ray workers.

    .venv/bin/python benchmarks/scale.py [--out benchmarks/results/scale.md] [--epochs N] [--repeats R]

What Ray parallelises is the *making* of candidates (``optim run --executor ray``): each recipe's
technique steps run as one Ray task (:func:`optim.executor.make_task`, the very function the
executor sends), 1 CPU and 1 torch thread each. The serial side runs the same function for the same
8 recipes in this process, one after another. Both sides are repeated in interleaved order
(serial, Ray, serial, Ray ...) so a change of machine load hits both alike; the table gives each
repeat and the median. The Ray cluster is started once (its start-up is reported, not counted:
a team's cluster is already running).

The projection to a larger cluster uses the measured per-task times: making N candidates on W
workers takes about ``ceil(N / W) × (median task time)`` plus the dispatch overhead measured here;
measurement stays on one node (the driver, so latencies compare) and takes the measured
per-candidate time × N whatever W is — the bottleneck once W is large.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import emit  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

N_CANDIDATES = 8
MODEL = "sample:digits-cnn"
WORKERS = 2


def recipes(epochs: int) -> list[str]:
    """8 fine-tuning candidates of the baseline: learning rates a sweep would try."""
    lrs = [1e-4, 2e-4, 3e-4, 5e-4, 7e-4, 1e-3, 2e-3, 3e-3][:N_CANDIDATES]
    return [f"retrain:init=finetune,epochs={epochs},lr={lr:g}" for lr in lrs]


def _warm() -> int:
    """A Ray task that imports what making a candidate needs (starting the worker process)."""
    import torch  # noqa: F401

    import optim.experiment  # noqa: F401

    return os.getpid()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scale.md")
    p.add_argument("--epochs", type=int, default=40, help="fine-tuning epochs per candidate")
    p.add_argument("--repeats", type=int, default=2, help="interleaved repeats of each side")
    args = p.parse_args()

    # Every Ray address on the loopback interface; the cluster is this machine's (2 CPUs here).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # A fresh OPTIM_HOME (Ray's session files, the tasks' work folders) unless one is given: short,
    # so Ray's unix sockets fit under it, and outside the checkout.
    if not os.environ.get("OPTIM_HOME"):
        import tempfile

        os.environ["OPTIM_HOME"] = tempfile.mkdtemp(prefix="optim-scale-")
    import psutil
    import ray

    from optim.evaluation.environment import environment_info
    from optim.executor import _connect, make_task, unpack
    from optim.experiment import ExperimentSpec, load_inputs

    spec = ExperimentSpec(model=MODEL, data="sample", recipes=recipes(args.epochs), threads=1,
                          latency_budget_s=0.2, energy_inferences=500, device_profiles=False).to_dict()
    ctx_settings = {"batch_size": 32, "max_batch": None, "external_storage": False}
    work = Path(os.environ["OPTIM_HOME"]) / "scale-work"
    env = environment_info()
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    _connect(ray, "ray")  # what --executor ray does: a local cluster, session files under OPTIM_HOME
    start_s = time.perf_counter() - t0
    n_cpus = int(ray.cluster_resources().get("CPU", 0))
    task = ray.remote(make_task)
    # Each worker process imports torch and optim once per run (per driver connection); that is
    # timed here and reported beside the table, so the repeats compare making with making.
    t0 = time.perf_counter()
    ray.get([ray.remote(_warm).options(num_cpus=1).remote() for _ in range(WORKERS)])
    warm_s = time.perf_counter() - t0

    serial_s: list[float] = []
    ray_s: list[float] = []
    task_s: list[float] = []
    outs = []
    for rep in range(args.repeats):
        t = time.perf_counter()
        for i, r in enumerate(recipes(args.epochs)):
            out = make_task(spec, r, ctx_settings, str(work / f"serial-{rep}-{i}"))
            task_s.append(out["optimize_s"])
        serial_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        refs = [task.options(num_cpus=1, max_retries=0, name=f"optim-make-r{i}")
                .remote(spec, r, ctx_settings, str(work / f"ray-{rep}-{i}"))
                for i, r in enumerate(recipes(args.epochs))]
        outs = ray.get(refs)
        ray_s.append(time.perf_counter() - t)
        print(f"repeat {rep + 1}: serial {serial_s[-1]:.1f} s, Ray {ray_s[-1]:.1f} s", file=sys.stderr)
    ray.shutdown()

    # Measuring stays on the driver: the static part (metric, size) per candidate, timed here.
    # Measuring stays on the driver: metric and size as each candidate arrives, then latency and
    # energy of all together in interleaved rounds (the run's settings: 0.2 s per latency figure).
    from optim.context import RunContext
    from optim.evaluation.measure import measure_static, measure_timing

    baseline, splits = load_inputs(ExperimentSpec.from_dict(spec))
    ctx = RunContext(data=splits, threads=1, workdir=work / "measure", latency_budget_s=0.2, energy_inferences=500)
    t = time.perf_counter()
    made = {f"c{j + 1}": unpack(out["candidates"][0], work / "measure" / f"m{j}") for j, out in enumerate(outs)}
    for cand in made.values():
        measure_static(cand, ctx)
    static_s = time.perf_counter() - t
    t = time.perf_counter()
    measure_timing({"c0": baseline, **made}, ctx, reference="c0")
    timing_s = time.perf_counter() - t
    measure_each_s = (static_s + timing_s) / len(made)
    load_after = os.getloadavg()

    task_s += [out["optimize_s"] for out in outs]  # the last Ray repeat's tasks, timed inside each
    med_serial, med_ray, med_task = statistics.median(serial_s), statistics.median(ray_s), statistics.median(task_s)
    # One task's wall time in the serial loop: loading the model and data, making, packing.
    per_task = med_serial / N_CANDIDATES
    overhead = max(0.0, med_ray - math.ceil(N_CANDIDATES / WORKERS) * per_task)
    lines = [
        "## Making candidates on Ray (`benchmarks/scale.py`)",
        "",
        f"Command: `python benchmarks/scale.py --epochs {args.epochs} --repeats {args.repeats}` · "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · CPU: {env.get('cpu_model')} "
        f"({env.get('cpu_logical_cores')} logical cores; flags {', '.join(env.get('cpu_flags', []))}) · "
        f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} · "
        f"other processes' CPU now: {psutil.cpu_percent(interval=0.5):.0f}%",
        "",
        f"{N_CANDIDATES} fine-tuning candidates of {MODEL} (`retrain:init=finetune,epochs={args.epochs},lr=…`, "
        f"8 learning rates), 1 torch thread each; serial = the same task function in one process; Ray = a local "
        f"cluster of {n_cpus} CPUs, one task per candidate (1 CPU each), so {WORKERS} at a time. "
        f"Interleaved repeats; not counted: cluster start-up ({start_s:.1f} s) and starting the {WORKERS} worker "
        f"processes (importing torch and optim, {warm_s:.1f} s, paid once per run).",
        "",
        "| side | " + " | ".join(f"repeat {i + 1} (s)" for i in range(args.repeats)) + " | median (s) | speed-up |",
        "|---|" + "---|" * args.repeats + "---|---|",
        "| serial | " + " | ".join(f"{s:.1f}" for s in serial_s) + f" | {med_serial:.1f} | 1.00× |",
        f"| Ray, {WORKERS} workers | " + " | ".join(f"{s:.1f}" for s in ray_s)
        + f" | {med_ray:.1f} | {med_serial / med_ray:.2f}× |",
        "",
        f"Per task: {per_task:.2f} s wall in the serial loop (loading model and data, making, packing), of "
        f"which the technique steps take a median {med_task:.2f} s over {len(task_s)} tasks (both sides); "
        f"Ray's dispatch and worker start-up beyond {math.ceil(N_CANDIDATES / WORKERS)} task times: "
        f"{overhead:.1f} s. Measuring on the driver: metric + size {static_s / len(made):.2f} s per candidate, "
        f"latency + energy rounds of all {len(made)} + baseline {timing_s:.1f} s: {measure_each_s:.2f} s per "
        f"candidate in all.",
        "",
        "Projection from these per-task times (making N on W workers = ceil(N/W) × task wall + the Ray "
        "overhead measured above; measuring stays on one node, N × per-candidate, whatever W):",
        "",
        "| workers W | making 8 (s) | making 64 (s) | measuring 64 on one node (s) | 64: speed-up vs serial |",
        "|---|---|---|---|---|",
    ]
    for w in (1, 2, 4, 8, 16, 64):
        make8 = math.ceil(8 / w) * per_task + (overhead if w > 1 else 0.0)
        make64 = math.ceil(64 / w) * per_task + (overhead if w > 1 else 0.0)
        meas64 = 64 * measure_each_s
        serial64 = 64 * per_task + meas64
        lines.append(f"| {w} | {make8:.1f} | {make64:.1f} | {meas64:.1f} | {serial64 / (make64 + meas64):.1f}× |")
    lines += [
        "",
        "Bottleneck: measurement runs on the single measurement node (so every latency is taken on the same "
        "hardware, in interleaved rounds); beyond a few workers the run is bounded by N × the per-candidate "
        "measuring time, not by the cluster. `--measure-on per-node` lifts that bound (each candidate timed on "
        "the node that made it, beside a baseline timed there) at the price of raw latencies that no longer "
        "compare across rows; Compare flags those rows.",
    ]
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
