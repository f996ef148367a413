"""Tests of optim.hardware, and a trained-sample helper shared with the adaptive/edge technique tests."""

from __future__ import annotations


def trained_sample(load_sample, name: str):
    """``load_sample(name)`` when the bundled samples are built; otherwise the same architecture
    trained here for a few epochs on the same splits (a stand-in while sample_models/ is empty)."""
    from optim.errors import OptimError

    try:
        return load_sample(name)
    except (OptimError, FileNotFoundError, KeyError):
        pass
    return _train(name)


_CACHE: dict[str, tuple] = {}


def _train(name: str):
    if name in _CACHE:
        return _CACHE[name]
    from sklearn.datasets import load_digits

    from optim.archs import build_arch, mlp
    from optim.candidate import Candidate
    from optim.dataset import Dataset
    from optim.training import TrainSettings, fit

    d = load_digits()
    ds = Dataset("digits", d.data.astype("float32"), d.target.astype("int64"), "classification",
                 class_names=tuple(str(c) for c in range(10)))
    splits = ds.splits()
    if name == "digits-mlp":
        X = splits.train.X
        module = mlp(64, (300, 100), 10, X.mean(0), X.std(0))
        epochs = 15
    else:
        import torch

        torch.manual_seed(0)
        module = build_arch(name, 64, 10)
        epochs = {"digits-cnn": 12, "digits-mobilenet": 6}.get(name, 10)
    import torch

    torch.manual_seed(0)
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # small models train fastest on one thread (and the CI box is shared)
    try:
        fit(module, splits.train, splits.val, "classification", TrainSettings(epochs=epochs, lr=2e-3))
    finally:
        torch.set_num_threads(old)
    cand = Candidate(model=module.eval(), task="classification", input_shape=(64,), num_outputs=10,
                     info={"sample": name})
    _CACHE[name] = (cand, splits)
    return _CACHE[name]


def apply_technique(technique: str, candidate, splits, workdir, **settings) -> list:
    """Run a registered technique once with one thread (module-scoped fixtures share the result)."""
    from optim.context import RunContext
    from optim.registry import get

    tech = get(technique)
    return tech.run(candidate, tech.config(**settings), RunContext(data=splits, threads=1, workdir=workdir))
