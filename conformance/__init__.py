"""The conformance suite: ``python -m conformance`` holds every mlx_linalg op against SciPy.

Modules: ``zoo`` (seeded test matrices), ``ops`` (op registry: inputs, calls), ``references``
(NumPy/SciPy results), ``checks`` and ``metrics`` (LAPACK ratios, forward errors, structure),
``runner`` (``run_suite``), ``report`` (JSON, Markdown, plots, terminal). See
docs/conformance.md.
"""
