"""``python -m worker ...``: the same as ``lowlight worker ...`` (no torch until ``run``)."""

import sys

from worker.cli import main

sys.exit(main())
