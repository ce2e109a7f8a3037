"""``python -m bench`` runs the benchmark suite."""

import sys

from .cli import main

sys.exit(main())
