"""``python -m pfrps.qemu``: the same as ``./run qemu``."""

import sys

from .cli import main

sys.exit(main())
