"""``python -m hmrt`` is the same as the ``hmrt`` console script."""

import sys

from hmrt.cli import main

sys.exit(main())
