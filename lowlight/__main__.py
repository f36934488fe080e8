"""``python -m lowlight`` runs the ``lowlight`` command."""

import sys

from lowlight.cli import main

sys.exit(main())
