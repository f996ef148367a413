"""The ``optim`` command (also ``python -m optim``).

    optim samples
    optim techniques [--json]
    optim run --model REF --data REF [--target COL] [--recipe SPEC]... [--out DIR]
              [--threads N] [--batch N] [--seed N] [--no-queue]
    optim export --run DIR|ID --candidate ID --format onnx|torchscript|safetensors --out FILE [--force]
    optim runs

Every user error prints one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from optim import OptimError, redact_secrets

SUMMARY_COLUMNS = ["candidate_id", "recipe", "status", "metric_value", "size_bytes", "size_ratio",
                   "latency_ms_p50_b1", "speedup_b1", "energy_j_per_1k", "pareto", "error"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse's own convention)
        self.exit(2, f"optim: error: {message} (see 'optim {self.prog.split()[-1]} --help')\n"
                  if " " in self.prog else f"optim: error: {message} (see 'optim --help')\n")


def _finite_float(text: str) -> float:
    """An argparse type: a finite number (``nan`` and ``inf`` parse as floats but mean nothing here)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; give e.g. 0.5")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="optim", description="Compare ML model optimizations: accuracy, size, latency, energy.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("samples", help="bundled models and datasets, one line each")

    t = sub.add_parser("techniques", help="every registered technique with its settings")
    t.add_argument("--json", action="store_true", help="machine-readable: name, family, config JSON schema")

    r = sub.add_parser("run", help="measure a baseline and each recipe's variants")
    r.add_argument(
        "--model",
        required=True,
        help="model file (.pt TorchScript, .pt2, .onnx, .safetensors/.pth with --arch) or sample:NAME",
    )
    r.add_argument("--data", required=True, help="dataset (CSV, NPZ with X and y, image zip) or sample:NAME")
    r.add_argument("--target", help="target column of a CSV")
    r.add_argument("--task", choices=["classification", "regression"], help="force the task (default: inferred)")
    r.add_argument("--arch", help="architecture for a state_dict/safetensors file: a bundled name or torchvision:NAME")
    r.add_argument("--recipe", action="append", default=[], metavar="SPEC",
                   help="technique[:key=value,...][+technique...]; key=a|b|c sweeps; repeat for more variants")
    r.add_argument("--out", help="folder for results.csv/json and candidate files (default: $OPTIM_HOME/runs/ID)")
    _add_run_settings(r)
    r.add_argument("--trust-pickle", action="store_true",
                   help="allow a full pickled nn.Module (torch.save(model)); unpickling runs arbitrary code")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--no-queue", action="store_true",
                   help="start now even if another run is being measured (both runs' timings then "
                        "suffer); by default a run waits for the ones started before it")

    e = sub.add_parser("export", help="write one candidate of a run as a deployable model + model card")
    e.add_argument("--run", required=True, help="run folder (the --out of optim run) or run id")
    e.add_argument("--candidate", required=True, help="candidate id, e.g. c2 (see results.csv)")
    e.add_argument("--format", required=True, choices=["onnx", "torchscript", "safetensors"])
    e.add_argument("--out", required=True, help="output file (its model card goes beside it: NAME.card.md/.json)")
    e.add_argument("--force", action="store_true", help="overwrite an existing --out file and its model cards")

    runs = sub.add_parser("runs", help="past runs in the store")
    for parser in (r, e, runs):
        parser.add_argument("--store", default="", metavar="URL",
                            help="the store of runs and history: a SQLite file or a database URL such as "
                                 "postgresql://USER:PASSWORD@HOST:PORT/DB shared by a team (default: "
                                 "$OPTIM_STORE_URL, else $OPTIM_HOME/optim.db); run folders go under "
                                 "$OPTIM_ARTIFACTS (default: OPTIM_HOME)")

    w = sub.add_parser("worker", help=argparse.SUPPRESS)
    w.add_argument("run_id")
    w.add_argument("--db")
    return p


