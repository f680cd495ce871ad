"""``python -m hmrt.train.prior ...`` is ``hmrt train-prior ...``."""

from hmrt.train.prior.cli import main

raise SystemExit(main())
