"""Hostile parameters, over the whole Config schema and through the paths a notebook uses: every one fails before
any compute, with a message naming the parameter and what is allowed.  (tests/test_presets.py covers single
examples and integer ranges; this file covers every field, floats, names, hooks, SAEs, releases and the hub.)"""

import math
import re
import socket
import threading
import time
import typing

import nbformat
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st
from nbformat.v4 import new_code_cell, new_notebook

from metasae_utils import book, families, runner, sources
from metasae_utils.presets import FIELDS, Config, ConfigError, resolve, validate

HINTS = typing.get_type_hints(Config)
NUMERIC = [n for n, f in FIELDS.items() if HINTS[n] in (int, float, typing.Optional[int], typing.Optional[float])
           or f.metadata.get("item") is int]
FLOATS = [n for n in NUMERIC if HINTS[n] in (float, typing.Optional[float])]
STRINGS = [n for n in FIELDS if HINTS[n] in (str, typing.Optional[str])]


def _configure(**params):
    """What a notebook does right after its parameters cell (papermill injected ``params``)."""
    return book.configure("test", {"preset": "ci", **params})


def _finite(value) -> bool:
    return isinstance(value, int) or math.isfinite(value)


def _names_field(msg: str, name: str) -> bool:
    return f"'{name}'" in msg or f"'{name}[" in msg


def test_every_numeric_field_declares_its_range():
    for name in NUMERIC:
        meta = FIELDS[name].metadata
        assert meta.get("lo") is not None and meta.get("hi") is not None, name


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(FIELDS)), data=st.data())
def test_misspelled_name_fails_naming_it_and_listing_the_allowed(name, data):
    i = data.draw(st.integers(0, len(name) - 1))
    edit = data.draw(st.sampled_from(["drop", "double", "swap", "case"]))
    bad = {"drop": name[:i] + name[i + 1:], "double": name[:i] + name[i] + name[i:],
           "swap": name[:i] + name[i + 1:i + 2] + name[i:i + 1] + name[i + 2:], "case": name.upper()}[edit]
    assume(bad and bad not in FIELDS and bad != "preset" and not bad.startswith("_"))
    with pytest.raises(ConfigError, match=rf"unknown parameter '{re.escape(bad)}'.*Allowed: preset, ") as e:
        _configure(**{bad: 1})
    assert re.search(rf"\b{re.escape(name)}\b", str(e.value).split("Allowed:")[1])


def _wrong_types(name):
    """Values of a type the field never accepts."""
    item = FIELDS[name].metadata.get("item")
    common = [{"a": 1}, object(), 3 + 4j]
    if item is int:
        return common + ["64", 64, ["x"], [True], [[64]]]
    if item is str:
        return common + ["abc", 5, [3], [None]]
    if name in NUMERIC:
        return common + ["12", [1], True]
    return common + [3, 2.5, ["x"], True]


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_wrong_type_fails_naming_the_parameter(name):
    for value in _wrong_types(name):
        with pytest.raises(ConfigError) as e:
            _configure(**{name: value})
        msg = str(e.value)
        assert _names_field(msg, name) and ("must be" in msg or "allowed" in msg), (name, value, msg)


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1, 0, 10**400],
                         ids=["nan", "inf", "-inf", "negative", "zero", "1e400"])
def test_nan_inf_negative_zero_and_huge_fail_or_are_in_range(name, value):
    meta = FIELDS[name].metadata
    is_list = HINTS[name] in (tuple, typing.Optional[tuple])
    override = [64, value] if is_list else value
    ok = _finite(value) and meta["lo"] <= value <= meta["hi"] and not (meta["positive"] and value <= 0)
    if ok:  # zero is a valid seed, L1 coefficient, lr-decay fraction, number of curve points and of twins, latent id
        assert name in ("seed", "l1_coefficient", "lr_decay_fraction", "curve_points", "twins", "named_latent") \
            and value == 0
        validate({**resolve("ci").as_dict(), name: override, "widths": [64], "l0_targets": [], "l0_extra": []} if not is_list
                 else {**resolve("ci").as_dict(), name: [value + 1]})
        return
    with pytest.raises(ConfigError) as e:
        _configure(**{name: override})
    assert _names_field(str(e.value), name)
    assert re.search(r"must be (an integer|a finite number)|out of range; allowed: \S+ to \S+", str(e.value))


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(FLOATS), value=st.one_of(st.floats(), st.integers(-10**400, 10**400)))
def test_float_fields_accept_exactly_their_finite_range(name, value):
    meta = FIELDS[name].metadata
    inside = _finite(value) and meta["lo"] <= value <= meta["hi"] and not (meta["positive"] and value <= 0)
    try:
        validate({**resolve("ci").as_dict(), name: value})
    except ConfigError as e:
        assert not inside and _names_field(str(e), name), str(e)
    else:
        assert inside


