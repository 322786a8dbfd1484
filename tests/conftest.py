import os

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Small training steps run faster on one thread when the other core is busy (restored afterwards)."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A private artifact cache for one test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("METASAE_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def gpt2_standin():
    """A GPT-2-small-shaped HookedTransformer with random weights: the hub path's stand-in (no download)."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257,
                                  n_ctx=1024, act_fn="gelu_new", normalization_type="LN", seed=0,
                                  default_prepend_bos=True, original_architecture="GPT2LMHeadModel")
    return HookedTransformer(cfg).eval()


FAULTS = os.path.join(os.path.dirname(__file__), "faults")


@pytest.fixture(scope="session")
def smollm2_entry(tmp_path_factory):
    """The converted SmolLM2 cache entry (``models/<key>``), taken from an existing cache when one holds it
    (``$METASAE_CACHE`` or the repository's), else converted once from the GGUF into a session cache (~40 s).
    Returns ``seed(root)``, which gives a fresh cache ``root`` that entry as symlinks (read-only use)."""
    from pathlib import Path

    from metasae_utils import artifacts, assets, sources
    gguf = assets.smollm2_gguf()
    key = artifacts.spec_hash({"step": "models", "version": sources.MODEL_VERSION,
                               "spec": {"gguf": gguf.name, "size": gguf.stat().st_size}})
    found = None
    for root in (os.environ.get("METASAE_CACHE"), artifacts.REPO / ".cache" / "metasae"):
        if root and (Path(root) / "models" / key / "smollm2-135m.sha256").is_file():
            found = Path(root) / "models" / key
            break
    if found is None:
        session = tmp_path_factory.mktemp("model-cache")
        mp = pytest.MonkeyPatch()
        mp.setenv("METASAE_CACHE", str(session))
        sources._smollm2_safetensors()
        mp.undo()
        found = session / "models" / key

    def seed(root):
        dst = Path(root) / "models" / key
        (dst / "smollm2-135m").mkdir(parents=True)
        for name in ("spec.json", "smollm2-135m.sha256"):
            (dst / name).write_bytes((found / name).read_bytes())
        for f in (found / "smollm2-135m").iterdir():
            (dst / "smollm2-135m" / f.name).symlink_to(f)
        return Path(root)
    return seed


def _chapter_notebook(code: str):
    """A minimal chapter notebook for runner tests: the book's setup, a ``parameters`` cell (``preset = "ci"``),
    ``book.configure``, then ``code``."""
    from nbformat.v4 import new_code_cell, new_notebook
    cells = [new_code_cell("from metasae_utils import book\n_before = set(globals())"),
             new_code_cell('preset = "ci"', metadata={"tags": ["parameters"]}),
             new_code_cell("cfg = book.configure('t', book.new_names(globals(), _before))"),
             new_code_cell(code)]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def _chapter_src(root, chapters: dict):
    """A book source folder ``root`` for runner tests: ``_toc.yml`` listing ``chapters`` (stem -> code) in order,
    and one ``_chapter_notebook`` per chapter in ``root/notebooks``.  Returns ``root``."""
    import nbformat
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n" +
                                   "".join(f"  - file: book/{stem}\n" for stem in chapters))
    for stem, code in chapters.items():
        nbformat.write(_chapter_notebook(code), root / "notebooks" / f"{stem}.ipynb")
    return root


@pytest.fixture(scope="session")
def chapter_src():
    """Factory of book source folders for runner tests (see ``_chapter_src``)."""
    return _chapter_src
