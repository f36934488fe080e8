r"""Training pairs for the blind model: a photo darkened by a camera or by the paper's
gamma, and the global curve (:mod:`hybridnet.exposure`) that undoes the darkening.

Torch-free (numpy only). One *darkening* is drawn per sample for the whole photo
(:class:`BlindDarkenings`); the same darkening gives

* the 128-pixel training patch of the restoration network, whose input is the dark
  patch brought back by the *oracle* curve of that darkening
  (:meth:`Darkening.oracle_curve`): the network learns to restore, the exposure is the
  estimator's job; and
* a thumbnail of the whole dark photo for the exposure estimator
  (:meth:`Darkening.apply` with ``noise_scale``), with the noise a thumbnail of the
  full-size photo would have.

The two families, each with the exact inverse inside the curve family:

* **camera** (:func:`hybridnet.degrade.apply_realistic`): underexposure by 0 to 6 stops
  in linear light, lamps and windows above white (:func:`hybridnet.degrade.headroom`),
  veiling flare, Poisson-Gaussian sensor noise over a phone's ISO range, sRGB, 8 bits
  and half the time JPEG; undone by :math:`a = 1`, :math:`e` = the stops,
  :math:`b` = the flare;
* **gamma** (:func:`hybridnet.degrade.gamma_darken`, Ren et al. Sec. IV-A, widened
  from (2, 4) to (1.5, 5)): undone by :math:`a = 1/\gamma`, :math:`e = 0`, :math:`b = 0`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hybridnet.degrade import (
    PATCH_SIZE,
    RealisticDraw,
    RealisticParams,
    apply_realistic,
    draw_realistic,
    gamma_darken,
    headroom,
    linear_to_sRGB,
    sRGB_to_linear,
)
from hybridnet.metrics import REC709_LUMA

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
FloatArray = NDArray[np.floating[Any]]

_LUMA = np.asarray(REC709_LUMA)

#: The camera-like ranges of the blind model (see :class:`hybridnet.degrade.RealisticParams`).
BLIND_CAMERA = RealisticParams(
    exposure_range=(2.0**-6, 1.0),
    wb_shift=0.04,
    electrons_range=(150.0, 8000.0),
    read_noise_range=(0.5, 3.0),
    jpeg_probability=0.5,
    jpeg_quality_range=(70, 95),
    headroom_probability=0.4,
    headroom_range=(1.5, 64.0),
    flare_range=(0.0, 0.02),
)


@dataclass(frozen=True)
class ImageStats:
    """Mean linear luminance of a clean photo, split so that of any :func:`headroom` is
    one multiply-add: :math:`\\bar L(H) = m_0 + (H - 1)\\, m_1`."""

    base: float
    bright: float

    @classmethod
    def of(cls, clean: FloatArray) -> ImageStats:
        x = np.asarray(clean, dtype=np.float64)
        lin = sRGB_to_linear(x)
        boosted = headroom(lin, x, 2.0)  # L (1 + w): the highlight part is boosted - base
        base = float((lin @ _LUMA).mean())
        return cls(base, float((boosted @ _LUMA).mean()) - base)

    def mean_luminance(self, factor: float) -> float:
        return self.base + (factor - 1.0) * self.bright


@dataclass(frozen=True)
class Darkening:
    """One darkening of a whole photo: a camera draw, or a gamma with Gaussian noise."""

    camera: RealisticDraw | None = None
    gamma: float = 1.0
    noise_sigma: float = 0.0

    def apply(
        self,
        clean: FloatArray,
        rng: np.random.Generator,
        *,
        mean_luminance: float | None = None,
        noise_scale: float = 1.0,
    ) -> F32:
        """The dark version of ``clean`` (a patch of the photo, or its thumbnail).

        Args:
            clean: sRGB ``H x W x 3`` in [0, 1].
            rng: the noise.
            mean_luminance: the whole photo's scene luminance (flare), see
                :meth:`ImageStats.mean_luminance`.
            noise_scale: ``f`` for an ``f``-times area-downsampled thumbnail: noise of
                the average of ``f x f`` pixels, and no JPEG or 8-bit rounding (which a
                thumbnail of the full-size photo averages away).
        """
        if self.camera is not None:
            draw = self.camera
            if noise_scale > 1.0:
                draw = replace(draw, jpeg_quality=None, quantize_8bit=False)
            return apply_realistic(
                clean, draw, rng, mean_luminance=mean_luminance, noise_scale=noise_scale
            )
        return gamma_darken(
            clean, self.gamma, self.noise_sigma / noise_scale, rng,
            quantize_8bit=noise_scale <= 1.0,
        )

    def oracle_curve(self, mean_luminance: float) -> tuple[float, float, float]:
        """``(a, black, ev)`` of the curve that undoes this darkening exactly (noise and
        white balance aside)."""
        if self.camera is None:
            return 1.0 / self.gamma, 0.0, 0.0
        return 1.0, min(0.5, self.camera.flare * mean_luminance), self.camera.ev


@dataclass(frozen=True)
class BlindDarkenings:
    """The distribution of darkenings the blind model is trained on.

    Attributes:
        camera_probability: share of camera-like darkenings (the rest: gamma).
        gamma_range: the gamma, uniform.
        noise_sigma_range: Gaussian noise of the gamma family, uniform, on [0, 1].
        camera: ranges of the camera family.
    """

    camera_probability: float = 0.6
    gamma_range: tuple[float, float] = (1.5, 5.0)
    noise_sigma_range: tuple[float, float] = (0.0, 0.03)
    camera: RealisticParams = field(default_factory=lambda: BLIND_CAMERA)

    def __post_init__(self) -> None:
        if not 0.0 <= self.camera_probability <= 1.0:
            raise ValueError(
                f"camera_probability must be in [0, 1], got {self.camera_probability}"
            )
        lo, hi = self.gamma_range
        if not 0.0 < lo <= hi:
            raise ValueError(f"gamma_range must satisfy 0 < lo <= hi, got {self.gamma_range}")
        lo, hi = self.noise_sigma_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"noise_sigma_range must lie in [0, 1], got {self.noise_sigma_range}")

    def draw(self, rng: np.random.Generator) -> Darkening:
        if rng.random() < self.camera_probability:
            return Darkening(camera=draw_realistic(rng, self.camera))
        return Darkening(
            gamma=float(rng.uniform(*self.gamma_range)),
            noise_sigma=float(rng.uniform(*self.noise_sigma_range)),
        )


def reexpose(clean: FloatArray, ev: float) -> F32:
    """``clean`` as a camera would have recorded it ``ev`` stops brighter (clipped)."""
    if ev == 0.0:
        return np.asarray(clean, dtype=np.float32)
    lin = sRGB_to_linear(np.asarray(clean, dtype=np.float64)) * 2.0**ev
    return linear_to_sRGB(np.minimum(lin, 1.0)).astype(np.float32)


def _dihedral(img: F64, k: int, flip: bool) -> F64:
    out = np.rot90(img, k=k, axes=(0, 1))
    return np.ascontiguousarray(out[:, ::-1] if flip else out)


@dataclass(frozen=True)
class BlindPairSampler:
    """Random ``(low, high, curve)`` training patches from one clean photo.

    1. a square crop of ``patch_size`` and one of the 8 symmetries of the square;
    2. a darkening from ``darkenings`` applied to it (flare scaled by the whole photo's
       luminance, ``stats``);
    3. ``curve`` = the darkening's oracle curve ``(a, black, ev)``; with ``ev_jitter``
       > 0 its ``ev`` is moved by a uniform :math:`\\Delta \\in [-j, j]` and the target
       re-exposed by the same :math:`\\Delta` (:func:`reexpose`), so the network learns
       to keep whatever exposure it is given (the person's EV control).

    The network's input is ``apply_curve(low, curve)``, done in torch on the batch.
    """

    patch_size: int = PATCH_SIZE
    darkenings: BlindDarkenings = field(default_factory=BlindDarkenings)
    ev_jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {self.patch_size}")
        if not 0.0 <= self.ev_jitter <= 4.0 or math.isnan(self.ev_jitter):
            raise ValueError(f"ev_jitter must be in [0, 4] stops, got {self.ev_jitter}")

    def __call__(
        self,
        clean: FloatArray | NDArray[np.uint8],
        rng: np.random.Generator,
        stats: ImageStats,
    ) -> tuple[F32, F32, F32]:
        """``(low, high, curve)`` from ``clean`` (``H x W x 3``, uint8 or float in [0, 1]);
        ``stats`` are the whole photo's (:meth:`ImageStats.of`)."""
        x = np.asarray(clean)
        h, w = x.shape[:2]
        p = self.patch_size
        if h < p or w < p:
            raise ValueError(f"image {h}x{w} is smaller than the {p}x{p} patch")
        top = int(rng.integers(0, h - p + 1))
        left = int(rng.integers(0, w - p + 1))
        k = int(rng.integers(0, 4))
        flip = bool(rng.random() < 0.5)
        crop = x[top : top + p, left : left + p].astype(np.float64)
        if x.dtype == np.uint8:
            crop /= 255.0
        high = _dihedral(crop, k, flip)
        darkening = self.darkenings.draw(rng)
        room = darkening.camera.headroom if darkening.camera is not None else 1.0
        mean = stats.mean_luminance(room)
        low = darkening.apply(high, rng, mean_luminance=mean)
        a, black, ev = darkening.oracle_curve(mean)
        target = high.astype(np.float32)
        if self.ev_jitter > 0.0:
            delta = float(rng.uniform(-self.ev_jitter, self.ev_jitter))
            ev += delta
            target = reexpose(high, delta)
        return low, target, np.asarray([a, black, ev], dtype=np.float32)
