"""Every registered technique passes the conformance suite on a bundled sample it supports."""

import pytest

from optim.registry import all_techniques, get
from optim.testing import check_config, check_technique

SAMPLES = ["digits-mlp", "breast-cancer-mlp", "digits-cnn", "diabetes-mlp"]
TECHNIQUES = all_techniques()


@pytest.mark.parametrize("technique", TECHNIQUES, ids=[t.name for t in TECHNIQUES])
def test_config_conformance(technique):
    check_config(technique)


@pytest.mark.parametrize("technique", TECHNIQUES, ids=[t.name for t in TECHNIQUES])
def test_apply_conformance(technique, load_sample, ctx_for):
    for name in SAMPLES:
        candidate, splits = load_sample(name)
        for prior in technique.requires:  # e.g. cluster before huffman
            before = get(prior)
            if before.supports(candidate) is None:
                candidate = before.run(candidate, before.config(**before.fast_config), ctx_for(splits))[0]
        if technique.supports(candidate) is None:
            break
    else:
        pytest.skip(f"{technique.name} supports none of the bundled samples {SAMPLES}")
    outs = check_technique(technique, candidate, ctx_for(splits))
    assert len(outs) >= 1
