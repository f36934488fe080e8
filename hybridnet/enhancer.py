r"""``Enhancer``: the one place that runs the network on images of the contract.

It owns dtype and channel conversion (through :mod:`hybridnet.contract`), padding (the
network reflect-pads to a multiple of 8 and crops back) and tiling, so every client --
the CLI, the worker, the panel through the worker, GIMP through the worker -- gets the
same pixels for the same input.

Tiling
------
Large images are cut into a grid of overlapping tiles, each small enough for the memory
at hand (free GPU memory, or a share of the CPU's available memory capped at
:data:`CPU_BUDGET_BYTES`, so a 50-megapixel photo stays under 2 GB), and the tile
outputs are blended with separable raised-cosine ramps across each overlap:

.. math::

    w_i(t) = \sin^2\Big(\frac{\pi}{2}\,\frac{t + 1/2}{L}\Big), \qquad
    w_{i-1}(t) = \cos^2\Big(\frac{\pi}{2}\,\frac{t + 1/2}{L}\Big)

over an overlap of ``L`` pixels, so the weights of neighbouring tiles sum to exactly one
and the pixels at a tile's border, which see reflected context instead of the real
neighbours, get almost no weight. Tiles are spread evenly over the image (the grid is
chosen to minimise the computed area), processed band by band, and only one band of
float accumulators is alive at a time.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import torch
from numpy.typing import NDArray

from hybridnet.config import HybridNetConfig
from hybridnet.contract import (
    EV_LIMIT,
    Layout,
    assemble,
    auto_strength,
    brightness_to_ev,
    brightness_to_network,
    check_brightness,
    check_ev,
    check_image,
    check_strength,
    colour_to_float,
    float_to_colour,
    quantize,
    unit_float,
)
from hybridnet.errors import HybridNetError, InvalidImageError, WeightsError
from hybridnet.exposure import THUMBNAIL_SIDE, CurveParams
from hybridnet.hybrid_network import MIN_SIDE, SIZE_MULTIPLE, HybridNet
from hybridnet.weights_io import load_model

log = logging.getLogger("hybridnet.enhancer")

#: The model shipped inside the package (see hybridnet/weights/MODEL_CARD.md).
BUNDLED_WEIGHTS: Final = Path(__file__).resolve().parent / "weights" / "hybridnet.safetensors"
#: Working memory of one forward pass per pixel for the default config, in bytes
#: (float32, inference mode; measured by benchmarks/bench_enhancer.py: ~310).
BYTES_PER_PIXEL: Final = 360
#: At most this much CPU memory is planned for one tile's forward pass.
CPU_BUDGET_BYTES: Final = 1_000_000_000
#: Pixels shared by neighbouring tiles.
DEFAULT_OVERLAP: Final = 64
MIN_TILE: Final = 256

Cancel = threading.Event | Callable[[], bool] | None
Progress = Callable[[int, int], None] | None


class EnhanceCancelled(HybridNetError):
    """Raised by :meth:`Enhancer.enhance` when ``cancel`` fired; nothing is returned."""


@dataclass(frozen=True)
class TilePlan:
    """Tile origins along each axis and the tile size (the last tiles end at the border)."""

    ys: tuple[int, ...]
    xs: tuple[int, ...]
    tile_h: int
    tile_w: int

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)


def plan_tiles(
    height: int, width: int, max_pixels: int, overlap: int = DEFAULT_OVERLAP
) -> TilePlan:
    """The grid of overlapping tiles that covers ``height×width`` with the least work.

    Every tile has at most ``max_pixels`` pixels (when possible: never smaller than
    :data:`MIN_TILE` a side), neighbours share at least ``overlap`` pixels, and among the
    grids that satisfy this the one with the smallest total computed area is chosen.
    """
    if height * width <= max_pixels:
        return TilePlan((0,), (0,), height, width)
    best: tuple[float, int, int, int, int] | None = None
    for ny in range(1, max(1, math.ceil(height / max(1, MIN_TILE - overlap))) + 1):
        th = _tile_len(height, ny, overlap)
        for nx in range(1, max(1, math.ceil(width / max(1, MIN_TILE - overlap))) + 1):
            tw = _tile_len(width, nx, overlap)
            if th * tw > max_pixels and not (th <= MIN_TILE and tw <= MIN_TILE):
                continue
            area = float(nx * ny * th * tw)
            if best is None or area < best[0]:
                best = (area, ny, nx, th, tw)
            break  # more columns only add area for this number of rows
    if best is None:  # tiny budget: smallest tiles allowed
        ny = max(1, math.ceil((height - overlap) / (MIN_TILE - overlap)))
        nx = max(1, math.ceil((width - overlap) / (MIN_TILE - overlap)))
        best = (0.0, ny, nx, _tile_len(height, ny, overlap), _tile_len(width, nx, overlap))
    _, ny, nx, th, tw = best
    return TilePlan(_origins(height, ny, th), _origins(width, nx, tw), th, tw)


def plan_for_tile_size(height: int, width: int, tile_size: int, overlap: int) -> TilePlan:
    """A grid of tiles of at most ``tile_size`` a side (a user's override)."""
    ny = 1 if height <= tile_size else math.ceil((height - overlap) / (tile_size - overlap))
    nx = 1 if width <= tile_size else math.ceil((width - overlap) / (tile_size - overlap))
    th, tw = _tile_len(height, ny, overlap), _tile_len(width, nx, overlap)
    return TilePlan(_origins(height, ny, th), _origins(width, nx, tw), th, tw)


def _tile_len(size: int, n: int, overlap: int) -> int:
    if n == 1:
        return size
    length = math.ceil((size + (n - 1) * overlap) / n)
    length = -(-length // SIZE_MULTIPLE) * SIZE_MULTIPLE  # whole multiples of 8: no padding
    return min(size, length)


def _origins(size: int, n: int, length: int) -> tuple[int, ...]:
    if n == 1:
        return (0,)
    return tuple(round(i * (size - length) / (n - 1)) for i in range(n))


def axis_weights(origins: tuple[int, ...], length: int, size: int) -> list[NDArray[np.float32]]:
    """1-D blending weights of each tile along one axis; they sum to one at every pixel.

    Raised-cosine ramps over each shared stretch (exactly complementary when, as
    :func:`plan_tiles` ensures, a tile's two overlaps do not meet); the final division by
    their sum keeps the partition of unity in any case.
    """
    raw = []
    for i, start in enumerate(origins):
        w = np.ones(length, dtype=np.float64)
        if i > 0:
            shared = origins[i - 1] + length - start
            t = (np.arange(shared) + 0.5) / shared
            w[:shared] = np.sin(np.pi / 2 * t) ** 2
        if i < len(origins) - 1:
            shared = start + length - origins[i + 1]
            t = (np.arange(shared) + 0.5) / shared
            w[length - shared :] *= np.cos(np.pi / 2 * t) ** 2
        raw.append(w)
    total = np.zeros(size, dtype=np.float64)
    for start, w in zip(origins, raw, strict=True):
        total[start : start + length] += w
    return [
        (w / total[s : s + length]).astype(np.float32) for s, w in zip(origins, raw, strict=True)
    ]


class Enhancer:
    """Loads the network once and enhances images of the contract (:mod:`hybridnet.contract`).

    Args:
        weights: a weights file; ``None`` loads the bundled model.
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:1"``...
        tile_size: fixed maximum tile side; ``None`` sizes tiles from free memory.
        model: an already built network (tests, benchmarks); overrides ``weights``.
        overlap: pixels shared by neighbouring tiles.
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        device: str | torch.device = "auto",
        tile_size: int | None = None,
        *,
        model: HybridNet | None = None,
        overlap: int = DEFAULT_OVERLAP,
    ) -> None:
        self.device = _pick_device(device)
        _check_tile_size(tile_size, overlap)
        self.tile_size = tile_size
        self.overlap = overlap
        if model is None:
            path = Path(weights) if weights is not None else BUNDLED_WEIGHTS
            if weights is None and not path.exists():
                raise WeightsError(
                    "no bundled model weights are installed yet (expected "
                    f"{BUNDLED_WEIGHTS}); pass a weights file: --weights PATH or "
                    "Enhancer(weights=PATH)"
                )
            model = load_model(path, device="cpu")
            self.weights_path: Path | None = path
        else:
            self.weights_path = None
        self.model = model.to(self.device).eval()
        #: What happened in the last call that a user should know (GPU fallbacks).
        self.notices: list[str] = []

    @property
    def config(self) -> HybridNetConfig:
        return self.model.config

    # ------------------------------------------------------------------ public

    def enhance(
        self,
        image: NDArray[np.generic],
        strength: float | Literal["auto"] = 1.0,
        progress: Progress = None,
        cancel: Cancel = None,
        *,
        tile_size: int | None = None,
        brightness: float = 0.0,
        ev: float = 0.0,
    ) -> NDArray[np.generic]:
        """Enhance ``image``; same shape and dtype out, alpha copied bit for bit.

        Args:
            image: an array of the contract (see :mod:`hybridnet.contract`).
            strength: 0..1 blend with the original, or ``"auto"``
                (:func:`hybridnet.auto_strength`).
            progress: called with ``(tiles_done, tiles_total)`` after each tile.
            cancel: an :class:`threading.Event` or a callable; checked before each tile,
                :class:`EnhanceCancelled` is raised when it is set / returns True.
            tile_size: override the tile size for this call.
            brightness: -1..1, 0 automatic, positive brighter: with the exposure
                estimator (the bundled model) two stops per unit added to the exposure
                estimated from the photo (:func:`hybridnet.contract.brightness_to_ev`);
                older weights files without it take it as how dark the photo is
                (:func:`hybridnet.contract.brightness_to_network`).
            ev: models with the exposure estimator: stops added to the exposure
                estimated from the photo (+1: twice the light, -1: half), see
                :func:`hybridnet.contract.check_ev`; added to ``brightness``'s stops.

        Raises:
            InvalidImageError: the array breaks the contract.
            EnhanceCancelled: ``cancel`` fired.
        """
        layout = check_image(image)
        if isinstance(strength, str):
            if strength != "auto":
                raise InvalidImageError(
                    f"strength must be a number in [0, 1] or 'auto', got {strength!r}"
                )
            s = auto_strength(image)
        else:
            s = check_strength(strength)
        b = check_brightness(brightness)
        e = check_ev(ev)
        has_estimator = self.model.exposure is not None
        if has_estimator:  # one exposure offset; brightness reaches the network as stops
            e, b = check_ev(max(-EV_LIMIT, min(EV_LIMIT, e + brightness_to_ev(b)))), 0.0
        elif e != 0.0:
            raise InvalidImageError(
                "this model has no exposure estimator (an older weights file), so ev cannot "
                "be set; use brightness (-1..1) or the bundled model"
            )
        _check_tile_size(tile_size, self.overlap)
        self.notices = []
        if s == 0.0:
            if progress is not None:
                progress(1, 1)
            return image.copy()
        budget_tile = tile_size if tile_size is not None else self.tile_size
        curve = self.estimate_curve(image).shifted(e) if has_estimator else None
        attempts = 0
        cap: int | None = None  # tile pixels allowed after an out-of-memory error
        while True:
            plan = self._plan(layout, budget_tile, cap)
            try:
                return self._enhance_tiles(image, layout, s, b, curve, plan, progress, cancel)
            except torch.cuda.OutOfMemoryError:
                if self.device.type != "cuda":
                    raise
                torch.cuda.empty_cache()
                attempts += 1
                cap = plan.tile_h * plan.tile_w // 2  # each retry really halves the tiles
                if plan.tile_h * plan.tile_w > MIN_TILE * MIN_TILE and attempts <= 4:
                    self.notices.append(
                        f"GPU out of memory with {plan.tile_w}×{plan.tile_h} tiles; "
                        "retrying with smaller tiles"
                    )
                    continue
                self.notices.append("GPU out of memory even with small tiles; running on the CPU")
                log.warning(self.notices[-1])
                self.device = torch.device("cpu")
                self.model.to(self.device)
                attempts, cap = 0, None

    def estimate_curve(self, image: NDArray[np.generic]) -> CurveParams:
        """The exposure estimator's global curve for a whole image of the contract.

        Computed on an area-averaged thumbnail (:func:`thumbnail_rgb`), so a photo of any
        size costs about the same and all its tiles get the same curve.
        """
        if self.model.exposure is None:
            raise WeightsError("this model has no exposure estimator (an older weights file)")
        thumb = thumbnail_rgb(image, check_image(image))
        x = torch.from_numpy(np.ascontiguousarray(thumb.transpose(2, 0, 1)))[None]
        with torch.inference_mode():
            return self.model.estimate_curve(x.to(self.device))

    def enhance_rgb(
        self, rgb: NDArray[np.float32], curve: CurveParams | None = None
    ) -> NDArray[np.float32]:
        """Bare network on one float32 RGB array H×W×3 in [0, 1], no tiling; output clipped.

        Args:
            rgb: the image.
            curve: the global curve (a tile gets its whole photo's); None: estimated from
                ``rgb`` itself (models with the exposure estimator only).

        Images thinner than the network's minimum side (a 1-pixel row or column) are
        edge-padded to it and cropped back, so any non-empty image can be enhanced.
        """
        h, w = rgb.shape[:2]
        if 0 < min(h, w) < MIN_SIDE:
            padded = np.pad(rgb, ((0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w)), (0, 0)),
                            mode="edge")
            return np.ascontiguousarray(self.enhance_rgb(padded, curve)[:h, :w])
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(self.device)
        with torch.inference_mode(), flush_denormals():
            c = None if curve is None else curve.to(self.device)
            y = self.model(x, c).clamp_(0.0, 1.0)
        return np.ascontiguousarray(y[0].permute(1, 2, 0).to("cpu", torch.float32).numpy())

    # ------------------------------------------------------------------ internals

    def _plan(self, layout: Layout, tile_size: int | None, cap: int | None = None) -> TilePlan:
        """Tiles for ``layout``: of ``tile_size`` when given, else sized from free memory;
        at most ``cap`` pixels each (set after an out-of-memory error)."""
        h, w = layout.height, layout.width
        if tile_size is not None and cap is None:
            return plan_for_tile_size(h, w, tile_size, self.overlap)
        max_pixels = self._max_tile_pixels()
        if tile_size is not None:
            max_pixels = min(max_pixels, tile_size * tile_size)
        if cap is not None:
            max_pixels = min(max_pixels, cap)
        return plan_tiles(h, w, max(max_pixels, MIN_TILE * MIN_TILE), self.overlap)

    def _max_tile_pixels(self) -> int:
        per_pixel = BYTES_PER_PIXEL * _width_factor(self.config)
        if self.device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self.device)
            budget = 0.7 * free
        else:
            budget = min(CPU_BUDGET_BYTES, 0.5 * _available_memory())
        return int(budget / per_pixel)

    def _enhance_tiles(
        self,
        image: NDArray[np.generic],
        layout: Layout,
        strength: float,
        brightness: float,
        curve: CurveParams | None,
        plan: TilePlan,
        progress: Progress,
        cancel: Cancel,
    ) -> NDArray[np.generic]:
        h, w = layout.height, layout.width
        out = np.empty_like(image)
        wx = axis_weights(plan.xs, plan.tile_w, w)
        wy = axis_weights(plan.ys, plan.tile_h, h)
        acc = np.zeros((0, w, 3), dtype=np.float32)
        acc_start = 0
        done, total = 0, plan.count
        for j, y in enumerate(plan.ys):
            band_end = y + plan.tile_h
            have = acc_start + acc.shape[0]
            if have < band_end:
                acc = np.concatenate([acc, np.zeros((band_end - have, w, 3), np.float32)])
            for i, x in enumerate(plan.xs):
                if _cancelled(cancel):
                    raise EnhanceCancelled("enhancement cancelled")
                tile = image[y : y + plan.tile_h, x : x + plan.tile_w]
                rgb = brightness_to_network(colour_to_float(tile, layout), brightness)
                result = self.enhance_rgb(rgb, curve)
                result *= wy[j][:, None, None]
                result *= wx[i][None, :, None]
                acc[y - acc_start : band_end - acc_start, x : x + plan.tile_w] += result
                done += 1
                if progress is not None:
                    progress(done, total)
            next_y = plan.ys[j + 1] if j + 1 < len(plan.ys) else h
            k = next_y - acc_start
            rows = slice(acc_start, next_y)
            out[rows] = self._finish(acc[:k], image[rows], layout, strength)
            acc = acc[k:]
            acc_start = next_y
        return out

    @staticmethod
    def _finish(
        enhanced_rgb: NDArray[np.float32],
        original: NDArray[np.generic],
        layout: Layout,
        strength: float,
    ) -> NDArray[np.generic]:
        colour = float_to_colour(enhanced_rgb, layout)
        if strength < 1.0:
            c = layout.colour_channels
            orig = (original[..., None] if layout.squeeze else original)[..., :c]
            base = unit_float(orig, layout.dtype)  # unclipped: strength < 1 keeps the original
            colour = base + np.float32(strength) * (colour - base)
        return assemble(quantize(colour, layout.dtype), original, layout)


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats to zero while the network runs (CPU), then turn it off.

    Activations (the RNN's decaying state, dead channels) can fall into the denormal range
    whatever the weights (which are flushed when loaded), and CPUs compute those tens of
    times slower; no visible value is that small. Only for the forward: the setting is
    process-wide, and other code (numpy, hypothesis) expects IEEE subnormals.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def thumbnail_rgb(
    image: NDArray[np.generic], layout: Layout, side: int = THUMBNAIL_SIDE
) -> NDArray[np.float32]:
    """The colour of ``image`` averaged over ``f x f`` blocks, float32 RGB, longer side at
    most ``side`` (as :func:`hybridnet.exposure.thumbnail`; trailing partial blocks are
    averaged over what they hold). Converted band by band: memory stays small."""
    h, w = layout.height, layout.width
    f = max(1, math.ceil(max(h, w) / side))
    th, tw = -(-h // f), -(-w // f)
    out = np.empty((th, tw, 3), dtype=np.float32)
    cols = np.minimum(np.arange(tw + 1) * f, w)
    for i in range(th):
        band = colour_to_float(image[i * f : (i + 1) * f], layout).astype(np.float64)
        sums = np.add.reduceat(band.sum(axis=0), cols[:-1], axis=0)
        out[i] = sums / (band.shape[0] * np.diff(cols))[:, None]
    return out


def _check_tile_size(tile_size: int | None, overlap: int) -> None:
    """Tiles must hold both overlaps and one step of the network's size multiple."""
    if tile_size is not None and tile_size < 2 * overlap + SIZE_MULTIPLE:
        raise ValueError(
            f"tile_size must be at least {2 * overlap + SIZE_MULTIPLE} px (two overlaps of "
            f"{overlap} px and {SIZE_MULTIPLE} more), got {tile_size}"
        )


def _cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _pick_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; "
                         "use device 'auto' or 'cpu'")
    return dev


def _width_factor(config: HybridNetConfig) -> float:
    """Memory of ``config`` relative to the default config (full-resolution widths)."""

    def score(c: HybridNetConfig) -> float:
        return c.content_channels[0] + c.edge_channels[0] + c.fusion_channels + 6 * c.rnn_channels

    return max(0.25, score(config) / score(HybridNetConfig()))


def _available_memory() -> float:
    """Available physical memory in bytes (Linux /proc/meminfo; a safe guess elsewhere)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4e9
