"""What every benchmark script shares: the bundled models, test accuracy, and printing its section
for RESULTS.md. Scripts put ``benchmarks/`` and the repository root on ``sys.path`` first."""

from __future__ import annotations

import tempfile
from pathlib import Path


def emit(text: str, out: Path | None) -> None:
    """Print the section and, with ``--out``, write it (then ``collect_results.py`` folds it in)."""
    print("\n" + text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text if text.endswith("\n") else text + "\n")


def accuracy(candidate, split) -> float:
    """Share of ``split``'s rows the classifier gets right."""
    return float((candidate.predict(split.X).argmax(1) == split.y).mean())


def load_or_train(name: str):
    """(candidate, splits, origin): the bundled sample, or (until it is bundled) the same architecture
    trained here on the digits."""
    from optim.errors import OptimError
    from optim.io.models import load_sample

    try:
        return load_sample(name) + ("bundled sample",)
    except OptimError:
        import torch

        from optim.archs import build_arch
        from optim.candidate import Candidate
        from optim.io.datasets import load_dataset

        splits = load_dataset("sample:digits").splits()
        torch.manual_seed(0)
        module = train_cached(build_arch(name, 64, 10), name, splits)
        return Candidate(module, "classification", (64,), 10), splits, "trained here (30 epochs): not yet bundled"


def train_cached(module, name: str, splits, epochs: int = 30, single_thread: bool = False):
    """``module`` trained ``epochs`` epochs on ``splits`` (weights cached in the temp dir under ``name``,
    shared by the scripts). ``single_thread``: on a shared 2-core machine one thread trains a small
    model with far less CPU time."""
    import torch

    from optim.training import TrainSettings, fit

    cache = Path(tempfile.gettempdir()) / f"optim-bench-{name}.pt"
    if cache.exists():
        module.load_state_dict(torch.load(cache))
    else:
        threads = torch.get_num_threads()
        if single_thread:
            torch.set_num_threads(1)
        try:
            fit(module, splits.train, splits.val, splits.task,
                TrainSettings(epochs=epochs, lr=3e-3, scheduler="cosine"))
        finally:
            torch.set_num_threads(threads)
        torch.save(module.state_dict(), cache)
    return module.eval()
