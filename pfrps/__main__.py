"""``python -m pfrps`` runs the ``pfrps`` command."""

import sys

from .cli import main

sys.exit(main())
