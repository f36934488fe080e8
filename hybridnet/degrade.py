r"""Synthetic low-light pairs from clean sRGB photographs (torch-free, numpy only).

Ren et al., "Low-Light Image Enhancement via a Deep Hybrid Network" (IEEE TIP 2019)
train on pairs whose dark input is made from a well-exposed image. Two families of
degradations are provided:

* **Gamma mode** -- the paper's own synthesis. Sec. IV-A augments the training set with
  "noise, and a small degree of gamma correction (i.e. :math:`\gamma \in (2, 4)`) to
  further darken images"; Sec. IV-B (Table II, Table III) evaluates on images "darkened
  by gamma correction with :math:`\gamma = 3`" to which "1% Gaussian noise is added":

  .. math::

      y = \operatorname{clip}_{[0,1]}\big(x^{\gamma} + n\big), \qquad
      n \sim \mathcal{N}(0, \sigma^2)\ \text{i.i.d. per pixel and channel},

  followed by 8-bit quantisation :math:`Q(y) = \operatorname{round}(255\,y) / 255`
  (the images are stored as 8-bit files). We read "1%" as :math:`\sigma = 0.01` on the
  :math:`[0, 1]` scale (2.55 grey levels), see :func:`table2_input`.

* **Realistic mode** -- a camera-like model that the paper does not use: underexposure
  and sensor noise happen in *linear* light, the tone curve and the compression after
  it. See :func:`realistic_darken` for the model and every parameter range.

All images are ``H x W x 3`` (``H x W`` accepted by the gamma functions) float arrays
in :math:`[0, 1]`, sRGB-encoded; outputs are ``float32``. All randomness comes from an
explicit :class:`numpy.random.Generator`, so a pair is reproducible from its seed.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from hybridnet.contract import normalise_gamma

__all__ = [
    "PATCH_SIZE",
    "TABLE2_GAMMA",
    "TABLE2_NOISE_SIGMA",
    "RandomPairSampler",
    "RealisticDraw",
    "RealisticParams",
    "apply_realistic",
    "draw_realistic",
    "gamma_darken",
    "image_seed",
    "linear_to_sRGB",
    "realistic_darken",
    "round_to_8bit",
    "sRGB_to_linear",
    "table2_input",
]

FloatArray = NDArray[np.floating[Any]]
F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

#: Gamma of the Table II / Table III evaluation inputs (Ren et al. 2019, Sec. IV-B).
TABLE2_GAMMA = 3.0
#: "1% Gaussian noise" of Sec. IV-B, read as a standard deviation on the [0, 1] scale.
TABLE2_NOISE_SIGMA = 0.01
#: Training patch size (Ren et al. 2019, Sec. III-D: "patch size of 128 x 128").
PATCH_SIZE = 128


# --------------------------------------------------------------------------------------
# validation and small helpers
# --------------------------------------------------------------------------------------


def _check_image(img: FloatArray, *, name: str = "clean", allow_gray: bool = True) -> F64:
    """Return ``img`` as float64 after checking shape, dtype kind, finiteness and range."""
    arr = np.asarray(img)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array in [0, 1], got dtype {arr.dtype}")
    ok_shape = (arr.ndim == 3 and arr.shape[2] == 3) or (allow_gray and arr.ndim == 2)
    if not ok_shape:
        want = "H x W x 3 or H x W" if allow_gray else "H x W x 3"
        raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    a64 = arr.astype(np.float64)
    if not np.all(np.isfinite(a64)):
        raise ValueError(f"{name} contains NaN or infinity")
    if a64.min() < 0.0 or a64.max() > 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got [{a64.min()}, {a64.max()}]")
    return a64


def _check_range(name: str, lo: float, hi: float, *, low: float, high: float) -> None:
    if not (low <= lo <= hi <= high):
        raise ValueError(f"{name} must satisfy {low} <= lo <= hi <= {high}, got ({lo}, {hi})")


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    r"""Draw :math:`\exp(U(\log lo, \log hi))` (returns ``lo`` when ``lo == hi``)."""
    if lo == hi:
        return float(lo)
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def round_to_8bit(img: FloatArray) -> F32:
    r"""8-bit quantisation :math:`Q(y) = \operatorname{round}(255\,y)/255` (round half to even).

    The values are clipped to :math:`[0, 1]` first. Quantisation adds an (almost) uniform
    error of variance :math:`(1/255)^2/12`, i.e. a standard deviation of
    :math:`1.13 \times 10^{-3}`.
    """
    y = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)
    return (np.round(y * 255.0) / 255.0).astype(np.float32)


# --------------------------------------------------------------------------------------
# sRGB transfer functions
# --------------------------------------------------------------------------------------


def sRGB_to_linear(img: FloatArray) -> F64:
    r"""Exact sRGB EOTF (IEC 61966-2-1:1999): encoded :math:`V \in [0,1]` to linear light.

    .. math::

        L = \begin{cases}
            V / 12.92 & V \le 0.04045 \\
            \left(\dfrac{V + 0.055}{1.055}\right)^{2.4} & V > 0.04045
        \end{cases}

    Args:
        img: sRGB-encoded values, any shape; values are clipped to :math:`[0, 1]`.

    Returns:
        Linear-light values in :math:`[0, 1]`, float64, same shape.
    """
    v = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_sRGB(img: FloatArray) -> F64:
    r"""Exact sRGB OETF (IEC 61966-2-1:1999), the inverse of :func:`sRGB_to_linear`.

    .. math::

        V = \begin{cases}
            12.92\,L & L \le 0.0031308 \\
            1.055\,L^{1/2.4} - 0.055 & L > 0.0031308
        \end{cases}

    Args:
        img: linear-light values, any shape; values are clipped to :math:`[0, 1]`.

    Returns:
        sRGB-encoded values in :math:`[0, 1]`, float64, same shape.
    """
    lin = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1.0 / 2.4) - 0.055)


# --------------------------------------------------------------------------------------
# gamma mode (the paper's synthesis)
# --------------------------------------------------------------------------------------


def gamma_darken(
    clean: FloatArray,
    gamma: float,
    noise_sigma: float,
    rng: np.random.Generator,
    quantize_8bit: bool = True,
) -> F32:
    r"""Darken by a power law and add Gaussian noise (Ren et al. 2019, Sec. IV-A / IV-B).

    .. math::

        y = \operatorname{clip}_{[0,1]}\big(x^{\gamma} + n\big), \quad
        n \sim \mathcal{N}(0, \sigma^2), \qquad
        y \leftarrow \operatorname{round}(255\,y)/255 \ \text{if quantising}.

    The power is applied to the sRGB-encoded values, as in the paper (and in Lore et al.,
    LLNet, whose synthesis the paper cites). The noise is drawn in float64 with
    ``rng.normal(0, sigma, shape)`` -- one draw per pixel and channel, in C order -- so a
    given generator state always yields the same image.

    Args:
        clean: sRGB image in :math:`[0, 1]`, ``H x W x 3`` or ``H x W``.
        gamma: darkening exponent :math:`\gamma > 0` (the paper uses 3 for evaluation and
            :math:`(2, 4)` for training).
        noise_sigma: standard deviation :math:`\sigma \ge 0` on the :math:`[0, 1]` scale.
        rng: source of the noise.
        quantize_8bit: round to the 8-bit grid :math:`k/255`.

    Returns:
        The dark image, float32, same shape as ``clean``.
    """
    x = _check_image(clean)
    if not (gamma > 0.0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be a positive finite number, got {gamma}")
    if not (noise_sigma >= 0.0 and math.isfinite(noise_sigma)):
        raise ValueError(f"noise_sigma must be >= 0, got {noise_sigma}")
    y = x**gamma
    if noise_sigma > 0.0:
        y = y + rng.normal(0.0, noise_sigma, size=y.shape)
    y = np.clip(y, 0.0, 1.0)
    if quantize_8bit:
        return round_to_8bit(y)
    return y.astype(np.float32)


def table2_input(clean: FloatArray, seed: int) -> F32:
    r"""The dark input of the Table II / Table III protocol (Ren et al. 2019, Sec. IV-B).

    Exactly ``gamma_darken(clean, 3.0, 0.01, np.random.default_rng(seed), True)``:

    .. math::

        y = \operatorname{round}\!\Big(255\,\operatorname{clip}_{[0,1]}\big(x^{3} + n\big)
        \Big) / 255, \qquad n \sim \mathcal{N}(0, 0.01^2).

    The paper says "darkened by gamma correction with :math:`\gamma = 3`. In addition, 1%
    Gaussian noise is added"; it does not say whether "1%" is the standard deviation or
    the variance, nor whether the result is clipped and stored in 8 bits. We take
    :math:`\sigma = 0.01` on :math:`[0, 1]`, clipping, and 8-bit storage (the natural
    reading for 8-bit test images). Seeding with a fixed per-image seed (see
    :func:`image_seed`) makes every evaluation run see the same inputs.

    Args:
        clean: ground-truth sRGB image in :math:`[0, 1]`.
        seed: seed of :func:`numpy.random.default_rng`.

    Returns:
        The dark, noisy, 8-bit-quantised input as float32.
    """
    rng = np.random.default_rng(seed)
    return gamma_darken(clean, TABLE2_GAMMA, TABLE2_NOISE_SIGMA, rng, quantize_8bit=True)


def image_seed(name: str) -> int:
    """A per-image seed that is stable across runs, machines and Python versions.

    The seed is the first 8 bytes (big endian) of SHA-256 of the UTF-8 *base name* of
    ``name`` (the part after the last ``/`` or ``\\``), so ``"BSDS500/test/100007.jpg"``,
    ``"C:\\\\data\\\\100007.jpg"`` and ``"100007.jpg"`` all give the same seed. Python's
    built-in :func:`hash` is salted per process and must not be used for this.

    Returns:
        An integer in :math:`[0, 2^{64})`, suitable for :func:`numpy.random.default_rng`.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if not base:
        raise ValueError(f"image name {name!r} has an empty base name")
    digest = hashlib.sha256(base.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


# --------------------------------------------------------------------------------------
# realistic mode (camera-like)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealisticParams:
    r"""Ranges of the camera-like degradation of :func:`realistic_darken`.

    Attributes:
        exposure_range: exposure factor :math:`k`, drawn **log-uniformly** (so each
            halving of light is equally likely): 1/2 is one stop under, 1/30 is almost
            five stops under -- the span from "a bit dim" to the darkest frames of the
            real low-light sets (LOL, DICM). Default ``(1/30, 1/2)``.
        wb_shift: per-channel white-balance gain :math:`g_c \sim U(1-s, 1+s)`, default
            :math:`s = 0.1`: auto white balance under mixed or low light is typically off
            by up to about 10% per channel, which gives mild warm/cool/green casts.
        electrons_range: :math:`N_e`, the number of photo-electrons that map to linear
            white in the *recorded* frame (full-well capacity divided by the ISO gain),
            drawn log-uniformly. Smartphone pixels of about 1-1.4 um hold roughly 4,000-
            10,000 e- at base ISO; at ISO 800-3200 only a few hundred electrons reach
            white. Default ``(300, 6000)``, i.e. shot-noise variance per unit signal
            :math:`\lambda_{shot} = 1/N_e \in [1.7 \cdot 10^{-4}, 3.3 \cdot 10^{-3}]`,
            inside the range :math:`[10^{-4}, 1.2 \cdot 10^{-2}]` that Brooks et al.
            ("Unprocessing images for learned raw denoising", CVPR 2019) fit to real
            phone sensors, leaving out its noisiest tail.
        read_noise_range: read-noise standard deviation :math:`\sigma_r` in electrons,
            uniform. Modern phone CMOS sensors at high analogue gain read out with about
            1-2 e- rms (up to ~3 e- at low gain); Brooks et al.'s fitted
            :math:`\lambda_{read}(\lambda_{shot})` also corresponds to ~1 e-.
            Default ``(0.5, 2.5)``.
        jpeg_probability: probability of a JPEG round trip (phones store JPEG/HEIF).
        jpeg_quality_range: inclusive range of the Pillow JPEG quality, uniform integer;
            60-95 spans messaging-app recompression to camera-app "fine" settings.
        quantize_8bit: store the result on the 8-bit grid (always the case after JPEG).
        headroom_probability: probability that the scene's brightest parts are brighter
            than the clean photo's white (lamps, windows, sky), see :func:`headroom`.
        headroom_range: their factor :math:`H` over white, drawn log-uniformly; a lamp is
            easily 5-7 stops (32-128x) above the white of a night exposure, so after the
            underexposure it still clips, as in real dark photos.
        flare_range: veiling glare :math:`\phi`, uniform, as a fraction of the mean scene
            luminance added to every pixel in linear light (lens flare and sensor black
            offset; 1-3 % is typical of consumer lenses, Talvala et al., SIGGRAPH 2007).
    """

    exposure_range: tuple[float, float] = (1.0 / 30.0, 0.5)
    wb_shift: float = 0.1
    electrons_range: tuple[float, float] = (300.0, 6000.0)
    read_noise_range: tuple[float, float] = (0.5, 2.5)
    jpeg_probability: float = 0.5
    jpeg_quality_range: tuple[int, int] = (60, 95)
    quantize_8bit: bool = True
    headroom_probability: float = 0.0
    headroom_range: tuple[float, float] = (1.0, 1.0)
    flare_range: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        _check_range("exposure_range", *self.exposure_range, low=1e-6, high=1.0)
        if not 0.0 <= self.wb_shift < 1.0:
            raise ValueError(f"wb_shift must be in [0, 1), got {self.wb_shift}")
        _check_range("electrons_range", *self.electrons_range, low=1.0, high=1e9)
        _check_range("read_noise_range", *self.read_noise_range, low=0.0, high=1e6)
        if not 0.0 <= self.jpeg_probability <= 1.0:
            raise ValueError(f"jpeg_probability must be in [0, 1], got {self.jpeg_probability}")
        lo_q, hi_q = self.jpeg_quality_range
        _check_range("jpeg_quality_range", lo_q, hi_q, low=1, high=100)
        if not 0.0 <= self.headroom_probability <= 1.0:
            raise ValueError(
                f"headroom_probability must be in [0, 1], got {self.headroom_probability}"
            )
        _check_range("headroom_range", *self.headroom_range, low=1.0, high=1e6)
        _check_range("flare_range", *self.flare_range, low=0.0, high=1.0)


@dataclass(frozen=True)
class RealisticDraw:
    r"""One concrete set of camera parameters (see :class:`RealisticParams`).

    Attributes:
        exposure: linear exposure factor :math:`k \\in (0, 1]`.
        wb_gains: per-channel gains :math:`(g_R, g_G, g_B)`.
        electrons_at_white: :math:`N_e`, electrons that map to linear 1.0.
        read_noise_e: read-noise standard deviation :math:`\\sigma_r` in electrons.
        jpeg_quality: Pillow JPEG quality, or ``None`` for no JPEG round trip.
        quantize_8bit: round the result to the 8-bit grid.
        headroom: factor :math:`H \ge 1` of the brightest parts over white (1: none).
        flare: veiling glare :math:`\phi`, a fraction of the mean scene luminance.
    """

    exposure: float
    wb_gains: tuple[float, float, float]
    electrons_at_white: float
    read_noise_e: float
    jpeg_quality: int | None = None
    quantize_8bit: bool = True
    headroom: float = 1.0
    flare: float = 0.0

    @property
    def ev(self) -> float:
        r"""The underexposure in stops, :math:`-\log_2 k`."""
        return -math.log2(self.exposure)


def draw_realistic(
    rng: np.random.Generator, params: RealisticParams | None = None
) -> RealisticDraw:
    """Draw one :class:`RealisticDraw` from the ranges of ``params`` (defaults if ``None``)."""
    p = RealisticParams() if params is None else params
    exposure = _log_uniform(rng, *p.exposure_range)
    gains = rng.uniform(1.0 - p.wb_shift, 1.0 + p.wb_shift, size=3)
    electrons = _log_uniform(rng, *p.electrons_range)
    read = float(rng.uniform(*p.read_noise_range))
    quality: int | None = None
    if rng.random() < p.jpeg_probability:
        lo_q, hi_q = p.jpeg_quality_range
        quality = int(rng.integers(lo_q, hi_q + 1))
    # Drawn only when enabled, so the default ranges keep older draws bit for bit.
    room = 1.0
    if p.headroom_probability > 0.0 and rng.random() < p.headroom_probability:
        room = _log_uniform(rng, *p.headroom_range)
    flare = float(rng.uniform(*p.flare_range)) if p.flare_range[1] > 0.0 else 0.0
    return RealisticDraw(
        exposure=exposure,
        wb_gains=(float(gains[0]), float(gains[1]), float(gains[2])),
        electrons_at_white=electrons,
        read_noise_e=read,
        jpeg_quality=quality,
        quantize_8bit=p.quantize_8bit,
        headroom=room,
        flare=flare,
    )


def headroom(linear: F64, encoded: F64, factor: float) -> F64:
    r"""Scene luminance beyond the clean photo's white: the brightest parts scaled up.

    .. math::

        L'_c = L_c ig(1 + (H - 1)\, w(Y')ig), \qquad
        w = \operatorname{smoothstep}(0.85, 1, Y'),

    with :math:`Y'` the encoded luma of the clean photo: a clean photo stores lamps,
    windows and bright sky clipped at white, while the scene held far more light there.
    After an underexposure those parts still clip (as in real night photos) instead of
    becoming a grey a network would learn to keep. :math:`H = 1` returns ``linear``.
    """
    if factor == 1.0:
        return linear
    y = encoded @ np.asarray([0.2126, 0.7152, 0.0722])
    t = np.clip((y - 0.85) / 0.15, 0.0, 1.0)
    weight = t * t * (3.0 - 2.0 * t)
    out: NDArray[np.float64] = linear * (1.0 + (factor - 1.0) * weight)[..., None]
    return out


def scene_mean(clean: FloatArray, factor: float = 1.0) -> float:
    """Mean linear luminance of the scene (after :func:`headroom`), the flare's scale."""
    x = _check_image(clean, allow_gray=False)
    lin = headroom(sRGB_to_linear(x), x, factor)
    return float((lin @ np.asarray([0.2126, 0.7152, 0.0722])).mean())


def _jpeg_round_trip(img: F64, quality: int) -> F64:
    """Encode to JPEG in memory with Pillow (4:2:0 chroma, its default) and decode back."""
    u8 = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as decoded:
        out = np.asarray(decoded.convert("RGB"), dtype=np.float64) / 255.0
    return out


def apply_realistic(
    clean: FloatArray,
    draw: RealisticDraw,
    rng: np.random.Generator,
    *,
    mean_luminance: float | None = None,
    noise_scale: float = 1.0,
) -> F32:
    r"""Apply one camera-like degradation with fixed parameters; only the noise is random.

    With :math:`x` the clean sRGB image, :math:`E` the sRGB EOTF and :math:`E^{-1}` the
    OETF (:func:`sRGB_to_linear`, :func:`linear_to_sRGB`), :math:`L' =` :func:`headroom`
    of :math:`E(x)` and :math:`\bar L` its mean luminance:

    .. math::

        s_c &= k\, g_c\, L'_c + k\,\phi\,\bar L       && \text{exposure, white balance, flare}\\
        e_c &\sim \operatorname{Poisson}(N_e\, s_c) && \text{shot noise (electrons)}\\
        \ell_c &= \operatorname{clip}_{[0,1]}\big((e_c + r_c) / N_e\big), \quad
            r_c \sim \mathcal{N}(0, \sigma_r^2)      && \text{read noise, black clip}\\
        y &= \operatorname{JPEG}_q\big(Q(E^{-1}(\ell))\big)\ \text{(optional)}, \quad
            Q(v) = \operatorname{round}(255 v)/255.

    In linear light the noise is Poisson-Gaussian with
    :math:`\operatorname{Var}[\ell \mid s] = s / N_e + \sigma_r^2 / N_e^2` (before
    clipping): the variance grows linearly with the signal, unlike the signal-independent
    Gaussian of the gamma mode. Clipping at 0 models black-level subtraction.

    Args:
        clean: sRGB image in :math:`[0, 1]`, ``H x W x 3``.
        draw: the camera parameters.
        rng: source of the shot and read noise.

    Returns:
        The dark sRGB image, float32, ``H x W x 3``.
    """
    x = _check_image(clean, allow_gray=False)
    if not 0.0 < draw.exposure <= 1.0:
        raise ValueError(f"exposure must be in (0, 1], got {draw.exposure}")
    if draw.electrons_at_white <= 0.0 or draw.read_noise_e < 0.0:
        raise ValueError("electrons_at_white must be > 0 and read_noise_e >= 0")
    gains = np.asarray(draw.wb_gains, dtype=np.float64).reshape(1, 1, 3)
    signal = np.clip(draw.exposure * gains * sRGB_to_linear(x), 0.0, 1.0)
    n_e = draw.electrons_at_white
    electrons = rng.poisson(signal * n_e).astype(np.float64)
    if draw.read_noise_e > 0.0:
        electrons += rng.normal(0.0, draw.read_noise_e, size=electrons.shape)
    linear = np.clip(electrons / n_e, 0.0, 1.0)
    encoded = linear_to_sRGB(linear)
    if draw.jpeg_quality is not None:
        encoded = _jpeg_round_trip(encoded, draw.jpeg_quality)
    if draw.quantize_8bit or draw.jpeg_quality is not None:
        return round_to_8bit(encoded)
    return encoded.astype(np.float32)


def realistic_darken(
    clean: FloatArray, rng: np.random.Generator, params: RealisticParams | None = None
) -> F32:
    """Camera-like low-light degradation: :func:`draw_realistic` then :func:`apply_realistic`.

    See :class:`RealisticParams` for the parameter ranges and their justification and
    :func:`apply_realistic` for the model. Both the parameters and the noise come from
    ``rng``.
    """
    draw = draw_realistic(rng, params)
    return apply_realistic(clean, draw, rng)


# --------------------------------------------------------------------------------------
# training pairs
# --------------------------------------------------------------------------------------

Mode = Literal["gamma", "realistic", "mix"]


def _dihedral(img: F64, k: int, flip: bool) -> F64:
    """Rotate by ``k`` quarter turns (counter-clockwise) then optionally mirror left-right."""
    out = np.rot90(img, k=k, axes=(0, 1))
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


@dataclass(frozen=True)
class RandomPairSampler:
    r"""Random ``(low, high)`` training patches from one clean image.

    Follows Ren et al. 2019, Sec. III-D ("patch size of 128 x 128") and Sec. IV-A
    (augmentation "using rotation, flip, clipping, noise, and a small degree of gamma
    correction (:math:`\gamma \in (2, 4)`)"). For each call:

    1. a uniform random ``patch_size`` square crop (the paper's "clipping" -- cropping);
    2. one of the 8 symmetries of the square, uniformly: :math:`k \in \{0,1,2,3\}`
       quarter turns, then a left-right mirror with probability 1/2 (vertical flips are
       included as rotation + mirror), the same for both images;
    3. the degradation: ``"gamma"`` -- :func:`gamma_darken` with
       :math:`\gamma \sim U(\text{gamma\_range})` and
       :math:`\sigma \sim U(\text{noise\_sigma\_range})`; ``"realistic"`` --
       :func:`realistic_darken` with ``realistic``; ``"mix"`` -- realistic with
       probability ``mix_probability``, gamma otherwise;
    4. with ``gamma_reference`` set, the gamma-mode input is normalised to that gamma with
       :func:`normalise_gamma` (the network is told the darkening; not in the paper).

    The paper only says "a small level of Gaussian noise"; the evaluation uses
    :math:`\sigma = 0.01`, so the default training range :math:`[0, 0.02]` is centred on
    it and includes clean inputs.

    Attributes:
        patch_size: side of the square patches.
        mode: ``"gamma"``, ``"realistic"`` or ``"mix"``.
        mix_probability: probability of the realistic degradation in ``"mix"`` mode.
        gamma_range: open interval of :math:`\gamma` (uniform).
        noise_sigma_range: interval of the Gaussian :math:`\sigma` (uniform).
        quantize_8bit: 8-bit quantisation of the gamma-mode input.
        gamma_reference: normalise gamma-mode inputs to this gamma (None: do not).
        realistic: parameter ranges of the realistic mode.
    """

    patch_size: int = PATCH_SIZE
    mode: Mode = "gamma"
    mix_probability: float = 0.5
    gamma_range: tuple[float, float] = (2.0, 4.0)
    noise_sigma_range: tuple[float, float] = (0.0, 0.02)
    quantize_8bit: bool = True
    gamma_reference: float | None = None
    realistic: RealisticParams = field(default_factory=RealisticParams)

    def __post_init__(self) -> None:
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {self.patch_size}")
        if self.mode not in ("gamma", "realistic", "mix"):
            raise ValueError(f"mode must be 'gamma', 'realistic' or 'mix', got {self.mode!r}")
        if not 0.0 <= self.mix_probability <= 1.0:
            raise ValueError(f"mix_probability must be in [0, 1], got {self.mix_probability}")
        _check_range("gamma_range", *self.gamma_range, low=1e-6, high=1e6)
        _check_range("noise_sigma_range", *self.noise_sigma_range, low=0.0, high=1.0)
        ref = self.gamma_reference
        if ref is not None and not (ref > 0.0 and math.isfinite(ref)):
            raise ValueError(f"gamma_reference must be a positive finite number, got {ref}")

    def __call__(self, clean: FloatArray, rng: np.random.Generator) -> tuple[F32, F32]:
        """Return ``(low, high)``, both float32 ``patch_size x patch_size x 3``.

        Raises:
            ValueError: if ``clean`` is not ``H x W x 3`` in :math:`[0, 1]` or is smaller
                than the patch.
        """
        x = _check_image(clean, allow_gray=False)
        h, w = x.shape[:2]
        p = self.patch_size
        if h < p or w < p:
            raise ValueError(f"image {h}x{w} is smaller than the {p}x{p} patch")
        top = int(rng.integers(0, h - p + 1))
        left = int(rng.integers(0, w - p + 1))
        k = int(rng.integers(0, 4))
        flip = bool(rng.random() < 0.5)
        high = _dihedral(x[top : top + p, left : left + p], k, flip)

        use_realistic = self.mode == "realistic" or (
            self.mode == "mix" and rng.random() < self.mix_probability
        )
        if use_realistic:
            low = realistic_darken(high, rng, self.realistic)
        else:
            gamma = float(rng.uniform(*self.gamma_range))
            sigma = float(rng.uniform(*self.noise_sigma_range))
            low = gamma_darken(high, gamma, sigma, rng, quantize_8bit=self.quantize_8bit)
            if self.gamma_reference is not None:
                low = normalise_gamma(low, gamma, self.gamma_reference)
        return low, high.astype(np.float32)
