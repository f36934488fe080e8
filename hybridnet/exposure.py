r"""Exposure: the global tone curve a dark photo needs, estimated from the photo itself.

Not in the paper. Ren et al. train on photos darkened by a random gamma and let the
network guess how dark each one was; a fully convolutional network that sees a 128-pixel
patch (or one tile of a large photo) cannot know that, and a guess averaged over the
training darkenings lifts the shadows of real photos into haze. Here the job is split:

1. :class:`ExposureEstimator`, a small head, looks at the *whole* photo (a thumbnail's
   luma statistics, :func:`exposure_features`) and predicts the parameters
   :math:`\theta = (a, b, e)` of one global tone curve (:func:`apply_curve`);
2. the curve brings the photo to a normal exposure, the same curve for every tile;
3. the hybrid network restores what a curve cannot (noise, detail, local contrast) and
   adds its correction to the curve's result (:class:`hybridnet.HybridNet`).

The curve
---------
For an sRGB-encoded input :math:`y \in [0, 1]` (per channel), with :math:`E` the sRGB
EOTF (encoded to linear light) and :math:`E^{-1}` its inverse:

.. math::

    u &= y^{a}                                   && \text{undo a gamma darkening (paper)}\\
    t &= 2^{e}\, E(u)                            && \text{exposure, in EV (camera)}\\
    t' &= \frac{\max(t - b, 0)}{1 - b}            && \text{black point (flare, haze)}\\
    \hat x &= E^{-1}\big(S(t')\big)               && \text{highlight shoulder}

The family contains the exact inverse of both darkenings the model is trained on: the
paper's :math:`y = x^\gamma` (:math:`a = 1/\gamma`, :math:`e = 0`) and a camera's
underexposure by :math:`k = 2^{-e}` in linear light (:math:`a = 1`). A person's
exposure control is an offset to :math:`e` in photographic stops ("+1 EV" doubles the
light), applied to the automatic estimate.

The shoulder keeps highlights that the gain pushes past white from clipping hard:

.. math::

    S(t) = \begin{cases} t & t \le k \\
        k + (1 - k) \tanh\!\big(\tfrac{t - k}{1 - k}\big) & t > k \end{cases}
    \qquad k = 0.9,

continuous with its slope, monotone, below 1 for every finite :math:`t` (in exact
arithmetic; float32 rounds it to 1 from about :math:`t = 1.8`); it leaves
linear values up to 0.9 (encoded 0.955) alone and maps 1 to 0.976. The network, which
restores :math:`x` from :math:`\hat x`, learns to undo that fixed compression.

The estimator
-------------
A multilayer perceptron on :data:`FEATURES` statistics of the photo's luma (a
histogram, log-luminance percentiles, the clipped and black fractions) computed on a
thumbnail of at most :data:`THUMBNAIL_SIDE` pixels a side (area-averaged, so sensor
noise mostly averages out and a 50-megapixel photo costs what a small one does). It is
trained to minimise the error of the curve's output against the clean photo
(:mod:`hybridnet.train_exposure`), so its output is the curve that best restores a
typical photo that looks like this one.

:meth:`ExposureEstimator.estimate` then applies two product rules on the thumbnail: a
brightness floor (:func:`lift_to_floor`: a dark photo is brought to a normal key, since
the estimator's answer for an ambiguous dark photo is a cautious middle) and an
automatic black point (:func:`auto_black`: the floor of flare and black-level offsets
that the gain would multiply into a veil).
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybridnet.metrics import REC709_LUMA

#: Longest side of the thumbnail the features are computed on.
THUMBNAIL_SIDE: Final = 128
#: Knee of the highlight shoulder :math:`S`, in linear light.
SHOULDER_KNEE: Final = 0.9
#: Bins of the encoded-luma histogram feature.
HISTOGRAM_BINS: Final = 32
#: Percentiles of log2 linear luminance used as features.
PERCENTILES: Final = (0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.9)
#: Bins of the log-luminance histogram feature, over [LOG_HISTOGRAM_LOW, 0] stops.
LOG_HISTOGRAM_BINS: Final = 24
LOG_HISTOGRAM_LOW: Final = -12.0
#: Percentiles of log2 of the brightest channel (where the highlights end).
MAX_PERCENTILES: Final = (90, 99, 99.9, 100)
#: Number of features :func:`exposure_features` returns per image.
FEATURES: Final = (
    HISTOGRAM_BINS + LOG_HISTOGRAM_BINS + len(PERCENTILES) + len(MAX_PERCENTILES) + 4
)
#: Range of each curve parameter the estimator can return.
GAMMA_INVERSE_RANGE: Final = (0.2, 1.5)
BLACK_MAX: Final = 0.1
EV_LIMIT: Final = 8.0
#: The automatic exposure brings a photo's mean encoded luma to at least this (97 of
#: 255; :func:`lift_to_floor`), at most :data:`FLOOR_MAX_LIFT` stops above the estimate.
LUMA_FLOOR: Final = 0.38
FLOOR_MAX_LIFT: Final = 4.0
#: The floor's lift stops where this percentile of the luminance would reach...
HIGHLIGHT_PERCENTILE: Final = 99.0
#: ... at this many times white in linear light (the shoulder rolls the rest off).
HIGHLIGHT_HEADROOM: Final = 8.0
#: The automatic black point: this percentile of the photo's luminance after the gain
#: (:func:`auto_black`) times :data:`BLACK_SHARE` becomes black.
BLACK_PERCENTILE: Final = 1.0
BLACK_SHARE: Final = 0.9
#: Floor of linear luminance in the log features (below 8-bit black's first step).
_LOG_FLOOR: Final = 1e-4
#: Rec. 709 luma weights.
_LUMA: Final = REC709_LUMA


class CurveParams(NamedTuple):
    """Parameters of :func:`apply_curve`, each a tensor of shape ``N`` (one per image).

    Attributes:
        a: exponent on the encoded values (:math:`1/\\gamma`; 1 leaves them).
        black: black point :math:`b` in linear light after the gain, in [0, 1).
        ev: exposure gain :math:`e` in stops.
    """

    a: Tensor
    black: Tensor
    ev: Tensor

    @staticmethod
    def identity(n: int = 1, device: torch.device | str = "cpu") -> CurveParams:
        """The curve that changes nothing but the shoulder (a = 1, b = 0, e = 0)."""
        ones = torch.ones(n, device=device)
        return CurveParams(ones, torch.zeros_like(ones), torch.zeros_like(ones))

    def shifted(self, ev: float) -> CurveParams:
        """The same curve ``ev`` stops brighter (negative: darker)."""
        return CurveParams(self.a, self.black, self.ev + ev)

    def stack(self) -> Tensor:
        """``N×3`` tensor ``[a, black, ev]`` (how batches carry them)."""
        return torch.stack([self.a, self.black, self.ev], dim=1)

    @staticmethod
    def unstack(values: Tensor) -> CurveParams:
        """Inverse of :meth:`stack`."""
        if values.dim() != 2 or values.shape[1] != 3:
            raise ValueError(
                f"curve parameters must be N×3 [a, black, ev], got {tuple(values.shape)}"
            )
        return CurveParams(values[:, 0], values[:, 1], values[:, 2])

    def to(self, device: torch.device | str) -> CurveParams:
        return CurveParams(self.a.to(device), self.black.to(device), self.ev.to(device))


# --------------------------------------------------------------------------------------
# sRGB transfer functions and the curve (torch, differentiable)
# --------------------------------------------------------------------------------------


def srgb_to_linear(v: Tensor) -> Tensor:
    r"""sRGB EOTF (IEC 61966-2-1) on tensors; values are clamped to :math:`[0, 1]`."""
    v = v.clamp(0.0, 1.0)
    return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055).pow(2.4))


def linear_to_srgb(lin: Tensor) -> Tensor:
    r"""sRGB OETF (IEC 61966-2-1) on tensors; values are clamped to :math:`[0, 1]`.

    The power is taken of at least the linear segment's end, so the gradient stays
    finite at 0.
    """
    lin = lin.clamp(0.0, 1.0)
    power = 1.055 * lin.clamp_min(0.0031308).pow(1.0 / 2.4) - 0.055
    return torch.where(lin <= 0.0031308, 12.92 * lin, power)


def shoulder(t: Tensor, knee: float = SHOULDER_KNEE) -> Tensor:
    r"""Highlight shoulder :math:`S` (module docstring): identity up to ``knee``, then a
    tanh roll-off towards 1. Negative values are clamped to 0."""
    t = t.clamp_min(0.0)
    span = 1.0 - knee
    return torch.where(t <= knee, t, knee + span * torch.tanh((t - knee) / span))


def apply_curve(image: Tensor, params: CurveParams) -> Tensor:
    r"""Apply the global tone curve of ``params`` (module docstring) to ``N×3×H×W``.

    Args:
        image: sRGB-encoded values in :math:`[0, 1]`.
        params: one set of parameters per image of the batch.

    Returns:
        Encoded values in :math:`[0, 1)`, same shape.
    """
    n = image.shape[0]
    for name, value in zip(params._fields, params, strict=True):
        if value.shape != (n,):
            raise ValueError(
                f"curve parameter {name} must have shape ({n},), got {tuple(value.shape)}"
            )
    a = params.a.view(n, 1, 1, 1).to(image.dtype)
    black = params.black.view(n, 1, 1, 1).to(image.dtype)
    gain = torch.exp2(params.ev.view(n, 1, 1, 1).to(image.dtype))
    u = image.clamp(0.0, 1.0).clamp_min(1e-6).pow(a)
    t = gain * srgb_to_linear(u)
    t = (t - black).clamp_min(0.0) / (1.0 - black)
    return linear_to_srgb(shoulder(t))


# --------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------


def thumbnail(image: Tensor, side: int = THUMBNAIL_SIDE) -> Tensor:
    """Area-average ``N×3×H×W`` down so its longer side is at most ``side`` (integer factor)."""
    h, w = image.shape[-2:]
    factor = max(1, math.ceil(max(h, w) / side))
    if factor == 1:
        return image
    return F.avg_pool2d(image, factor, ceil_mode=True, count_include_pad=False)


def exposure_features(image: Tensor) -> Tensor:
    r"""The estimator's input: ``N×FEATURES`` statistics of ``N×3×H×W`` sRGB images.

    Computed on the :func:`thumbnail` (so they hardly depend on the photo's size), on the
    Rec. 709 luma :math:`Y'` of the encoded values and the luminance :math:`Y = E(Y')`:

    * the histogram of :math:`Y'` in :data:`HISTOGRAM_BINS` equal bins (fractions), and
      of :math:`\log_2 Y` in :data:`LOG_HISTOGRAM_BINS` bins over
      [:data:`LOG_HISTOGRAM_LOW`, 0] (resolution in the shadows);
    * :math:`\log_2 \max(Y, 10^{-4})` at the :data:`PERCENTILES`, and of the brightest
      channel in linear light at the :data:`MAX_PERCENTILES`, divided by 10;
    * the fraction of pixels whose brightest channel is at least 0.98 (clipped
      highlights), of pixels with :math:`Y' < 2/255` (crushed black), the log-average
      and the log of the mean of :math:`Y`, both in units of 10 stops.
    """
    thumb = thumbnail(image.float().clamp(0.0, 1.0))
    n = thumb.shape[0]
    weights = torch.tensor(_LUMA, device=thumb.device).view(1, 3, 1, 1)
    luma = (thumb * weights).sum(1).reshape(n, -1)
    linear = srgb_to_linear(luma)
    log_y = torch.log2(linear.clamp_min(_LOG_FLOOR))
    bins = (luma * HISTOGRAM_BINS).long().clamp_(0, HISTOGRAM_BINS - 1)
    hist = torch.zeros(n, HISTOGRAM_BINS, device=thumb.device)
    hist.scatter_add_(1, bins, torch.ones_like(luma))
    hist /= luma.shape[1]
    log_bins = ((log_y - LOG_HISTOGRAM_LOW) / -LOG_HISTOGRAM_LOW * LOG_HISTOGRAM_BINS).long()
    log_bins.clamp_(0, LOG_HISTOGRAM_BINS - 1)
    log_hist = torch.zeros(n, LOG_HISTOGRAM_BINS, device=thumb.device)
    log_hist.scatter_add_(1, log_bins, torch.ones_like(luma))
    log_hist /= luma.shape[1]
    q = torch.tensor([p / 100 for p in PERCENTILES], device=thumb.device)
    percentiles = torch.quantile(log_y, q, dim=1).T / 10.0
    brightest = torch.log2(srgb_to_linear(thumb.amax(1).reshape(n, -1)).clamp_min(_LOG_FLOOR))
    q_max = torch.tensor([p / 100 for p in MAX_PERCENTILES], device=thumb.device)
    max_percentiles = torch.quantile(brightest, q_max, dim=1).T / 10.0
    clipped = (thumb.amax(1).reshape(n, -1) >= 0.98).float().mean(1, keepdim=True)
    crushed = (luma < 2 / 255).float().mean(1, keepdim=True)
    log_average = log_y.mean(1, keepdim=True) / 10.0
    log_mean = torch.log2(linear.mean(1, keepdim=True).clamp_min(_LOG_FLOOR)) / 10.0
    return torch.cat(
        [hist, log_hist, percentiles, max_percentiles, clipped, crushed, log_average, log_mean],
        dim=1,
    )


# --------------------------------------------------------------------------------------
# the estimator
# --------------------------------------------------------------------------------------


class ExposureEstimator(nn.Module):
    """Predicts the :class:`CurveParams` of a photo from its :func:`exposure_features`.

    Two hidden layers of ``hidden`` units with LeakyReLU, three outputs squashed into the
    parameter ranges (:data:`GAMMA_INVERSE_RANGE`, :data:`BLACK_MAX`, :data:`EV_LIMIT`).
    A new estimator returns about the identity curve.

    Args:
        hidden: width of the hidden layers.
    """

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(FEATURES, hidden),
            nn.LeakyReLU(0.1),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.1),
            nn.Linear(hidden, 3),
        )
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        lo, hi = GAMMA_INVERSE_RANGE
        with torch.no_grad():
            # a = 1, black = BLACK_MAX * sigmoid(-5) ~ 0.0007, ev = 0
            last.bias.copy_(torch.tensor([_logit((1.0 - lo) / (hi - lo)), -5.0, 0.0]))

    def forward(self, features: Tensor) -> CurveParams:
        raw = self.net(features)
        lo, hi = GAMMA_INVERSE_RANGE
        a = lo + (hi - lo) * torch.sigmoid(raw[:, 0])
        black = BLACK_MAX * torch.sigmoid(raw[:, 1])
        ev = EV_LIMIT * torch.tanh(raw[:, 2] / EV_LIMIT)
        return CurveParams(a, black, ev)

    def estimate(self, image: Tensor, floor: float = LUMA_FLOOR) -> CurveParams:
        """The curve for each image of ``N×3×H×W`` (features computed here), lifted to
        the brightness ``floor`` where it falls short (:func:`lift_to_floor`; 0: the
        estimator's own curve)."""
        first = self.net[0]
        assert isinstance(first, nn.Linear)
        params: CurveParams = self(exposure_features(image).to(first.weight.dtype))
        if floor <= 0:
            return params
        thumb = thumbnail(image.float().clamp(0.0, 1.0))
        params = lift_to_floor(thumb, params, floor)
        return lift_to_floor(thumb, auto_black(thumb, params), floor)


def lift_to_floor(
    image: Tensor, params: CurveParams, floor: float = LUMA_FLOOR,
    max_lift: float = FLOOR_MAX_LIFT, steps: int = 14,
) -> CurveParams:
    r"""``params`` with :math:`e` raised just enough that the curve's result has a mean
    encoded luma of at least ``floor`` (by at most ``max_lift`` stops; bisection, the
    mean being monotone in :math:`e`).

    Why: the estimator minimises the error against the typical clean photo that looks
    like this one, and a dark photo is ambiguous (a dark scene, or a short exposure):
    its answer is a cautious middle that leaves many real underexposed photos dim. A
    person enhancing a dark photo wants it brought to a normal key; photos the
    estimator already brings above the floor (and well-exposed ones) are left as it says.
    The lift also stops where the :data:`HIGHLIGHT_PERCENTILE` of the luminance would pass
    white: a night scene whose mean is a black sky keeps its lights from blooming.
    """
    weights = torch.tensor(_LUMA, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)

    def mean_luma(p: CurveParams) -> Tensor:
        return (apply_curve(image, p) * weights).sum(1).mean(dim=(1, 2))

    short = mean_luma(params) < floor
    if not bool(short.any()):
        return params
    lo = torch.zeros_like(params.ev)
    # never so far that the brightest 1 % of the photo goes past white: a night scene
    # whose mean is a black sky keeps its lights (and its sky) instead of blooming
    lum = _gained_luminance(image, params)
    bright = torch.quantile(lum, HIGHLIGHT_PERCENTILE / 100.0, dim=1).clamp_min(1e-6)
    room = torch.log2(HIGHLIGHT_HEADROOM / bright).clamp(0.0, max_lift).to(params.ev.dtype)
    hi = torch.minimum(torch.full_like(params.ev, max_lift), room)
    for _ in range(steps):
        mid = (lo + hi) / 2
        bright = mean_luma(CurveParams(params.a, params.black, params.ev + mid)) >= floor
        hi = torch.where(bright, mid, hi)
        lo = torch.where(bright, lo, mid)
    lift = torch.where(short, hi, torch.zeros_like(hi))
    return CurveParams(params.a, params.black, params.ev + lift)


def auto_black(
    image: Tensor, params: CurveParams, percentile: float = BLACK_PERCENTILE,
    share: float = BLACK_SHARE,
) -> CurveParams:
    r"""``params`` with the black point :math:`b` raised to ``share`` times the linear
    luminance, after the curve's gain, below which ``percentile`` % of ``image`` lies.

    A real photo's floor is often not black: flare, a camera's black-level offset or
    the haze of a cheap lens lift the darkest pixels, and the exposure gain multiplies
    that floor into a grey veil. Mapping (nearly) the darkest half percent to black is
    the levels step of photo editors; a photo with real blacks keeps :math:`b pprox 0`.
    The thumbnail is area-averaged, so sensor noise hardly moves the percentile.
    """
    lum = _gained_luminance(image, params)
    floor = torch.quantile(lum, percentile / 100.0, dim=1) * share
    black = torch.maximum(params.black, floor.to(params.black.dtype).clamp(0.0, 0.5))
    return CurveParams(params.a, black, params.ev)


def _gained_luminance(image: Tensor, params: CurveParams) -> Tensor:
    r"""``N×(H·W)`` linear luminance of ``image`` after the curve's exponent and gain,
    :math:`2^{e} E(y^{a})` (before the black point and the shoulder)."""
    n = image.shape[0]
    weights = torch.tensor(_LUMA, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    a = params.a.view(n, 1, 1, 1).to(image.dtype)
    gain = torch.exp2(params.ev.view(n, 1, 1, 1).to(image.dtype))
    return (gain * srgb_to_linear(image.clamp_min(1e-6).pow(a)) * weights).sum(1).reshape(n, -1)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))
