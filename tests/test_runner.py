"""The papermill runner: order, reuse, validation before compute, and failures that keep the last good output."""

import json

import nbformat
import pytest

from metasae_utils import runner
from metasae_utils.presets import ConfigError


@pytest.fixture
def src(tmp_path, chapter_src):
    return chapter_src(tmp_path / "src", {
        "b_second": "if cfg.n_examples == 13:\n    raise ValueError('boom at 13')\nprint('second')",
        "a_first": "print('first', cfg.n_examples)"})


def _stdout(path):
    nb = json.loads(path.read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))


def test_runs_in_toc_order_then_reuses(src, tmp_path):
    out = tmp_path / "out"
    first = runner.build("ci", out, src=src)
    assert [(r.notebook, r.status) for r in first] == [("b_second", "ran"), ("a_first", "ran")]
    assert "first 6" in _stdout(out / "book" / "a_first.ipynb")
    assert json.loads((out / "_build" / "timings-ci.json").read_text())[0]["seconds"] > 0
    again = runner.build("ci", out, src=src)
    assert [r.status for r in again] == ["reused", "reused"]
    changed = runner.build("ci", out, params={"n_examples": 7}, src=src)
    assert [r.status for r in changed] == ["ran", "ran"]


def test_failure_names_notebook_and_cell_and_keeps_last_good(src, tmp_path):
    out = tmp_path / "out"
    runner.build("ci", out, src=src)
    good = (out / "book" / "b_second.ipynb").read_text()
    with pytest.raises(runner.NotebookFailed, match=r"notebook b_second failed in cell \d+: ValueError: boom at 13"):
        runner.build("ci", out, params={"n_examples": 13}, src=src)
    assert (out / "book" / "b_second.ipynb").read_text() == good
    assert (out / "_build" / "failed" / "b_second.ipynb").exists()
    # stopped at the first failure: a_first (after b_second in the toc) still holds its earlier output
    assert "first 6" in _stdout(out / "book" / "a_first.ipynb")


def test_bad_parameter_fails_before_any_notebook_runs(src, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="unknown parameter 'n_exampels'"):
        runner.build("ci", out, params={"n_exampels": 3}, src=src)
    with pytest.raises(ConfigError, match="'preset' = 'nope'"):
        runner.build("nope", out, src=src)
    assert not (out / "book").exists()


def test_cli_reports_errors_in_one_line(capsys):
    from metasae_utils.__main__ import main
    assert main(["build", "--preset", "ci", "-p", "widths", "[8, 4]"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: parameter 'widths'") and "\n" not in err


def test_run_key_follows_declared_input_files(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["metasae"] = {"inputs": ["results/*/*.json"]}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    (tmp_path / "results" / "ci").mkdir(parents=True)
    before = runner.inputs_hash(path, tmp_path)
    (tmp_path / "results" / "ci" / "stitching.json").write_text("{}")
    after = runner.inputs_hash(path, tmp_path)
    assert before != after
    (tmp_path / "results" / "ci" / "stitching.json").write_text('{"rows": []}')
    assert runner.inputs_hash(path, tmp_path) != after
    nb.metadata = {}
    nbformat.write(nb, str(path))
    assert runner.inputs_hash(path, tmp_path) == ""


def test_kernels_import_this_checkouts_package(tmp_path, chapter_src, monkeypatch):
    """The kernels run in notebooks/; they must import the package whose code run_key hashed, not another
    installed copy."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    src = chapter_src(tmp_path / "src", {"where": "import metasae_utils\nprint('package at', metasae_utils.__file__)"})
    runner.build("ci", tmp_path / "out", src=src)
    assert f"package at {runner.REPO / 'metasae_utils' / '__init__.py'}" in _stdout(tmp_path / "out" / "book" / "where.ipynb")
    import os
    assert "PYTHONPATH" not in os.environ


def test_build_with_a_users_preset_file_given_relative(tmp_path, chapter_src, monkeypatch):
    """``--preset my.yaml`` relative to where the command runs: the kernels (running in notebooks/) get it
    absolute; timings and results go under the file's stem."""
    from metasae_utils.presets import PRESET_DIR
    src = chapter_src(tmp_path / "src", {"a_first": "print('first', cfg.n_examples)"})
    work = tmp_path / "work"
    work.mkdir()
    (work / "my.yaml").write_text((PRESET_DIR / "ci.yaml").read_text() + "n_examples: 9\n")
    monkeypatch.chdir(work)
    out = tmp_path / "out"
    assert [r.status for r in runner.build("my.yaml", out, src=src)] == ["ran"]
    assert "first 9" in _stdout(out / "book" / "a_first.ipynb")
    assert (out / "_build" / "timings-my.json").exists()
    assert [r.status for r in runner.build("my.yaml", out, src=src)] == ["reused"]
    (work / "my.yaml").write_text((PRESET_DIR / "ci.yaml").read_text() + "n_examples: 8\n")
    assert [r.status for r in runner.build("my.yaml", out, src=src)] == ["ran"]
