"""metasae_utils: the maths and glue behind the canonical-units companion book.

Modules, one idea each: ``presets`` (typed configuration), ``assets`` (offline model and text),
``artifacts`` (the checksummed cache), ``sources`` (models, tokens, activations), ``evaluate`` (metrics),
``plots`` (figures), ``book`` (notebook glue and provenance), ``runner`` (papermill build), ``canonicality``
(matched share and Hungarian-matched cosine between decoders), ``compare`` (``python -m metasae_utils compare``:
stitching anyone's pair of SAEs).
Importing the package is cheap; heavy libraries load inside the functions that need them.
"""

__version__ = "0.1.0"
