"""Training data: synthetic low-light pairs from clean photos, or real paired folders.

Every batch is a pure function of ``(seed, batch index)``: its random generator is
``numpy.random.default_rng([seed, index])``. A run that is interrupted and resumed at
iteration ``i`` therefore sees exactly the batches an uninterrupted run would, whatever
the number of loader workers (see :mod:`hybridnet.train`).

The data split follows the shared data README: train on BSDS500 train+val, Urban100 and
Sun_Hays80; validate on BSDS500/test and McMaster18 (never on training images).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import torch
from numpy.typing import NDArray

from hybridnet.blind_pairs import BlindPairSampler, ImageStats
from hybridnet.degrade import RandomPairSampler
from hybridnet.imageio import read_rgb

#: Folders (relative to the data root) of the training and validation split.
TRAIN_SPLIT: Final = (
    "clean/BSDS500/train",
    "clean/BSDS500/val",
    "clean/Urban100",
    "clean/Sun_Hays80",
)
VALIDATION_SPLIT: Final = ("clean/BSDS500/test", "clean/McMaster18")
#: Where the data root is looked for when not given.
DATA_ROOT_ENV: Final = "LOWLIGHT_DATA_ROOT"
IMAGE_SUFFIXES: Final = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})

U8 = NDArray[np.uint8]


def default_data_root() -> Path:
    """``$LOWLIGHT_DATA_ROOT``, else ``../shared/data`` from the current directory."""
    env = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(env) if env else Path("..", "shared", "data")


def list_images(folders: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image files directly inside ``folders``, sorted; a missing folder is an error."""
    files: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist")
        files += sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images in {', '.join(str(f) for f in folders)}")
    return files


def load_rgb8(path: Path) -> U8:
    """An image file as H×W×3 uint8 RGB (training data are 8-bit photos).

    Read by :func:`hybridnet.imageio.read_rgb`, as the product reads photos: 16-bit files
    are rounded to 8 bits, ICC profiles converted to sRGB, gray repeated, alpha dropped.
    """
    return np.round(read_rgb(path) * 255.0).astype(np.uint8)


def _to_tensor(batch: list[NDArray[np.float32]]) -> torch.Tensor:
    return torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()


def _dihedral(img: NDArray[np.generic], k: int, flip: bool) -> NDArray[np.generic]:
    out = np.rot90(img, k=k, axes=(0, 1))
    return np.ascontiguousarray(out[:, ::-1] if flip else out)


@dataclass
class SyntheticPairs:
    """Batches of ``(low, high)`` patches made from clean photos by a degradation.

    Args:
        images: clean photos, H×W×3 uint8, each at least ``sampler.patch_size`` a side.
        sampler: crop/augment/degrade one patch (:class:`hybridnet.degrade.
            RandomPairSampler`).
        batch_size: patches per batch.
        seed: the run's seed.
    """

    images: list[U8]
    sampler: RandomPairSampler
    batch_size: int
    seed: int

    def __post_init__(self) -> None:
        p = self.sampler.patch_size
        small = [i for i, im in enumerate(self.images) if min(im.shape[:2]) < p]
        if small:
            raise ValueError(f"{len(small)} training images are smaller than {p}x{p}")

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index``: two float32 tensors N×3×P×P in [0, 1] (low, high)."""
        rng = np.random.default_rng([self.seed, index])
        p = self.sampler.patch_size
        lows, highs = [], []
        for _ in range(self.batch_size):
            image = self.images[int(rng.integers(len(self.images)))]
            h, w = image.shape[:2]
            top, left = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
            crop = image[top : top + p, left : left + p].astype(np.float32) / 255.0
            low, high = self.sampler(crop, rng)
            lows.append(low)
            highs.append(high)
        return _to_tensor(lows), _to_tensor(highs)


@dataclass
class BlindPairs:
    """Batches of ``(low, high, curve)`` for the blind model (:mod:`hybridnet.blind_pairs`).

    ``curve`` is ``N×3`` ``[a, black, ev]``: the oracle curve of each patch's darkening,
    which the network's input goes through (``HybridNet(low, CurveParams.unstack(curve))``).
    """

    images: list[U8]
    sampler: BlindPairSampler
    batch_size: int
    seed: int

    def __post_init__(self) -> None:
        p = self.sampler.patch_size
        if any(min(im.shape[:2]) < p for im in self.images):
            raise ValueError(f"some training images are smaller than {p}x{p}")
        self.stats = [ImageStats.of(im.astype(np.float64) / 255.0) for im in self.images]

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        lows, highs, curves = [], [], []
        for _ in range(self.batch_size):
            i = int(rng.integers(len(self.images)))
            low, high, curve = self.sampler(self.images[i], rng, self.stats[i])
            lows.append(low)
            highs.append(high)
            curves.append(curve)
        return _to_tensor(lows), _to_tensor(highs), torch.from_numpy(np.stack(curves))


@dataclass
class PairedFolders:
    """Batches of aligned ``(low, high)`` patches from real pairs (e.g. LOL).

    Files are matched by name (stem) between ``low_dir`` and ``high_dir``; each patch is
    the same random crop and the same of the 8 square symmetries of both images.
    """

    pairs: list[tuple[U8, U8]]
    patch_size: int
    batch_size: int
    seed: int

    @classmethod
    def from_folders(
        cls, low_dir: Path, high_dir: Path, patch_size: int, batch_size: int, seed: int
    ) -> PairedFolders:
        lows = {p.stem: p for p in list_images([low_dir])}
        highs = {p.stem: p for p in list_images([high_dir])}
        common = sorted(set(lows) & set(highs))
        if not common:
            raise FileNotFoundError(
                f"no file names in common between {low_dir} and {high_dir}; pairs are "
                "matched by name (e.g. low/1.png with high/1.png)"
            )
        pairs = []
        for name in common:
            low, high = load_rgb8(lows[name]), load_rgb8(highs[name])
            if low.shape != high.shape:
                raise ValueError(f"pair {name!r} has different sizes {low.shape} / {high.shape}")
            if min(low.shape[:2]) < patch_size:
                raise ValueError(f"pair {name!r} is smaller than the {patch_size} patch")
            pairs.append((low, high))
        return cls(pairs, patch_size, batch_size, seed)

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        p = self.patch_size
        lows: list[NDArray[np.float32]] = []
        highs: list[NDArray[np.float32]] = []
        for _ in range(self.batch_size):
            low, high = self.pairs[int(rng.integers(len(self.pairs)))]
            h, w = low.shape[:2]
            top, left = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
            k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
            for src, out in ((low, lows), (high, highs)):
                patch = _dihedral(src[top : top + p, left : left + p], k, flip)
                out.append(patch.astype(np.float32) / 255.0)
        return _to_tensor(lows), _to_tensor(highs)


Source = SyntheticPairs | PairedFolders | BlindPairs


class BatchDataset(torch.utils.data.Dataset[tuple[torch.Tensor, ...]]):
    """Map-style view of batches ``start .. stop-1`` for a :class:`~torch.utils.data.DataLoader`."""

    def __init__(self, source: Source, start: int, stop: int) -> None:
        self.source = source
        self.start = start
        self.stop = stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return self.source.batch(self.start + i)
