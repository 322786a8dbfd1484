"""Targeted edits (the meta-SAE post's knowledge-editing experiment): a RAVEL-style city set (``cities``), prompts
and restricted-choice answers (``probe``), unit activations, selectivity and steering vectors (``units``), and the
experiment that compares SAE-latent with meta-latent edits (``experiment``)."""

from .cities import ATTRIBUTES, SOURCE, CitySet, CitySetError, build_city_set, load_cities

__all__ = ["ATTRIBUTES", "SOURCE", "CitySet", "CitySetError", "build_city_set", "load_cities"]
