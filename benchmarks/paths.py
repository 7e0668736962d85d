"""Where the benchmarks read data and write reports.

In a source checkout, reports go to the checkout's `benchmarks/results/` (committed) and data comes
from `../shared/datasets` beside it. From an installed wheel there is no checkout: reports go to
`./splade-es-results` under the working directory, never into site-packages; `--out` overrides
either.
"""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
"""The source checkout holding this folder (only meaningful when `IN_CHECKOUT`)."""
IN_CHECKOUT = (CHECKOUT / "setup.cfg").is_file() and (CHECKOUT / "benchmarks" / "results").is_dir()
RESULTS = CHECKOUT / "benchmarks" / "results" if IN_CHECKOUT else Path.cwd() / "splade-es-results"
DATASETS = Path(os.environ.get("SPLADE_ES_DATASETS", CHECKOUT.parent / "shared" / "datasets"))
SCIFACT = Path(os.environ.get("SPLADE_ES_SCIFACT", DATASETS / "scifact"))
