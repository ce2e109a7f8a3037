"""``python -m pfrps.ac`` runs the ``pfrps-ac`` command."""

import sys

from .cli import main

sys.exit(main())
