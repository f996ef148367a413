"""What following a run costs: CPU of the dashboard (Streamlit server + headless Chromium) while the
Run page shows a run that is being measured.

A stand-in worker (this script) writes progress events four times a second, a log line a second
and a row now and then to a run it holds as ``running``, exactly as the runner does; the served
dashboard follows it on the Run page in Debian's Chromium. The script reads the CPU time the
server process and the browser's processes used over a window and reports it as a share of one
core. Nothing here depends on an idle machine: CPU time, not wall time, is what is counted.

    .venv/bin/python benchmarks/polling.py [--seconds 60] [--root DIR] [--out benchmarks/results/polling.md]

``--root`` serves another checkout of the app (e.g. an older commit, for contrast) against the
same store; the stand-in worker is always this checkout's.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import emit  # noqa: E402 (needs the sys.path line above)
from optim import jobs  # noqa: E402 (needs the sys.path line above)
from optim.store import Store  # noqa: E402 (needs the sys.path line above)

CHROMIUM = os.environ.get("OPTIM_E2E_CHROMIUM", "/usr/bin/chromium")
RECIPES = ["quantize-dynamic", "prune-magnitude:sparsity=0.5|0.9", "onnx-runtime", "distill", "half"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stand_in_worker(store: Store, run_id: str, stop: threading.Event) -> None:
    """Progress 4×/s, a log line 1×/s, a row every 10 s: the runner's own write pattern."""
    i = 0
    while not stop.wait(0.25):
        i += 1
        cid = f"c{1 + (i // 40) % 6}"
        store.progress(run_id, cid, "step 1/1 prune-magnitude", (i % 40) / 40, f"epoch {i % 40}/40")
        store.update_run(run_id, progress=min(0.99, i / 2000), message=f"{cid} fine-tuning")
        if i % 4 == 0:
            store.log(run_id, f"{cid} epoch {i % 40}/40 loss 0.{i % 97:02d}", cid)
        if i % 40 == 0:
            store.put_row(run_id, {"candidate_id": cid, "recipe": RECIPES[(i // 40) % len(RECIPES)], "status": "ok",
                                   "metric_value": 0.97, "size_bytes": 100_000, "latency_ms_p50_b1": 0.05})


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def measure(root: Path, seconds: float, finished: bool = False) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="optim-polling-"))
    store = Store(home / "optim.db")
    spec = {"model": "sample:digits-mlp", "data": "sample:digits", "recipes": RECIPES, "name": "polling"}
    run_id = store.create_run(spec, plan=RECIPES[:1] + ["prune-magnitude:sparsity=0.5", "prune-magnitude:sparsity=0.9"]
                              + RECIPES[2:], **jobs.owner())
    store.claim(run_id, **jobs.owner())
    store.put_row(run_id, {"candidate_id": "c0", "recipe": "baseline", "status": "ok", "metric_value": 0.97})
    if finished:  # the floor: the same page with nothing to refresh
        store.finish_if_active(run_id, "cancelled")
    stop = threading.Event()
    writer = threading.Thread(target=_stand_in_worker, args=(store, run_id, stop), daemon=True)
    if not finished:
        writer.start()
    port = _free_port()
    env = dict(os.environ, OPTIM_HOME=str(home), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("streamlit")), "run", "app/streamlit_app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{url}/run")
            page.get_by_role("button", name="Cancel run").wait_for(timeout=120_000)
            time.sleep(5)  # past the first render: the steady state is what is counted
            me = psutil.Process()
            chrome = [p for p in me.children(recursive=True) if "chrom" in p.name().lower()]
            srv = [psutil.Process(server.pid)]
            s0, b0, t0 = _cpu(srv), _cpu(chrome), time.time()
            time.sleep(seconds)
            s1, b1, t1 = _cpu(srv), _cpu(chrome), time.time()
            browser.close()
    finally:
        stop.set()
        server.terminate()
        server.wait(15)
    wall = t1 - t0
    return {"server": 100 * (s1 - s0) / wall, "browser": 100 * (b1 - b0) / wall, "seconds": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app is served")
    ap.add_argument("--label", default="this checkout")
    ap.add_argument("--finished", action="store_true", help="a finished run (nothing refreshes): the floor")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    r = measure(args.root.resolve(), args.seconds, args.finished)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    text = (f"| {args.label} | {r['server']:.1f}% | {r['browser']:.1f}% | {r['server'] + r['browser']:.1f}% |"
            f" {r['seconds']:.0f} s |\n\nCommand: `.venv/bin/python benchmarks/polling.py --seconds {args.seconds:g}`"
            f" · date {time.strftime('%Y-%m-%d')} · {cpu}, {os.cpu_count()} logical cores")
    emit(text, args.out)


if __name__ == "__main__":
    main()