def _add_run_settings(parser: argparse.ArgumentParser) -> None:
    """One flag per RunSettings field that declares one: type, default and help come from the field."""
    from optim import RunSettings, cli_flags

    defaults = RunSettings.defaults()
    for name, flag, field in cli_flags():
        default = defaults[name]
        if field.annotation is bool:
            # A setting on by default is turned off with --no-<flag>.
            parser.add_argument("--no-" + flag.removeprefix("--"), dest=name, action="store_false", default=default,
                                help=f"skip: {field.description}")
            continue
        shown = "" if "(default:" in (field.description or "") else f" (default: {default})"
        kind = _finite_float if field.annotation is float else field.annotation
        parser.add_argument(flag, dest=name, type=kind, default=default,
                            metavar=name.upper(), help=f"{field.description}{shown}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not os.environ.get("OPTIM_WARNINGS"):
        # Library deprecation chatter (torch.ao, TorchScript, CodeCarbon) is not the user's to act
        # on and would break the one-line error contract; OPTIM_WARNINGS=1 shows it.
        import warnings

        warnings.simplefilter("ignore")
        # The same for PyTorch's C++ warnings (e.g. loading a TorchScript int8 model), which bypass
        # Python's filters; read when torch is first imported, which happens below this line.
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's exit flush
        return code
    except BrokenPipeError:
        # `optim runs | head`: the reader left, as it may. Stop quietly like other Unix tools
        # (exit 128 + SIGPIPE); stdout goes to /dev/null so the exit-time flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OptimError as err:
        print(f"optim: error: {err.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("optim: interrupted; finished rows are saved.", file=sys.stderr)
        return 130


def cmd_samples(args: argparse.Namespace) -> int:
    from optim import list_sample_datasets, list_samples

    for s in list_samples():
        metric = s.get("metric_name", "metric")
        print(
            f"model  sample:{s['name']:<20} data={s.get('dataset', '?'):<22} "
            f"{metric}={s.get('metric_value', float('nan')):.4f}  "
            f"params={s.get('params', '?')}  {s.get('description', '')}"
        )
    for d in list_sample_datasets():
        if isinstance(d, dict):
            name, desc, task, rows, feats = (
                d["name"],
                d.get("description", ""),
                d.get("task"),
                d.get("n_rows"),
                d.get("n_features"),
            )
        else:
            name, desc, task, rows, feats = d
        name = name if str(name).startswith("sample:") else f"sample:{name}"
        print(f"data   {name:<27} {task}, {rows} rows × {feats} features  {desc}")
    return 0


def cmd_techniques(args: argparse.Namespace) -> int:
    from optim import FAMILIES, all_techniques, describe_fields

    techs = all_techniques()
    if args.json:
        out = [{"name": t.name, "family": t.family, "summary": t.summary, "reference": t.reference,
                "needs_training_data": t.needs_training_data, "sweep_field": t.sweep_field,
                "config_schema": t.Config.model_json_schema()} for t in techs]
        print(json.dumps(out, indent=2, default=str))
        return 0
    for family, title in FAMILIES:
        members = [t for t in techs if t.family == family]
        print(f"{title}:")
        if not members:
            print("  (none registered yet)")
        for t in members:
            print(f"  {t.name:<18} {t.summary}")
            for f in describe_fields(t.Config):
                rng = ""
                if f.choices:
                    rng = " | ".join(map(str, f.choices))
                elif f.low is not None or f.high is not None:
                    rng = f"{f.low if f.low is not None else '-inf'} .. {f.high if f.high is not None else 'inf'}"
                print(f"      {f.name + '=' + str(f.default):<26} {rng:<30} {f.description}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from optim import ExperimentSpec, RunSettings, Store, run_experiment

    spec = ExperimentSpec(
        model=args.model, data=args.data, recipes=list(args.recipe), target=args.target, task=args.task,
        arch=args.arch, trust_pickle=args.trust_pickle,
        **{k: getattr(args, k) for k in RunSettings.model_fields},
    )
    spec.validate()  # every recipe checked before any work
    bars = _Progress(enabled=not args.quiet and sys.stderr.isatty())
    try:
        results = run_experiment(spec, store=Store(args.store or None), out_dir=args.out, on_event=bars.on_event,
                                 queue=not args.no_queue, external_storage=True)
    finally:
        bars.close()
    _print_summary(results.rows)
    print(f"\nstatus: {results.status}; results: {results.out_dir / 'results.csv'} (run id {results.run_id})")
    if spec.mlflow:
        print(f"MLflow: {len(results.rows)} candidate run(s) logged to {redact_secrets(spec.mlflow)}")
    failed = [r for r in results.rows if r.get("status") == "failed"]
    if failed:
        print(
            f"{len(failed)} of {len(results.rows) - 1} variant(s) failed; the others finished (see the error column)."
        )
    invalid = [r["candidate_id"] for r in results.rows if r.get("status") == "invalid"]
    if invalid:
        print(f"{', '.join(invalid)}: NaN or infinite outputs (status invalid); their metrics mean nothing "
              f"(see the error column).")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from optim import export_candidate

    run_dir, run_id = Path(args.run), None
    if not run_dir.is_dir():
        from optim import Store

        try:
            run_dir, run_id = Path(Store(args.store or None).run(args.run)["out_dir"]), args.run
        except KeyError:
            raise OptimError(f"--run {args.run!r}: no such folder or run id (see 'optim runs').") from None
    # A run id must find its own run in its folder (the folder may have been reused since).
    res = export_candidate(run_dir, args.candidate, args.format, args.out, run_id=run_id, force=args.force)
    print(f"wrote {res.path} ({res.path.stat().st_size} bytes), {res.card_md.name}, {res.card_json.name}")
    print(res.check)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    import time

    from optim import Store, jobs

    store = Store(args.store or None)
    for r in jobs.list_runs(store):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))
        print(
            f"{r['id']}  {when}  {r['status']:<9} rows={r['n_rows']:<3} {r['spec'].get('model')} on "
            f"{r['spec'].get('data')}  {r['out_dir']}"
        )
        if r["status"] == "queued":
            print(f"    {jobs.queue_position(store, r['id']).describe()}")
        elif r["status"] == "partial":
            counts = jobs.outcome(jobs.candidates(store, r["id"], r["status"]))
            print(
                f"    {counts['failed']} of {counts['total']} variant(s) failed (see the error column of results.csv)"
            )
        elif r["status"] == "failed" and r.get("error"):
            print(f"    {' '.join(str(r['error']).split())}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from optim import worker_main

    return worker_main(args.run_id, args.db)


COMMANDS = {"samples": cmd_samples, "techniques": cmd_techniques, "run": cmd_run, "export": cmd_export,
            "runs": cmd_runs, "worker": cmd_worker}


def _print_summary(rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    if not rows:
        return
    from optim import ratio_verdict

    df = pd.DataFrame(rows)
    if "speedup_b1" in df.columns:  # the interval decides what may be said, as on the dashboard
        df["speedup_b1"] = [v.text if (v := ratio_verdict(r, "speedup_b1")) else "" for r in rows]
    cols = [c for c in SUMMARY_COLUMNS if c in df.columns]
    with pd.option_context("display.max_columns", None, "display.width", 200, "display.max_colwidth", 48):
        print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


class _Progress:
    """A tqdm bar per candidate (its current step in the description) on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def on_event(self, event: dict[str, Any]) -> None:
        if event["type"] == "queued":  # shown even without bars: the user must know why nothing moves
            print(f"optim: {event['message']}; waiting (Ctrl-C gives up, --no-queue starts at once).",
                  file=sys.stderr, flush=True)
        if not self.enabled:
            return
        from tqdm import tqdm

        if event["type"] == "progress":
            cid = event["candidate_id"]
            bar = self.bars.get(cid)
            if bar is None:
                bar = self.bars[cid] = tqdm(total=100, desc=cid, position=len(self.bars), leave=True,
                                            file=sys.stderr, bar_format="{desc:<40} {bar} {percentage:3.0f}%")
            bar.set_description_str(f"{cid} {event.get('step', '')}"[:40])
            bar.n = int(100 * event.get("fraction", 0))
            bar.refresh()
        elif event["type"] == "row":
            bar = self.bars.get(event["candidate_id"])
            if bar is not None:
                bar.n = 100
                bar.set_description_str(f"{event['candidate_id']} {event['row'].get('status')}"[:40])
                bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
