"""video-miner: mine clean, deduplicated, labelled image datasets from video.

The Snakemake workflow (``Snakefile``, ``rules/``) orchestrates; this package holds
the logic that its thin ``scripts/`` call, so every piece is importable and tested.
"""

__version__ = "0.1.0"
