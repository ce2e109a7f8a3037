"""``python -m pfrps.xdp``: the same as the ``pfrps-xdp`` console script."""

import sys

from .cli import main

sys.exit(main())
