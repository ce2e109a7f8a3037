"""``python -m pfrps.bng``: the same as ``pfrps-bng``."""

import sys

from .cli import main

sys.exit(main())
