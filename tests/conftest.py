"""Shared fixtures. Tests use tiny model configs so the suite stays fast on 2 cores."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    """Keep torch on at most 2 threads (the CI machine has 2 cores)."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(min(2, os.cpu_count() or 1))
