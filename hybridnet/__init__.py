"""The deep hybrid network of Ren et al., "Low-Light Image Enhancement via a Deep
Hybrid Network" (IEEE TIP 2019), and everything that runs it.

Importing this package is cheap: the torch-backed names below are loaded on first
use (PEP 562), so the torch-free submodules (``hybridnet.imageio``,
``hybridnet.contract``, ``hybridnet.config``) can be shared with clients that must
never import torch (the desktop panel, the GIMP plug-in, the worker client).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lowlight import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from hybridnet.config import HybridNetConfig
    from hybridnet.contract import auto_strength, blend
    from hybridnet.discriminator import Discriminator
    from hybridnet.enhancer import EnhanceCancelled, Enhancer
    from hybridnet.errors import (
        HybridNetError,
        InvalidImageError,
        InvalidInputError,
        WeightsError,
    )
    from hybridnet.hybrid_network import HybridNet
    from hybridnet.spatially_variant_rnn import spatial_rnn
    from hybridnet.weights_io import load_model, save_model

# name -> module that defines it; imported on first attribute access.
_LAZY: dict[str, str] = {
    "HybridNetConfig": "hybridnet.config",
    "HybridNet": "hybridnet.hybrid_network",
    "spatial_rnn": "hybridnet.spatially_variant_rnn",
    "Discriminator": "hybridnet.discriminator",
    "save_model": "hybridnet.weights_io",
    "load_model": "hybridnet.weights_io",
    "Enhancer": "hybridnet.enhancer",
    "EnhanceCancelled": "hybridnet.enhancer",
    "blend": "hybridnet.contract",
    "auto_strength": "hybridnet.contract",
    "HybridNetError": "hybridnet.errors",
    "InvalidInputError": "hybridnet.errors",
    "InvalidImageError": "hybridnet.errors",
    "WeightsError": "hybridnet.errors",
}

__all__ = [
    "Discriminator",
    "EnhanceCancelled",
    "Enhancer",
    "HybridNet",
    "HybridNetConfig",
    "HybridNetError",
    "InvalidImageError",
    "InvalidInputError",
    "WeightsError",
    "__version__",
    "auto_strength",
    "blend",
    "load_model",
    "save_model",
    "spatial_rnn",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hybridnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
