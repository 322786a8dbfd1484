"""The typed configuration: every preset validates; every bad parameter fails naming itself."""

import math

import pytest
from hypothesis import given, settings, strategies as st

from metasae_utils import book
from metasae_utils.presets import FIELDS, Config, ConfigError, available_presets, resolve, validate


def test_required_presets_exist_and_validate():
    names = available_presets()
    for required in ("offline", "ci", "gpt2-paper", "gemma-scope"):
        assert required in names
    for name in names:
        cfg = resolve(name)
        assert isinstance(cfg, Config) and cfg.description


def test_unknown_preset_names_allowed_ones():
    with pytest.raises(ConfigError, match=r"'preset' = 'ofline'.*allowed: .*offline.*Did you mean 'offline'"):
        resolve("ofline")


def test_misspelled_parameter_is_named_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown parameter 'n_train_token'.*Did you mean 'n_train_tokens'"):
        resolve("ci", n_train_token=5000)


@pytest.mark.parametrize("name, value, pattern", [
    ("n_train_tokens", "many", r"'n_train_tokens' must be an integer"),
    ("n_train_tokens", 2.5, r"'n_train_tokens' must be an integer"),
    ("n_train_tokens", -5, r"'n_train_tokens' = -5 is out of range; allowed: 1000"),
    ("lr", 0.0, r"'lr' = 0.0 is out of range"),
    ("lr", math.nan, r"'lr' must be a finite number"),
    ("lr", math.inf, r"'lr' must be a finite number"),
    ("dtype", "float16", r"'dtype' = 'float16' is not allowed; allowed: auto, float32, bfloat16"),
    ("architecture", "topk", r"'architecture' = 'topk' is not allowed; allowed: standard, batchtopk"),
    ("widths", [128, 64], r"'widths' = \[128, 64\] must be strictly increasing"),
    ("widths", [], r"'widths' must be a non-empty list"),
    ("widths", [64, 0], r"'widths\[1\]' = 0 is out of range"),
    ("hook", "blocks.3.resid", r"'hook' = 'blocks.3.resid' is not a hook"),
    ("model_batch_size", True, r"'model_batch_size' must be an integer"),
])
def test_bad_values_fail_naming_the_parameter(name, value, pattern):
    with pytest.raises(ConfigError, match=pattern):
        resolve("ci", **{name: value})


def test_pretrained_family_needs_release_and_ids():
    with pytest.raises(ConfigError, match="'sae_release' and 'sae_ids' are required"):
        resolve("ci", family="pretrained")


def test_overrides_apply_and_none_keeps_preset_value():
    cfg = resolve("ci", n_train_tokens=5000, seed=None)
    assert cfg.n_train_tokens == 5000 and cfg.seed == resolve("ci").seed


def test_notebook_configure_catches_injected_misspelling():
    before = {"book", "preset"}
    ns = {"book": book, "preset": "ci", "n_evl_tokens": 100, "_i3": "history"}
    with pytest.raises(ConfigError, match="unknown parameter 'n_evl_tokens'.*Did you mean 'n_eval_tokens'"):
        book.configure("test", book.new_names(ns, before - {"preset"}))


INT_FIELDS = [n for n, f in FIELDS.items() if f.type in ("int", int) and f.metadata.get("lo") is not None]


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(INT_FIELDS), value=st.integers(min_value=-10**12, max_value=10**12))
def test_int_fields_accept_exactly_their_range(name, value):
    meta = FIELDS[name].metadata
    inside = meta["lo"] <= value <= meta["hi"]
    try:
        validate({**resolve("ci").as_dict(), name: value})
    except ConfigError as e:
        assert name in str(e)
        assert not inside or "must be at least" in str(e) or "strictly" in str(e)
    else:
        assert inside


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(FIELDS)), value=st.one_of(st.none(), st.text(max_size=5), st.floats(),
                                                              st.lists(st.integers(), max_size=3)))
def test_any_value_either_validates_or_names_the_parameter(name, value):
    try:
        validate({**resolve("ci").as_dict(), name: value})
    except ConfigError as e:
        assert name in str(e) or "'widths'" in str(e) or "'sae_" in str(e) or "train_batch_size" in str(e)
