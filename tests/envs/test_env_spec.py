"""Spec strings, typed options and the errors of `envs.make` (no optional package needed)."""

import importlib.util

import numpy as np
import pytest

import envs
from envs.spec import Option, parse_spec, resolve_options


def test_parse_spec_splits_family_name_and_options():
    spec = parse_spec("gym:CartPole-v1?hide=1,3&autoreset=next_step")
    assert (spec.family, spec.name) == ("gym", "CartPole-v1")
    assert dict(spec.options) == {"hide": "1,3", "autoreset": "next_step"}
    assert str(spec) == "gym:CartPole-v1?hide=1,3&autoreset=next_step"
    assert parse_spec("dmlab:contributed/dmlab30/rooms_watermaze").name == \
        "contributed/dmlab30/rooms_watermaze"


@pytest.mark.parametrize("text", ["Breakout", "atari:", ":Breakout", "Atari:Breakout",
                                  "atari:Breakout?sticky", "atari:Breakout?sticky=",
                                  "atari:Breakout?a=1&a=2", "atari: Breakout", 42])
def test_malformed_specs_raise_value_error_naming_the_spec(text):
    with pytest.raises(ValueError, match="spec"):
        parse_spec(text)


TABLE = (Option("n", "int", 3, "an int", low=1),
         Option("p", "float", 0.0, "a prob", low=0.0, high=1.0),
         Option("flag", "bool", False, "a flag"), Option("ids", "ints", (), "ints", low=0),
         Option("mode", "str", "a", "a choice", choices=("a", "b")))


def test_options_convert_spec_strings_and_keywords():
    out = resolve_options(TABLE, {"n": "5", "flag": "yes", "ids": "1,3"}, {"p": 0.25,
                                                                            "mode": "b"}, "w")
    assert out == {"n": 5, "p": 0.25, "flag": True, "ids": (1, 3), "mode": "b"}
    assert resolve_options(TABLE, {}, {}, "w") == {"n": 3, "p": 0.0, "flag": False, "ids": (),
                                                   "mode": "a"}


@pytest.mark.parametrize("given, message", [
    ({"n": "x"}, r"option 'n' expects an integer, got 'x'"),
    ({"n": "0"}, r"option 'n' expects a value >= 1, got '0'"),
    ({"p": "1.5"}, r"option 'p' expects a value <= 1"),
    ({"flag": "maybe"}, r"option 'flag' expects a boolean"),
    ({"ids": "1,x"}, r"option 'ids' expects a comma-separated list of integers"),
    ({"mode": "c"}, r"option 'mode' expects one of \['a', 'b'\], got 'c'"),
    ({"nope": "1"}, r"unknown option\(s\) \['nope'\]; known options"),
])
def test_bad_options_raise_value_error_naming_option_expected_and_actual(given, message):
    with pytest.raises(ValueError, match=message):
        resolve_options(TABLE, given, {}, "w")


def test_option_in_spec_and_keyword_is_an_error_not_an_override():
    with pytest.raises(ValueError, match=r"given both in the spec and as keywords"):
        resolve_options(TABLE, {"n": "2"}, {"n": 4}, "w")


def test_make_rejects_unknown_family_and_bad_arguments():
    with pytest.raises(ValueError, match=r"unknown family 'nes'.*known families"):
        envs.make("nes:Mario")
    with pytest.raises(ValueError, match=r"num_envs: expected an integer >= 1, got 0"):
        envs.make("memory:cue", num_envs=0)
    with pytest.raises(ValueError, match=r"seed: expected an integer >= 0 or None, got -1"):
        envs.make("memory:cue", seed=-1)
    with pytest.raises(ValueError, match=r"memory:cue\?delay=-1.*'delay' expects a value >= 0"):
        envs.make("memory:cue?delay=-1")
    with pytest.raises(ValueError, match=r"unknown memory task 'recall'"):
        envs.make("memory:recall")


@pytest.mark.parametrize("family, package, words", [
    ("procgen", "procgen_gym", "3.13"), ("atari", "ale_py", "rtrl_ref[atari]"),
    ("gym", "gymnasium", "rtrl_ref[gym]"), ("popgym", "popgym", "rtrl_ref[popgym]")])
def test_missing_family_package_says_how_to_install(monkeypatch, family, package, words):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real_find_spec(name, *a))
    with pytest.raises(envs.MissingFamilyError, match=rf"{package}.*Install with:.*") as err:
        envs.make(f"{family}:whatever")
    assert words in str(err.value)
    assert isinstance(err.value, ImportError)


def test_env_lifecycle_errors_and_idempotent_close():
    env = envs.make("memory:cue", num_envs=2)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        env.step(np.zeros(2, dtype=np.int64))
    env.reset()
    with pytest.raises(RuntimeError, match=r"reset\(\) starts the stream once"):
        env.reset()
    env.close()
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.step(np.zeros(2, dtype=np.int64))
