"""Every chapter notebook follows the book's shape: Colab cell, parameters cell, then validation."""

from pathlib import Path

import nbformat
import pytest
import yaml

from metasae_utils import runner
from metasae_utils.artifacts import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_toc_lists_every_notebook():
    assert sorted(runner.chapters()) == sorted(p.stem for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_shape(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    url = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]
    assert "google.colab" in code[0].source and url in code[0].source, "first cell installs on Colab"
    params = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    assert "book.configure(" in code[params[0] + 1].source, "validation right after the parameters"
    assert "book.provenance(" in code[-1].source, "ends with the provenance box"
    assert not any(c.outputs for c in code), "sources are stored without outputs"


class _Tok:
    def decode(self, ids):
        return {1: "<s>", 10: "The", 11: " state", 12: " of", 13: " the\n", 14: " union"}[ids[0]]


def test_contexts_mark_the_token_and_skip_bos():
    import torch
    from metasae_utils import plots
    toks = torch.tensor([[1, 10, 11, 12, 13, 14]])
    assert plots.context_text(_Tok(), toks, 0, 2, before=5, after=1) == "…The<b>[ state]</b> of…"
    assert plots.context_html(_Tok(), toks, 0, 4, before=1, after=5).endswith("the⏎</b> union…")


def test_norm_histogram_bins_densities_that_integrate_to_one():
    import torch
    from metasae_utils import plots
    fig = plots.norm_histogram({"a": torch.randn(5000, 8), "b": 2 * torch.randn(3000, 8)}, "t", bins=40)
    for trace in fig.data:
        assert len(trace.x) == 40
        assert abs(sum(trace.y) * trace.width - 1) < 1e-6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_package_function_a_notebook_calls_exists(path):
    """Notebooks run only in `make book`/`make test`; catch a renamed or removed function in seconds."""
    import importlib
    import re
    src = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    modules = {}  # the name a notebook uses -> the module it names ("from metasae_utils.pkg import mod as alias")
    for pkg, line in re.findall(r"^from metasae_utils((?:\.\w+)*) import (.+)$", src, flags=re.M):
        for part in line.split(","):
            mod, _, alias = part.strip().partition(" as ")
            modules[alias.strip() or mod.strip()] = f"metasae_utils{pkg}.{mod.strip()}"
    missing = [f"{m}.{name}" for m in sorted(modules)
               for name in set(re.findall(rf"(?<![\w.\-/]){m}\.(\w+)", src))
               if not hasattr(importlib.import_module(modules[m]), name)]
    assert modules and not missing, f"{path.name} calls {missing}"
