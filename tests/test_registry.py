import pytest

from optim import registry
from optim.errors import ConfigError
from optim.techniques.base import Technique


def test_builtin_techniques_registered_with_known_families():
    techs = registry.all_techniques()
    names = [t.name for t in techs]
    assert "quantize-dynamic" in names and "prune-magnitude" in names
    assert len(names) == len(set(names))
    assert all(t.family in registry.FAMILY_NAMES for t in techs)


def test_unknown_technique_lists_known():
    with pytest.raises(ConfigError, match="unknown technique 'nope'.*quantize-dynamic"):
        registry.get("nope")


def test_duplicate_name_raises():
    class Dup(Technique):
        name = "quantize-dynamic"
        family = "quantization"

        def apply(self, candidate, config, ctx):
            return candidate

    with pytest.raises(ValueError, match="registered twice"):
        registry.register_technique(Dup)


def test_bad_family_raises():
    class Odd(Technique):
        name = "odd-one"
        family = "astrology"

        def apply(self, candidate, config, ctx):
            return candidate

    with pytest.raises(TypeError, match="family"):
        registry.register_technique(Odd)
