"""``python -m pfinject`` runs the ``pfinject`` command."""

import sys

from .cli import main

sys.exit(main())
