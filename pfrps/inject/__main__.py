"""``python -m pfrps.inject`` runs the ``pfinject`` command."""

import sys

from .cli import main

sys.exit(main())
