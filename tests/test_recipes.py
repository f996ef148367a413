import pytest

from optim.errors import ConfigError
from optim.experiment import ExperimentSpec, parse_recipe


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
