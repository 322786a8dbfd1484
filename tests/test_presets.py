"""The typed configuration: every preset validates; every bad parameter fails naming itself."""

import math
import re

import pytest
from hypothesis import example, given, settings, strategies as st

from metasae_utils import book
from metasae_utils.presets import (FIELDS, PRESET_DIR, Config, ConfigError, available_presets, is_preset_file,
                                    preset_label, resolve, validate)


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


def _other_parameters(message: str, name: str) -> set:
    """The parameters other than ``name`` that an error message quotes (a cross-field rule names them)."""
    return (set(re.findall(r"'(\w+)'", message)) & set(FIELDS)) - {name}


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(INT_FIELDS), value=st.integers(min_value=-10**12, max_value=10**12))
@example(name="edit_k", value=2)  # in range, but not one of ci's edit_ks: a cross-field rejection
@example(name="train_batch_size", value=65536)  # in range, but more than ci's n_train_tokens
def test_int_fields_accept_exactly_their_range(name, value):
    """Out of range is always refused; in range is accepted unless a cross-field rule refuses it, naming the other
    parameter it conflicts with."""
    meta = FIELDS[name].metadata
    inside = meta["lo"] <= value <= meta["hi"]
    try:
        validate({**resolve("ci").as_dict(), name: value})
    except ConfigError as e:
        assert name in str(e)
        assert not inside or _other_parameters(str(e), name), str(e)
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


# -- a user's own preset file -------------------------------------------------------------------------------

def _user_preset(tmp_path, text):
    path = tmp_path / "my.yaml"
    path.write_text(text)
    return path


def test_user_preset_file_is_read_and_validated_like_a_bundled_one(tmp_path):
    import yaml
    ci = yaml.safe_load((PRESET_DIR / "ci.yaml").read_text())
    path = _user_preset(tmp_path, yaml.safe_dump({**ci, "description": "mine", "widths": [32, 64],
                                                  "family": "local", "sae_dir": str(tmp_path / "saes")}))
    cfg = resolve(str(path), n_train_tokens=5000)
    assert (cfg.description, cfg.widths, cfg.family, cfg.n_train_tokens) == ("mine", (32, 64), "local", 5000)
    assert preset_label(str(path)) == "my" and is_preset_file("x/My.YML") and not is_preset_file("ci")


@pytest.mark.parametrize("text, pattern", [
    ("n_train_token: 5000\n", r"in .*my.yaml: unknown parameter 'n_train_token'\. Did you mean 'n_train_tokens'"),
    ("widths: [64, 32]\n", r"in .*my.yaml: parameter 'widths' = \[64, 32\] must be strictly increasing"),
    ("family: pretrained\n", r"in .*my.yaml: parameters 'sae_release' and 'sae_ids' are required"),
    ("widths: [64\n", r"preset file .*my.yaml is not valid YAML"),
    ("- 1\n- 2\n", r"preset file .*my.yaml must be a mapping"),
])
def test_bad_user_preset_file_fails_naming_the_field(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        resolve(str(_user_preset(tmp_path, text)))


def test_missing_user_preset_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"'preset' = '.*nope.yaml': no such preset file .*bundled presets: ci"):
        resolve(str(tmp_path / "nope.yaml"))


def test_cli_user_preset_with_a_misspelling_fails_in_seconds(tmp_path):
    import subprocess
    import sys
    import time
    path = _user_preset(tmp_path, "description: mine\nl1_coeficient: 3\n")
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "metasae_utils", "build", "--preset", str(path), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and time.time() - t0 < 60
    assert "unknown parameter 'l1_coeficient'. Did you mean 'l1_coefficient'?" in r.stderr
    assert not (tmp_path / "out" / "book").exists()


def test_notebook_parameter_preset_may_be_a_file(tmp_path, monkeypatch):
    from metasae_utils import report
    monkeypatch.setattr(report, "RESULTS", tmp_path / "results")
    monkeypatch.setenv("METASAE_CACHE", str(tmp_path / "cache"))
    path = _user_preset(tmp_path, (PRESET_DIR / "ci.yaml").read_text())
    cfg = book.configure("test", {"preset": str(path), "n_examples": 3})
    assert cfg.n_examples == 3 and book.provenance_record()["preset"] == "my"


def test_readme_worked_example_preset_validates(tmp_path):
    from metasae_utils.artifacts import REPO
    text = (REPO / "README.md").read_text()
    block = text.split("# my-saes.yaml\n", 1)[1].split("```", 1)[0]
    cfg = resolve(str(_user_preset(tmp_path, block)))
    assert cfg.family == "local" and cfg.sae_dir == "/data/my-saes" and cfg.widths == (576, 1152, 2304)


@pytest.mark.parametrize("override, pattern", [
    ({"l0_targets": (16.0,), "l0_widths": (64,)}, r"'l0_widths' = \[64\] must be two of 'widths'"),
    ({"l0_targets": (16.0,), "l0_widths": (64, 1000)}, r"'l0_widths' = \[64, 1000\] must be two of 'widths'"),
    ({"l0_extra": ("512-48",)}, r"'l0_extra' holds '512-48': write 'width@L0'"),
    ({"l0_extra": ("4096@48",)}, r"'l0_extra' holds '4096@48'"),
])
def test_bad_l0_variants_are_named(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        resolve("ci", **override)


def test_l0_plan_gives_the_pair_a_twin_at_every_target_and_keeps_seeds_apart():
    from metasae_utils.families import l0_plan
    plan = l0_plan(resolve("ci", l0_targets=(12.0, 48.0), l0_widths=(128, 256), l0_extra=("512@48", "256@48")))
    assert plan == [(128, 12.0, 2), (256, 12.0, 2), (256, 12.0, 3), (128, 48.0, 2), (256, 48.0, 2), (256, 48.0, 3),
                    (512, 48.0, 2)]
    assert all(offset not in (0, 1) for _, _, offset in plan)
