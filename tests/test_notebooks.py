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
