import pytest

from optim.errors import ConfigError
from optim.experiment import ExperimentSpec
from optim.recipe import parse_recipe


def test_chain_parses_in_order():
    [r] = parse_recipe("prune-magnitude:sparsity=0.9,finetune_epochs=2+quantize-dynamic")
    assert [s.technique for s in r.steps] == ["prune-magnitude", "quantize-dynamic"]
    assert r.steps[0].config.sparsity == 0.9 and r.steps[0].config.finetune_epochs == 2
    assert r.spec == "prune-magnitude:sparsity=0.9,finetune_epochs=2+quantize-dynamic"


def test_sweep_expands_one_recipe_per_value():
    recipes = parse_recipe("prune-magnitude:sparsity=0.5|0.7|0.9")
    assert [r.steps[0].config.sparsity for r in recipes] == [0.5, 0.7, 0.9]


@pytest.mark.parametrize("spec, words", [
    ("nope", ["unknown technique 'nope'"]),
    ("prune-magnitude:sparsity=1.5", ["sparsity=1.5", "0.99"]),
    ("prune-magnitude:colour=red", ["unknown setting 'colour'", "sparsity"]),
    ("prune-magnitude:sparsity", ["key=value"]),
    ("prune-magnitude:sparsity=0.1,sparsity=0.2", ["given twice"]),
    ("", ["empty recipe"]),
])
def test_bad_recipes_fail_before_work(spec, words):
    with pytest.raises(ConfigError) as info:
        parse_recipe(spec)
    for w in words:
        assert w in str(info.value)


def test_spec_validates_all_recipes_and_settings():
    with pytest.raises(ConfigError, match="threads"):
        ExperimentSpec(model="m", data="d", threads=0).validate()
    spec = ExperimentSpec(model="m", data="d", recipes=["quantize-dynamic", "prune-magnitude:sparsity=0.5|0.9"])
    assert len(spec.validate()) == 3
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec


MILLION = ("select-kbest:k=" + "|".join(str(k) for k in range(1, 1001))
           + "+prune-magnitude:sparsity=" + "|".join(f"{i / 1000:.3f}" for i in range(1000)))


def test_variants_are_counted_without_expanding():
    from optim.recipe import count_variants

    assert count_variants("prune-magnitude:sparsity=0.5|0.7|0.9+cluster:bits=4|5") == 6
    assert count_variants(["quantize-dynamic", "prune-magnitude:sparsity=0.5|0.9"]) == 3
    assert count_variants(MILLION) == 10**6


def test_a_million_variants_are_refused_before_any_work():
    """Refused with the limit in the message, before any technique is imported, in a small process."""
    import subprocess
    import sys

    code = f"""
import sys
from optim import ConfigError, ExperimentSpec, parse_recipe
spec = {MILLION!r}
for attempt in (lambda: parse_recipe(spec), lambda: ExperimentSpec(model="m", data="d", recipes=[spec])):
    try:
        attempt()
    except ConfigError as err:
        print("refused:", err.one_line())
    else:
        print("accepted")
print("techniques loaded:", "optim.techniques" in sys.modules)
# VmHWM: this process's peak resident memory (ru_maxrss would carry over the forking parent's).
print("peak_kb:", next(ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmHWM")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    lines = out.splitlines()
    refused = [ln for ln in lines if ln.startswith("refused:")]
    assert len(refused) == 2, out
    for line in refused:
        assert "1,000,000 variants" in line and "limit is 256 variants per run" in line
    assert "techniques loaded: False" in lines
    peak_mb = int(lines[-1].split()[-1]) / 1024
    assert peak_mb < 300, peak_mb


def test_the_variant_limit_is_a_run_setting():
    spec = "prune-magnitude:sparsity=" + "|".join(f"{i / 100:.2f}" for i in range(1, 11))  # 10 variants
    with pytest.raises(ConfigError, match="limit is 5 variants"):
        ExperimentSpec(model="m", data="d", recipes=[spec], max_variants=5)
    assert len(ExperimentSpec(model="m", data="d", recipes=[spec], max_variants=10).validate()) == 10
    with pytest.raises(ConfigError, match="limit is 5 variants"):
        parse_recipe(spec, max_variants=5)
