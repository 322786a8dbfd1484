"""The paper's claims: each declared once (:data:`!CLAIMS`), judged by the verdict functions of this sub-package.

Maths modules return numbers; the chapters pass them here and record the rows with
:func:`!metasae_utils.report.record`.  ``registry`` holds the declarations, the row format and the shared rules;
``stitching``, ``meta`` and ``groundtruth`` turn a chapter's numbers into rows.
"""

from .groundtruth import architecture_verdicts, matryoshka_meta_row, meta_truth_verdicts, stitching_truth_verdicts
from .meta import edge_overlap_row, meta_ratio_row, meta_sparse_row, meta_verdicts
from .registry import CLAIMS, UNDECIDED, VERDICTS, Claim, both_verdict, row, share_verdict
from .reading import stitching_reading
from .stitching import (delta_vs_cosine_row, frankenstein_frontier_row, pair_verdicts, size_vs_seed_row,
                        stitching_verdicts)

__all__ = ["CLAIMS", "VERDICTS", "Claim", "row", "share_verdict", "both_verdict", "stitching_verdicts",
           "meta_verdicts", "stitching_truth_verdicts", "meta_truth_verdicts", "architecture_verdicts",
           "stitching_reading", "delta_vs_cosine_row", "frankenstein_frontier_row", "meta_ratio_row",
           "edge_overlap_row", "pair_verdicts", "size_vs_seed_row", "UNDECIDED", "meta_sparse_row",
           "matryoshka_meta_row"]
