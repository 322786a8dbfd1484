"""Feature absorption (Chanin et al.) on the first-letter task, as SAEBench 0.6.0 defines it.

* :mod:`.task`: vocabulary sample, SAEBench's ICL prompts, activations at the preset's hook, SAEBench's linear probe;
* :mod:`.score`: one SAE's k-sparse probes (SAEBench's functions), per-word absorption (SAEBench's arithmetic on the
  task's activations), the aggregate scores and the absorbing latents;
* :mod:`.relate`: the absorbing latents against the stitching classes (novel / reconstruction) and the
  ``absorption_novel`` rule;
* :mod:`.chapter`: chapter 09's glue (which SAEs, rows, adjacent pairs).
"""
