"""Results files and the paper-vs-reproduction table."""

import json

import pytest

from metasae_utils import book, claims, report


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", tmp_path / "results")
    return tmp_path / "results"


def test_record_is_final_only_after_the_chapter_ends(results_dir, monkeypatch):
    book.configure("stitching", {"preset": "ci"})
    assert book._STATE["page"] == "03_stitching" and report._CURRENT["page"] == "03_stitching"
    report.record([claims.row("novel_fraction", "80 %", "not reproduced", 0.8)])
    assert report.load(results_dir) == {}  # a chapter that stops here leaves no final results
    assert (results_dir / "ci" / "stitching.partial.json").exists()
    report.record([claims.row("novel_fraction", "81 %", "not reproduced", 0.81)])  # same id: replaced
    book.provenance()
    got = report.load(results_dir)
    assert list(got) == ["ci"] and got["ci"]["novel_fraction"]["ours"] == "81 %"
    assert got["ci"]["novel_fraction"]["page"] == "03_stitching"
    data = json.loads((results_dir / "ci" / "stitching.json").read_text())
    assert data["preset"] == "ci" and len(data["rows"]) == 1
    # a rerun that fails half-way leaves the last complete results in place
    book.configure("stitching", {"preset": "ci"})
    report.record([claims.row("novel_fraction", "10 %", "not reproduced", 0.1)])
    assert report.load(results_dir)["ci"]["novel_fraction"]["ours"] == "81 %"


def test_table_orders_claims_links_and_overall():
    results = {"ci": {"novel_fraction": {**claims.row("novel_fraction", "90 %", "not reproduced", 0.9),
                                         "page": "03_stitching"},
                      "novel_lowers": {**claims.row("novel_lowers", "99 %", "reproduced", 0.99), "page": "03_stitching"}},
               "offline": {"novel_fraction": {**claims.row("novel_fraction", "30 %", "reproduced", 0.3),
                                              "page": "03_stitching"}}}
    rows = report.table(results, link_preset="offline")
    assert [r["id"] for r in rows] == list(claims.CLAIMS)
    nf = rows[0]
    assert nf["overall"] == "partly" and nf["per_preset"]["offline"]["link"] == "03_stitching.html#claim-novel_fraction"
    assert nf["per_preset"]["ci"]["link"] is None
    by_id = {r["id"]: r for r in rows}
    assert by_id["novel_lowers"]["overall"] == "reproduced"
    assert by_id["recon_raises"]["overall"] == "not measured" and by_id["recon_raises"]["per_preset"] == {}
    assert report.overall(["untestable here", "not reproduced"]) == "not reproduced"
    assert report.overall(["qualitative"]) == "qualitative"
    # undecided and underpowered rows decide nothing across presets
    assert report.overall(["undecided at this budget", "reproduced"]) == "reproduced"
    assert report.overall(["underpowered", "not reproduced"]) == "not reproduced"
    assert report.overall(["undecided at this budget"]) == "undecided at this budget"


def test_report_does_not_import_book():
    """The results files need no notebook glue: book uses report, never the other way round."""
    import ast
    from pathlib import Path
    tree = ast.parse(Path(report.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names} | {
        n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "book" not in names
