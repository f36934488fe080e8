r"""Training of the exposure estimator (:class:`hybridnet.exposure.ExposureEstimator`).

The estimator sees only a thumbnail of the whole photo, so it is trained apart from the
restoration network, on thumbnails, in minutes on a CPU:

1. every clean training photo is area-downsampled by an integer factor ``f`` to at most
   :data:`~hybridnet.exposure.THUMBNAIL_SIDE` pixels a side;
2. each sample darkens one thumbnail with a darkening of
   :class:`~hybridnet.blind_pairs.BlindDarkenings` (with the noise of an ``f x f``
   average, :meth:`~hybridnet.blind_pairs.Darkening.apply`), computes its
   :func:`~hybridnet.exposure.exposure_features`, and keeps ``pixels`` random pixel
   pairs (dark, clean) of it;
3. the loss is the mean squared error of the estimated curve applied to the dark pixels
   against the clean ones,

.. math::

    \mathcal L = \frac{1}{|B|}\sum_{i \in B} \frac{1}{3P}\sum_{j}
        \big\lVert C_{\hat\theta(\phi_i)}(y_{ij}) - x_{ij} \big\rVert^2 ,

an unbiased estimate of the thumbnail's MSE, since the curve acts pixel by pixel: the
estimator learns the curve that best restores a typical photo with these statistics.

Every sample is a pure function of ``(seed, index)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from hybridnet.blind_pairs import BlindDarkenings, Darkening, ImageStats
from hybridnet.degrade import sRGB_to_linear
from hybridnet.exposure import (
    THUMBNAIL_SIDE,
    CurveParams,
    ExposureEstimator,
    apply_curve,
    exposure_features,
)
from hybridnet.hybrid_network import HybridNet
from hybridnet.metrics import REC709_LUMA

log = logging.getLogger("hybridnet.train_exposure")

U8 = NDArray[np.uint8]
F64 = NDArray[np.float64]


def area_thumbnail(image: NDArray[np.floating], side: int = THUMBNAIL_SIDE) -> tuple[F64, int]:
    """``(thumbnail, f)``: ``image`` averaged over ``f x f`` blocks (the integer ``f`` that
    brings its longer side to at most ``side``; partial blocks at the far edges are cropped)."""
    x = np.asarray(image, dtype=np.float64)
    h, w = x.shape[:2]
    f = max(1, math.ceil(max(h, w) / side))
    if f == 1:
        return x, 1
    hh, ww = (h // f) * f, (w // f) * f
    blocks = x[:hh, :ww].reshape(hh // f, f, ww // f, f, -1)
    return blocks.mean(axis=(1, 3)), f


@dataclass
class ThumbnailSet:
    """The clean training photos as thumbnails, with their downsampling factors and stats."""

    thumbs: list[F64]
    factors: list[int]
    stats: list[ImageStats]

    @classmethod
    def from_images(cls, images: Sequence[U8 | NDArray[np.floating]]) -> ThumbnailSet:
        thumbs, factors, stats = [], [], []
        for image in images:
            x = np.asarray(image)
            clean = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
            thumb, f = area_thumbnail(clean)
            thumbs.append(np.clip(thumb, 0.0, 1.0))
            factors.append(f)
            stats.append(ImageStats.of(clean))
        return cls(thumbs, factors, stats)

    def sample(
        self, index: int, darkening: Darkening, rng: np.random.Generator
    ) -> tuple[F64, NDArray[np.float32]]:
        """``(clean thumbnail, dark thumbnail)`` of photo ``index`` under ``darkening``."""
        clean = self.thumbs[index]
        room = darkening.camera.headroom if darkening.camera is not None else 1.0
        dark = darkening.apply(
            clean, rng, mean_luminance=self.stats[index].mean_luminance(room),
            noise_scale=float(self.factors[index]),
        )
        return clean, dark


def features_of(dark: NDArray[np.floating]) -> torch.Tensor:
    """:func:`exposure_features` of one ``H x W x 3`` array, shape ``FEATURES``."""
    t = torch.from_numpy(np.ascontiguousarray(dark, dtype=np.float32)).permute(2, 0, 1)[None]
    return exposure_features(t)[0]


@dataclass
class EstimatorSamples:
    """A fixed pool of estimator training samples: features and random pixel pairs."""

    features: torch.Tensor  # N x FEATURES
    dark: torch.Tensor  # N x 3 x P (pixels as a 1-pixel-high image)
    clean: torch.Tensor  # N x 3 x P

    @classmethod
    def draw(
        cls,
        thumbs: ThumbnailSet,
        darkenings: BlindDarkenings,
        count: int,
        seed: int,
        pixels: int = 512,
    ) -> EstimatorSamples:
        feats, darks, cleans = [], [], []
        for i in range(count):
            rng = np.random.default_rng([seed, i])
            index = int(rng.integers(len(thumbs.thumbs)))
            clean, dark = thumbs.sample(index, darkenings.draw(rng), rng)
            feats.append(features_of(dark))
            flat_clean = clean.reshape(-1, 3)
            pick = rng.integers(0, flat_clean.shape[0], size=pixels)
            darks.append(torch.from_numpy(dark.reshape(-1, 3)[pick].T.astype(np.float32)))
            cleans.append(torch.from_numpy(flat_clean[pick].T.astype(np.float32)))
        return cls(torch.stack(feats), torch.stack(darks), torch.stack(cleans))


def curve_loss(
    estimator: ExposureEstimator, features: torch.Tensor, dark: torch.Tensor, clean: torch.Tensor
) -> torch.Tensor:
    """Mean squared error of the estimated curves on the pixel pairs (module docstring)."""
    params = estimator(features)
    out = apply_curve(dark[:, :, None, :], params)[:, :, 0, :]
    return torch.mean((out - clean) ** 2)


def train_estimator(
    samples: EstimatorSamples,
    *,
    hidden: int = 64,
    steps: int = 4000,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    estimator: ExposureEstimator | None = None,
) -> ExposureEstimator:
    """Fit an estimator to ``samples`` with Adam (learning rate cosine-annealed to 0)."""
    torch.manual_seed(seed)
    model = estimator if estimator is not None else ExposureEstimator(hidden)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    n = samples.features.shape[0]
    for step in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        loss = curve_loss(model, samples.features[idx], samples.dark[idx], samples.clean[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
        if (step + 1) % 500 == 0:
            log.info("estimator step %d  loss %.5g", step + 1, float(loss.detach()))
    return model.eval()


def exposure_error(result: NDArray[np.floating], clean: NDArray[np.floating]) -> float:
    r"""Exposure error of a result in stops: :math:`\log_2 \bar Y_{result} / \bar Y_{clean}`
    with :math:`\bar Y` the mean linear luminance (positive: too bright)."""
    weights = np.asarray(REC709_LUMA)

    def mean_y(img: NDArray[np.floating]) -> float:
        return max(float((sRGB_to_linear(img) @ weights).mean()), 1e-6)
    return math.log2(mean_y(result) / mean_y(clean))


def estimate_curve(estimator: ExposureEstimator, dark: NDArray[np.floating]) -> CurveParams:
    """The estimator's curve for one ``H x W x 3`` photo."""
    with torch.no_grad():
        params: CurveParams = estimator(features_of(dark)[None])
    return params