@pytest.mark.parametrize("name", STRINGS)
def test_blank_strings_are_refused(name):
    if name == "description":
        return
    with pytest.raises(ConfigError, match=rf"'{name}' must be a non-empty string"):
        _configure(**{name: "  "})


# -- hooks, SAEs and releases, through the notebook's calls ------------------------------------------------

def test_hook_past_the_last_block_fails_before_loading_the_model():
    with pytest.raises(ConfigError, match=r"'hook' = 'blocks.30.hook_resid_pre' names block 30, but smollm2-135m "
                                          r"has 30 blocks; allowed: blocks.0 to blocks.29"):
        _configure(hook="blocks.30.hook_resid_pre")


def test_cli_refuses_a_missing_hook_in_one_line(capsys):
    from metasae_utils.__main__ import main
    assert main(["build", "--preset", "ci", "-p", "hook", "blocks.31.hook_resid_post"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: parameter 'hook'") and "\n" not in err


@pytest.fixture
def hub_standin(monkeypatch, gpt2_standin):
    """The hub path with the GPT-2 stand-in served instead of a download."""
    from transformer_lens import HookedTransformer
    monkeypatch.setattr(sources, "check_hub", lambda what, timeout=5.0, cfg=None, parts=(): None)
    monkeypatch.setattr(HookedTransformer, "from_pretrained", classmethod(lambda cls, *a, **k: gpt2_standin))
    return gpt2_standin


def test_hook_the_model_lacks_fails_after_load_and_before_any_activation(hub_standin, tmp_cache):
    cfg = resolve("gpt2-paper", model="pythia-70m", hook="blocks.12.hook_resid_pre", device="cpu")
    with pytest.raises(ConfigError, match=r"'hook' = 'blocks.12.hook_resid_pre' is not a hook of this model "
                                          r"\(12 layers\); allowed: blocks.0..11"):
        sources.load_model(cfg)
    with pytest.raises(ConfigError, match="'hook'"):
        sources.collect_activations(hub_standin, cfg, torch.zeros(2, 16, dtype=torch.long), "train")
    assert not (tmp_cache / "activations").exists()


def test_pretrained_sae_of_the_wrong_width_is_refused(monkeypatch):
    from sae_lens import SAE, StandardSAE, StandardSAEConfig
    monkeypatch.setattr(sources, "check_hub", lambda what, timeout=5.0, cfg=None, parts=(): None)
    monkeypatch.setattr(SAE, "from_pretrained", classmethod(
        lambda cls, release, sae_id, device="cpu": StandardSAE(StandardSAEConfig(d_in=64, d_sae=32))))
    with pytest.raises(ConfigError, match=r"d_in = 64 but blocks.8.hook_resid_pre has width 768; parameter "
                                          r"'sae_dir'/'sae_ids'"):
        families.load_family(resolve("gpt2-paper"), 768)


@pytest.mark.parametrize("override, pattern", [
    ({"sae_release": "gpt2-small-res-jb-feature-splittin"}, r"'sae_release' = .* is not a SAELens release; did you"),
    ({"sae_ids": ["blocks.8.hook_resid_pre_768"] * 7 + ["nope"]}, r"'sae_ids' holds 'nope'.*allowed: blocks.8")])
def test_unknown_release_or_id_fails_before_the_hub_is_needed(monkeypatch, override, pattern):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the registry ships with SAELens: no network needed to refuse
    with pytest.raises(ConfigError, match=pattern):
        families.load_family(resolve("gpt2-paper", **override), 768)


# -- the hub, unreachable ----------------------------------------------------------------------------------

@pytest.fixture
def one_notebook_src(tmp_path):
    root = tmp_path / "src"
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/a\n")
    nb = new_notebook(cells=[new_code_cell('preset = "ci"', metadata={"tags": ["parameters"]}),
                             new_code_cell("print('ran')")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, root / "notebooks" / "a.ipynb")
    return root


@pytest.fixture
def blackhole():
    """A TCP server that accepts connections and never answers: a hub behind a dead proxy."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"https://127.0.0.1:{server.getsockname()[1]}/api"
    server.close()


@pytest.mark.parametrize("preset", ["gpt2-paper", "gemma-scope"])
def test_hub_preset_build_fails_within_30s_naming_offline(monkeypatch, blackhole, one_notebook_src, tmp_path,
                                                          preset):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "HUB_URL", blackhole)
    result = {}

    def build():
        try:
            runner.build(preset, tmp_path / "out", src=one_notebook_src)
        except Exception as e:  # noqa: BLE001 (reported below)
            result["error"] = e

    t0 = time.time()
    worker = threading.Thread(target=build, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the hub check hung for 30 s"
    assert time.time() - t0 < 30
    err = result.get("error")
    assert isinstance(err, sources.HubUnreachableError), err
    assert f"preset '{preset}'" in str(err) and "'offline' preset" in str(err)
    assert not (tmp_path / "out" / "book").exists()  # no notebook started
