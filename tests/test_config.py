from typing import Literal

import pytest
from pydantic import Field, ValidationError

from optim.config import TechniqueConfig, describe_fields, parse_value
from optim.errors import ConfigError


class Demo(TechniqueConfig):
    bits: int = Field(5, ge=1, le=8, description="bits")
    sparsity: float = Field(0.5, ge=0.0, lt=1.0, description="share zeroed")
    mode: Literal["a", "b"] = Field("a", description="mode")
    flag: bool = Field(False, description="flag")
    limit: int | None = Field(None, ge=1, description="optional")


def test_defaults_and_json_round_trip():
    cfg = Demo.build("demo")
    assert cfg.bits == 5 and cfg.mode == "a"
    again = Demo.from_json(Demo.build("demo", bits=3, limit=7).to_json())
    assert (again.bits, again.limit) == (3, 7)


def test_frozen():
    cfg = Demo.build("demo")
    with pytest.raises(ValidationError, match="frozen"):
        cfg.bits = 3  # type: ignore[misc]


@pytest.mark.parametrize("values, words", [
    ({"bits": 0}, ["bits=0", "1", "8"]),
    ({"sparsity": 1.0}, ["sparsity=1.0", "< 1.0"]),
    ({"mode": "c"}, ["mode", "a, b"]),
    ({"nope": 1}, ["unknown setting 'nope'", "bits"]),
])
def test_errors_name_setting_rule_and_value(values, words):
    with pytest.raises(ConfigError) as info:
        Demo.build("demo", **values)
    msg = str(info.value)
    assert msg.startswith("demo:")
    for w in words:
        assert w in msg


def test_from_strings_parses_types():
    cfg = Demo.from_strings("demo", {"bits": "6", "sparsity": "0.25", "flag": "true", "limit": "none", "mode": "b"})
    assert (cfg.bits, cfg.sparsity, cfg.flag, cfg.limit, cfg.mode) == (6, 0.25, True, None, "b")
    with pytest.raises(ConfigError, match="bits"):
        Demo.from_strings("demo", {"bits": "six"})


def test_spec_lists_only_changed_settings():
    assert Demo.build("d").spec() == ""
    assert Demo.build("d", bits=3, flag=True).spec() == "bits=3,flag=True"


def test_describe_fields_gives_kinds_bounds_and_choices():
    info = {f.name: f for f in describe_fields(Demo)}
    assert (info["bits"].kind, info["bits"].low, info["bits"].high) == ("int", 1, 8)
    assert info["sparsity"].high == 1.0 and info["sparsity"].high_inclusive is False
    assert info["mode"].choices == ("a", "b")
    assert info["flag"].kind == "bool" and info["limit"].kind == "optional_int"


def test_parse_value_keeps_unparseable_for_pydantic():
    assert parse_value("abc", int) == "abc"
    assert parse_value("3.0", int) == 3


def test_explicit_default_stays_in_the_label():
    assert Demo.build("d", bits=5).spec() == "bits=5"
    assert Demo.from_strings("d", {"sparsity": "0.5"}).spec() == "sparsity=0.5"