def fit_into_network(
    network: HybridNet,
    train_images: Sequence[U8 | NDArray[np.floating]],
    val_images: Sequence[U8 | NDArray[np.floating]],
    *,
    samples: int = 20000,
    val_samples: int = 1000,
    steps: int = 8000,
    seed: int = 0,
    darkenings: BlindDarkenings | None = None,
) -> tuple[HybridNet, dict[str, float]]:
    """Train ``network``'s exposure estimator (its config's width) on thumbnails of
    ``train_images`` and put it into the network; returns the network and the median
    absolute exposure error in stops (:func:`exposure_error` of the curve's result
    against the clean thumbnail) on fresh darkenings of ``val_images``, per family.
    """
    if network.exposure is None:
        raise ValueError("this network has no exposure estimator (config.exposure is off)")
    darks = darkenings or BlindDarkenings()
    pool = EstimatorSamples.draw(ThumbnailSet.from_images(train_images), darks, samples, seed)
    estimator = train_estimator(pool, hidden=network.config.estimator_hidden, steps=steps,
                                seed=seed)
    network.exposure.load_state_dict(estimator.state_dict())
    val = ThumbnailSet.from_images(val_images)
    errors: dict[str, list[float]] = {"camera": [], "gamma": []}
    for i in range(val_samples):
        rng = np.random.default_rng([seed + 1, i])
        index = int(rng.integers(len(val.thumbs)))
        darkening = darks.draw(rng)
        clean, dark = val.sample(index, darkening, rng)
        params = estimate_curve(estimator, dark)
        t = torch.from_numpy(np.ascontiguousarray(dark, dtype=np.float32)).permute(2, 0, 1)[None]
        result = apply_curve(t, params)[0].permute(1, 2, 0).clamp(0, 1).numpy()
        family = "camera" if darkening.camera is not None else "gamma"
        errors[family].append(abs(exposure_error(result, clean)))
    report = {f"median |EV error| {k}": float(np.median(v)) for k, v in errors.items() if v}
    return network, report
