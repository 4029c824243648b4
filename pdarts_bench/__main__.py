"""``python -m pdarts_bench``: the ``pdarts-bench`` command."""

import sys

from .cli import main

sys.exit(main())
