"""Exceptions raised by :mod:`hybridnet`.

Every error says what was wrong and what to do about it, so that a client (the CLI,
the worker, the panel) can show the message to a user as it is.
"""

from __future__ import annotations


class HybridNetError(Exception):
    """Base class of every error raised on purpose by :mod:`hybridnet`."""


class InvalidInputError(HybridNetError, ValueError):
    """A tensor handed to the network does not meet its input contract."""


class InvalidImageError(HybridNetError, ValueError):
    """A numpy image handed to the image contract is malformed (shape, dtype, values)."""


class WeightsError(HybridNetError, ValueError):
    """A weights file is missing, truncated, not ours, or made for another configuration."""
