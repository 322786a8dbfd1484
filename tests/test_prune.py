"""`cache size` and `cache prune --keep PRESET`: deletes only what no kept preset used, keeps anything unsure."""

import os

import pytest

from metasae_utils import artifacts, book
from metasae_utils.__main__ import main


@pytest.fixture
def label():
    """Set the preset label of this process's cache events (as book.configure does); reset afterwards."""
    yield artifacts.set_preset
    artifacts.set_preset(None)


def _make(name, preset, label, size=1000):
    label(preset)
    e = artifacts.entry("step", {"name": name})
    e.get_or_make("data.bin", lambda p: p.write_bytes(os.urandom(size)))
    return e


@pytest.fixture
def used_cache(tmp_cache, label):
    """offline: a, shared; ci: b, shared; gpt2-paper: c, unsure; unrecorded: d, unsure; stale and live temp files."""
    es = {"a": _make("a", "offline", label), "b": _make("b", "ci", label, 2000), "c": _make("c", "gpt2-paper", label),
          "d": _make("d", None, label), "unsure": _make("unsure", "gpt2-paper", label),
          "shared": _make("shared", "ci", label)}
    label("offline")
    artifacts.entry("step", {"name": "shared"}).get_or_make("data.bin", lambda p: pytest.fail("recomputed"))
    label(None)
    artifacts.entry("step", {"name": "unsure"}).get_or_make("data.bin", lambda p: pytest.fail("recomputed"))
    (es["b"].path / ".data.bin.tmp999999").write_bytes(b"half")  # left by a killed run
    (es["a"].path / f".data.bin.tmp{os.getpid()}").write_bytes(b"being written")  # a live writer's
    with open(tmp_cache / "log.jsonl", "a") as f:
        f.write('{"t": 1, "step": "step", "ke')  # a line cut short by a kill
    return es


def _exists(es):
    return {k for k, e in es.items() if e.path.exists()}


def test_dry_run_reports_and_deletes_nothing(used_cache, tmp_cache, capsys):
    before = artifacts.cache_size(tmp_cache)
    assert main(["cache", "prune", "--keep", "offline", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete step/{used_cache['b'].key} (0.0 MB; used by ci)" in out
    assert f"step/{used_cache['c'].key}" in out and f"step/{used_cache['a'].key}" not in out
    assert "would free 0.0 MB" in out and "2 used by no recorded preset" in out
    assert artifacts.cache_size(tmp_cache) == before and _exists(used_cache) == set(used_cache)


def test_prune_keeps_what_kept_presets_used_and_anything_unsure(used_cache, tmp_cache, capsys):
    assert main(["cache", "prune", "--keep", "offline"]) == 0
    assert _exists(used_cache) == {"a", "shared", "d", "unsure"}
    assert not (used_cache["b"].path.parent / f".deleting-{used_cache['b'].key}").exists()
    out = capsys.readouterr().out
    assert "deleted 2 entries and 1 temporary files: freed 0.0 MB" in out
    # what offline needs is still there, intact: reused, not recomputed
    artifacts.entry("step", {"name": "a"}).get_or_make("data.bin", lambda p: pytest.fail("recomputed"))
    assert (used_cache["a"].path / f".data.bin.tmp{os.getpid()}").exists()  # a live writer's file is left alone
    assert main(["cache", "prune", "--keep", "offline", "--include-unrecorded"]) == 0
    assert _exists(used_cache) == {"a", "shared"}


def test_several_kept_presets_and_a_recomputed_entry(used_cache, tmp_cache, label):
    artifacts.prune(["offline", "ci"])
    assert _exists(used_cache) == {"a", "b", "shared", "d", "unsure"}
    artifacts.prune(["offline"])
    assert "b" not in _exists(used_cache)
    _make("b", "offline", label)  # made again by another preset: only its new use counts
    artifacts.prune(["offline"])
    assert "b" in _exists(used_cache)


def test_unknown_or_missing_keep_is_refused_and_nothing_deleted(used_cache, capsys):
    assert main(["cache", "prune", "--keep", "oflline"]) == 1
    err = capsys.readouterr().err
    assert "--keep 'oflline' is not a preset; allowed: ci, " in err and "Did you mean 'offline'" in err
    assert main(["cache", "prune"]) == 1
    assert "at least one --keep" in capsys.readouterr().err
    assert _exists(used_cache) == set(used_cache)


def test_size_reports_total_and_per_preset(used_cache, tmp_cache, capsys):
    assert main(["cache", "size"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_cache}: ") and "used by ci: " in out and "used by (unrecorded): " in out
    assert "used by ci, offline: " in out  # the shared entry


def test_notebook_configure_labels_cache_events(tmp_cache, label):
    book.configure("t", {"preset": "ci"})
    artifacts.entry("step", {"x": 1}).json("r.json", lambda: 1)
    assert [r.get("preset") for r in artifacts.read_log(tmp_cache)] == ["ci"]
