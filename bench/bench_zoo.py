"""The model zoo table: every registered model and variant, one row each (``hmrt zoo``).

Run from the repository root: ``nice -n 10 python bench/bench_zoo.py [--quick] [--rows
danet:edge ...] [--out FILE]``. Columns, caching and options: :mod:`hmrt.commands.zoo` (the
same code as ``hmrt zoo``); cells are cached in ``runs/zoo_cache.json``, so a rerun only
measures what changed.
"""

from __future__ import annotations

import sys

from hmrt.commands.zoo import main

if __name__ == "__main__":
    sys.exit(main())
