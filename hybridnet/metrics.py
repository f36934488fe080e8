r"""Image quality measures for the evaluation tables (torch-free, numpy only).

Full-reference measures, used with a ground truth (Ren et al. 2019, Sec. IV-B):

* :func:`psnr` and :func:`ssim` -- Table II ("average PSNR and SSIM of enhanced results
  on the synthetic images");
* :func:`mse_hsv` -- Table III ("average MSE of enhanced results on HSV space").

No-reference measures, for real low-light photos that have no ground truth:

* :func:`brightness` -- mean Rec. 709 luma;
* :func:`noise_sigma` -- Immerkaer's fast noise estimator on luma;
* :func:`colour_cast` -- chroma of the mean CIELAB :math:`(a^*, b^*)`;
* :func:`black_point`, :func:`white_point`, :func:`rms_contrast`, :func:`colourfulness`
  and :func:`wavelet_noise_sigma` -- the "haze, flatness, colour, grain" measures of a
  real photo, on the 0..255 scale, gathered by :func:`photo_stats`.

Inputs are float arrays in :math:`[0, 1]`, ``H x W x 3`` (sRGB-encoded) or ``H x W``
where a grey image makes sense. All arithmetic is done in float64 and every measure is
returned as a Python ``float``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from hybridnet.degrade import sRGB_to_linear

__all__ = [
    "REC709_LUMA",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WIN",
    "HSVError",
    "PhotoStats",
    "black_point",
    "brightness",
    "colour_cast",
    "colourfulness",
    "gaussian_kernel1d",
    "lab_mean_ab",
    "luma",
    "mse_hsv",
    "newly_clipped_white",
    "noise_sigma",
    "photo_stats",
    "psnr",
    "rgb_to_hsv",
    "rgb_to_lab",
    "rms_contrast",
    "ssim",
    "wavelet_noise_sigma",
    "white_point",
]

FloatArray = NDArray[np.floating[Any]]
F64 = NDArray[np.float64]

#: Rec. ITU-R BT.709 luma weights :math:`(K_R, K_G, K_B)`.
REC709_LUMA = (0.2126, 0.7152, 0.0722)
#: SSIM constants of Wang et al. 2004 (Sec. III-C): window 11 x 11, Gaussian sigma 1.5.
SSIM_WIN = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# sRGB (D65) linear RGB -> CIE XYZ, IEC 61966-2-1. The white point is taken as the row
# sums (X_n, 1, Z_n) of this matrix so that every grey r = g = b maps to a* = b* = 0 exactly.
_RGB_TO_XYZ = np.array(
    [
        [0.4124, 0.3576, 0.1805],
        [0.2126, 0.7152, 0.0722],
        [0.0193, 0.1192, 0.9505],
    ],
    dtype=np.float64,
)
_WHITE_XYZ = _RGB_TO_XYZ.sum(axis=1)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _as_float64(img: FloatArray, name: str, *, rgb_only: bool = False) -> F64:
    arr = np.asarray(img)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
    ok = (arr.ndim == 3 and arr.shape[2] == 3) or (not rgb_only and arr.ndim in (2, 3))
    if not ok:
        want = "H x W x 3" if rgb_only else "H x W or H x W x C"
        raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains NaN or infinity")
    return out


def _pair(a: FloatArray, b: FloatArray, *, rgb_only: bool = False) -> tuple[F64, F64]:
    x = _as_float64(a, "a", rgb_only=rgb_only)
    y = _as_float64(b, "b", rgb_only=rgb_only)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {y.shape}")
    return x, y


def gaussian_kernel1d(sigma: float, radius: int) -> F64:
    r"""Normalised 1-D Gaussian :math:`g_i \propto \exp(-i^2 / 2\sigma^2)`, :math:`|i| \le r`.

    The 2-D window :math:`w_{ij} = g_i g_j` is the circular-symmetric Gaussian of Wang et
    al. 2004 (unit sum), so a 2-D weighted mean is two 1-D passes.
    """
    if sigma <= 0.0 or radius < 0:
        raise ValueError(f"need sigma > 0 and radius >= 0, got {sigma}, {radius}")
    i = np.arange(-radius, radius + 1, dtype=np.float64)
    g: F64 = np.exp(-0.5 * (i / sigma) ** 2)
    return g / float(g.sum())


def _filter_valid(x: F64, kernel: F64) -> F64:
    r"""Separable 'valid' correlation of the first two axes with ``kernel`` (both axes).

    Output size :math:`(H - n + 1) \times (W - n + 1)`: every output value is a full
    window :math:`\sum_{i,j} g_i g_j\, x_{p+i,\,q+j}` with no padding.
    """
    taps = [float(k) for k in kernel]
    n = len(taps)
    h = int(x.shape[0]) - n + 1
    w = int(x.shape[1]) - n + 1
    rows: F64 = taps[0] * x[0:h]
    for i in range(1, n):
        rows += taps[i] * x[i : i + h]
    out: F64 = taps[0] * rows[:, 0:w]
    for j in range(1, n):
        out += taps[j] * rows[:, j : j + w]
    return out


def luma(img: FloatArray) -> F64:
    r"""Rec. 709 luma of sRGB-encoded values, :math:`Y' = 0.2126 R' + 0.7152 G' + 0.0722 B'`.

    A grey ``H x W`` image is returned unchanged (as float64).
    """
    x = _as_float64(img, "img")
    if x.ndim == 2:
        return x
    if x.shape[2] != 3:
        raise ValueError(f"img must be H x W x 3 or H x W, got {x.shape}")
    kr, kg, kb = REC709_LUMA
    return kr * x[..., 0] + kg * x[..., 1] + kb * x[..., 2]


# --------------------------------------------------------------------------------------
# full-reference measures
# --------------------------------------------------------------------------------------


def psnr(a: FloatArray, b: FloatArray, data_range: float = 1.0) -> float:
    r"""Peak signal-to-noise ratio in dB over all pixels and channels.

    .. math::

        \mathrm{PSNR}(a, b) = 10 \log_{10} \frac{R^2}{\frac{1}{N}\sum_i (a_i - b_i)^2}

    with :math:`R` = ``data_range``. Identical images give ``inf``.
    """
    x, y = _pair(a, b)
    if data_range <= 0.0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def ssim(a: FloatArray, b: FloatArray, data_range: float = 1.0) -> float:
    r"""Mean SSIM of Wang et al. 2004 with their Gaussian window (Sec. III-C).

    Local statistics use the 11 x 11 circular-symmetric Gaussian window :math:`w`
    (:math:`\sigma = 1.5`, unit sum) -- Eqs. (14)-(16) of the paper:

    .. math::

        \mu_x = \sum_i w_i x_i, \quad
        \sigma_x^2 = \sum_i w_i (x_i - \mu_x)^2, \quad
        \sigma_{xy} = \sum_i w_i (x_i - \mu_x)(y_i - \mu_y),

    and the index, Eq. (13) (with :math:`C_3 = C_2 / 2`):

    .. math::

        \mathrm{SSIM}(x, y) = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
        {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)}, \quad
        C_1 = (K_1 R)^2,\ C_2 = (K_2 R)^2,\ K_1 = 0.01,\ K_2 = 0.03.

    MSSIM, Eq. (17), is the mean over all window positions. Windows are evaluated only
    where they fit inside the image ('valid' region), which crops a 5-pixel border: this
    equals ``skimage.metrics.structural_similarity(a, b, data_range=R,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` (which filters the
    whole image and then discards the 5-pixel border). For colour images the index is
    computed **per channel on the RGB values** and averaged over the three channels
    (skimage's ``channel_axis=-1``); this is the usual convention for Table II-style RGB
    SSIM. MATLAB's ``ssim`` and some papers use luma only, which gives different values.

    Args:
        a, b: images of the same shape, ``H x W`` or ``H x W x C``, ``H, W >= 11``.
        data_range: :math:`R`, the dynamic range of the values (1 for :math:`[0, 1]`).

    Returns:
        Mean SSIM in :math:`[-1, 1]`; 1 for identical images.
    """
    x, y = _pair(a, b)
    if data_range <= 0.0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    if x.shape[0] < SSIM_WIN or x.shape[1] < SSIM_WIN:
        raise ValueError(f"images must be at least {SSIM_WIN}x{SSIM_WIN}, got {x.shape}")
    g = gaussian_kernel1d(SSIM_SIGMA, SSIM_WIN // 2)
    mu_x = _filter_valid(x, g)
    mu_y = _filter_valid(y, g)
    # E[x^2] - mu^2 equals sum_i w_i (x_i - mu)^2 because sum_i w_i = 1 (population
    # covariance, i.e. use_sample_covariance=False).
    var_x = _filter_valid(x * x, g) - mu_x * mu_x
    var_y = _filter_valid(y * y, g) - mu_y * mu_y
    cov_xy = _filter_valid(x * y, g) - mu_x * mu_y
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    smap = num / den
    if smap.ndim == 3:  # per-channel mean, then mean over channels
        return float(np.mean(smap.mean(axis=(0, 1))))
    return float(smap.mean())


def rgb_to_hsv(img: FloatArray) -> F64:
    r"""Vectorised :func:`colorsys.rgb_to_hsv`: H, S, V all in :math:`[0, 1]`.

    .. math::

        V = \max(R,G,B), \quad C = V - \min(R,G,B), \quad S = C / V\ (0 \text{ if } V = 0),

    .. math::

        H = \frac{1}{6}\begin{cases}
            (G - B)/C \bmod 6 & V = R \\
            2 + (B - R)/C & V = G \ne R \\
            4 + (R - G)/C & \text{otherwise}
        \end{cases}, \qquad H = 0 \text{ if } C = 0,

    with ties broken R, then G, exactly as :mod:`colorsys` does (so the two agree to
    rounding).
    """
    x = _as_float64(img, "img", rgb_only=True)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    maxc = np.max(x, axis=-1)
    minc = np.min(x, axis=-1)
    rangec = maxc - minc
    safe_v = np.where(maxc > 0.0, maxc, 1.0)
    safe_c = np.where(rangec > 0.0, rangec, 1.0)
    s = np.where(rangec > 0.0, rangec / safe_v, 0.0)
    rc = (maxc - r) / safe_c
    gc = (maxc - g) / safe_c
    bc = (maxc - b) / safe_c
    h = np.where(r == maxc, bc - gc, np.where(g == maxc, 2.0 + rc - bc, 4.0 + gc - rc))
    h = np.where(rangec > 0.0, np.mod(h / 6.0, 1.0), 0.0)
    return np.stack([h, s, maxc], axis=-1)


class HSVError(NamedTuple):
    """Per-channel mean squared errors in HSV space (Ren et al. 2019, Table III)."""

    mse_h: float
    mse_s: float
    mse_v: float
    mse_hsv: float


def mse_hsv(a: FloatArray, b: FloatArray) -> HSVError:
    r"""Table III errors: MSE of H, S (on :math:`[0, 1]`), V (on :math:`[0, 255]`), and HSV.

    Both images are converted with :func:`rgb_to_hsv`; V is multiplied by 255, since
    Ren et al. 2019 (Sec. IV-B) state "H and S channels are expressed in a range from just
    0 to 1, while the intensity of Value channel between 0 and 255":

    .. math::

        \mathrm{MSE}_c = \frac{1}{N}\sum_i (c^a_i - c^b_i)^2,\ c \in \{H, S, V\},\qquad
        \mathrm{MSE}_{hsv} = \tfrac{1}{3}\,(\mathrm{MSE}_h + \mathrm{MSE}_s + \mathrm{MSE}_v).

    The last relation is inferred from Table III, whose columns satisfy it to the printed
    precision: LIME :math:`(0.0327 + 0.1071 + 1324.9)/3 = 441.68`, NPE
    :math:`(0.0304 + 0.1115 + 1820.5)/3 = 606.88` (printed 606.87), ours
    :math:`(0.0568 + 0.0136 + 135.47)/3 = 45.18` -- i.e. the MSE over all three HSV
    channels pooled together.

    The hue difference is the **plain** difference :math:`H^a - H^b`, not the circular one
    :math:`\min(|\Delta H|, 1 - |\Delta H|)`: the paper's :math:`\mathrm{MSE}_h` values
    (0.03-0.14) are what a plain per-pixel MSE of H on :math:`[0, 1]` gives, and the
    paper says nothing about wrapping. Note that this over-penalises reds near
    :math:`H = 0 \equiv 1` and that the hue of near-grey pixels is unstable.

    Returns:
        :class:`HSVError` ``(mse_h, mse_s, mse_v, mse_hsv)``.
    """
    x, y = _pair(a, b, rgb_only=True)
    hx = rgb_to_hsv(x)
    hy = rgb_to_hsv(y)
    scale = np.array([1.0, 1.0, 255.0])
    d2 = ((hx - hy) * scale) ** 2
    mse_h, mse_s, mse_v = (float(v) for v in d2.reshape(-1, 3).mean(axis=0))
    return HSVError(mse_h, mse_s, mse_v, (mse_h + mse_s + mse_v) / 3.0)


# --------------------------------------------------------------------------------------
# no-reference measures
# --------------------------------------------------------------------------------------


def brightness(img: FloatArray) -> float:
    r"""Mean Rec. 709 luma of the sRGB-encoded values (grey: the mean value), in [0, 1].

    .. math:: B = \frac{1}{N} \sum_i (0.2126 R'_i + 0.7152 G'_i + 0.0722 B'_i)

    Computed on the encoded (gamma) values, i.e. closer to perceived lightness than a
    linear-light mean; a well-exposed photo is typically around 0.4-0.5.
    """
    return float(luma(img).mean())


def noise_sigma(img: FloatArray) -> float:
    r"""Immerkaer's fast noise estimator ("Fast noise variance estimation", CVIU 1996).

    On the luma :math:`Y'` (Rec. 709, see :func:`luma`; a grey image is used as is),
    convolve with the difference of two Laplacians, which cancels any locally linear
    signal,

    .. math::

        M = \begin{pmatrix} 1 & -2 & 1 \\ -2 & 4 & -2 \\ 1 & -2 & 1 \end{pmatrix},

    and for zero-mean white Gaussian noise of standard deviation :math:`\sigma`
    (:math:`E|M * n| = \sigma \sqrt{36} \sqrt{2/\pi}`):

    .. math::

        \hat\sigma = \sqrt{\frac{\pi}{2}}\, \frac{1}{6 (W - 2)(H - 2)}
        \sum_{\text{interior}} |(Y' * M)(x)|.

    Returns :math:`\hat\sigma` in the units of the input (:math:`[0, 1]` scale). It is
    robust (an L1 statistic) and cheap, but strong texture and edges bias it upwards,
    so use it to compare images of similar content, or before/after on the same image.
    Noise added independently to R, G, B with standard deviation :math:`\sigma` has
    standard deviation :math:`\sigma\,\lVert(0.2126, 0.7152, 0.0722)\rVert_2 = 0.7596\,\sigma`
    in luma; 8-bit quantisation alone contributes about :math:`0.0011`.
    """
    y = luma(img)
    h, w = int(y.shape[0]), int(y.shape[1])
    if h < 3 or w < 3:
        raise ValueError(f"image must be at least 3x3, got {y.shape}")
    # M is separable: M = [1, -2, 1]^T [1, -2, 1].
    rows = y[0:-2] - 2.0 * y[1:-1] + y[2:]
    resp = rows[:, 0:-2] - 2.0 * rows[:, 1:-1] + rows[:, 2:]
    total = float(np.abs(resp).sum())
    return math.sqrt(math.pi / 2.0) * total / (6.0 * (w - 2) * (h - 2))


def rgb_to_lab(img: FloatArray) -> F64:
    r"""sRGB-encoded RGB in :math:`[0, 1]` to CIELAB (D65), ``H x W x 3`` float64.

    :math:`(X, Y, Z) = M\, E(\mathrm{RGB})` with :math:`E` the exact sRGB EOTF and
    :math:`M` the IEC 61966-2-1 matrix; white :math:`(X_n, Y_n, Z_n)` = :math:`M (1,1,1)^T`
    = (0.9505, 1, 1.0890) so greys map to :math:`a^* = b^* = 0`. Then (CIE 15:2004)

    .. math::

        L^* = 116 f(Y/Y_n) - 16,\quad a^* = 500\,[f(X/X_n) - f(Y/Y_n)],\quad
        b^* = 200\,[f(Y/Y_n) - f(Z/Z_n)],

    .. math::

        f(t) = \begin{cases} t^{1/3} & t > (6/29)^3 \\
        t / (3 (6/29)^2) + 4/29 & \text{otherwise.} \end{cases}
    """
    x = _as_float64(img, "img", rgb_only=True)
    xyz = np.einsum("...c,kc->...k", sRGB_to_linear(x), _RGB_TO_XYZ) / _WHITE_XYZ
    delta = 6.0 / 29.0
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3.0 * delta**2) + 4.0 / 29.0)
    lightness = 116.0 * f[..., 1] - 16.0
    a_star = 500.0 * (f[..., 0] - f[..., 1])
    b_star = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([lightness, a_star, b_star], axis=-1)


def lab_mean_ab(img: FloatArray) -> tuple[float, float]:
    r"""Mean CIELAB chroma coordinates :math:`(\bar a^*, \bar b^*)` over all pixels.

    Positive :math:`\bar a^*` is a magenta/red cast, negative green; positive
    :math:`\bar b^*` yellow, negative blue.
    """
    lab = rgb_to_lab(img)
    return float(lab[..., 1].mean()), float(lab[..., 2].mean())


def colour_cast(img: FloatArray) -> float:
    r"""Colour cast: chroma of the mean CIELAB colour, in CIELAB units (:math:`\Delta E^*_{ab}`).

    .. math::

        \mathrm{cast} = \sqrt{\bar a^{*2} + \bar b^{*2}}, \qquad
        \bar a^* = \tfrac{1}{N}\sum_i a^*_i,\ \bar b^* = \tfrac{1}{N}\sum_i b^*_i.

    Under the Gray-World assumption (Buchsbaum 1980) the average colour of a scene is
    neutral, so this is the CIE76 distance of the mean chromaticity from the neutral axis
    (:math:`a^* = b^* = 0`): 0 for a balanced image, and a global tint moves it in the
    tint's direction (see :func:`lab_mean_ab` for the direction). For scale, a
    :math:`\Delta E^*_{ab}` of about 2.3 is a just-noticeable difference. Scenes that
    really are dominated by one colour (sunsets, foliage) score high without a cast, so
    compare before/after on the same image rather than across images. The mean is taken
    of per-pixel :math:`a^*, b^*` (so dark pixels, which have small chroma, weigh
    little). Chroma scales with lightness: brightening an image with a tint raises its
    score (a dark input reads lower than its enhanced version with the same tint), so
    compare enhancers' outputs with each other at similar :func:`brightness`, not with
    the dark input.
    """
    a_bar, b_bar = lab_mean_ab(img)
    return math.hypot(a_bar, b_bar)


# --------------------------------------------------------------------------------------
# no-reference measures of a photo, 0..255 scale
# --------------------------------------------------------------------------------------

#: Daubechies-2 decomposition high-pass filter (PyWavelets' ``Wavelet("db2").dec_hi``).
_DB2_HIGH = np.array(
    [-0.48296291314453416, 0.8365163037378079, -0.2241438680420134, -0.12940952255126037]
)
#: :math:`\Phi^{-1}(3/4)`: the median of :math:`|N(0, 1)|`.
_MAD_TO_SIGMA = 0.6744897501960817


def black_point(img: FloatArray, percentile: float = 1.0) -> float:
    r"""The luma below which ``percentile`` % of the pixels lie, on the 0..255 scale.

    A hazy or flat result has a lifted black point (its darkest pixels are grey): a
    well-exposed photo of a scene with any shadow has a 1st percentile of a few levels.
    """
    return float(np.percentile(luma(img), percentile)) * 255.0


def white_point(img: FloatArray, percentile: float = 99.0) -> float:
    """The luma below which ``percentile`` % of the pixels lie, on the 0..255 scale."""
    return float(np.percentile(luma(img), percentile)) * 255.0


def rms_contrast(img: FloatArray) -> float:
    r"""RMS contrast: the standard deviation of luma on the 0..255 scale (Peli 1990).

    .. math:: C_{rms} = 255 \sqrt{\tfrac{1}{N}\sum_i (Y'_i - \bar Y')^2}
    """
    return float(luma(img).std()) * 255.0


def colourfulness(img: FloatArray) -> float:
    r"""Colourfulness of Hasler & Suesstrunk ("Measuring colourfulness in natural images",
    SPIE 2003, their metric M^(3)) on 0..255 sRGB values.

    .. math::

        rg = R - G, \quad yb = \tfrac{1}{2}(R + G) - B, \qquad
        M = \sqrt{\sigma_{rg}^2 + \sigma_{yb}^2} + 0.3 \sqrt{\mu_{rg}^2 + \mu_{yb}^2}.

    In their study 0 is grey, about 15 "slightly", 33 "moderately", 45 "averagely",
    59 "quite" and 82 "highly" colourful.
    """
    x = _as_float64(img, "img", rgb_only=True) * 255.0
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return math.hypot(float(rg.std()), float(yb.std())) + 0.3 * math.hypot(
        float(rg.mean()), float(yb.mean())
    )


def _db2_high_pass(a: F64, axis: int) -> F64:
    """One level of the db2 high-pass analysis along ``axis`` (PyWavelets' ``symmetric``
    mode: half-sample mirror extension, full convolution, odd samples kept)."""
    a = np.moveaxis(a, axis, -1)
    taps = len(_DB2_HIGH)
    ext = np.concatenate(
        [a[..., : taps - 1][..., ::-1], a, a[..., -(taps - 1) :][..., ::-1]], axis=-1
    )
    full_len = ext.shape[-1] - taps + 1
    full = np.zeros((*ext.shape[:-1], full_len))
    for k in range(taps):
        full += _DB2_HIGH[k] * ext[..., taps - 1 - k : taps - 1 - k + full_len]
    out = full[..., 1::2][..., : (a.shape[-1] + taps - 1) // 2]
    return np.moveaxis(out, -1, axis)


def wavelet_noise_sigma(img: FloatArray) -> float:
    r"""Noise standard deviation of the luma on the 0..255 scale, from its finest wavelet
    band (Donoho & Johnstone, Biometrika 1994; what scikit-image's ``estimate_sigma``
    computes).

    The diagonal detail band :math:`D` of a one-level 2-D db2 wavelet transform holds
    almost only noise in a natural image; for white Gaussian noise its coefficients are
    :math:`N(0, \sigma^2)`, hence the robust estimate

    .. math:: \hat\sigma = \operatorname{median}(|D_{ij}|) / \Phi^{-1}(3/4),

    taken over the non-zero coefficients. Strong fine texture biases it upwards, so
    compare methods on the same photos.
    """
    y = luma(img) * 255.0
    if min(y.shape) < 2:
        raise ValueError(f"image must be at least 2x2, got {y.shape}")
    detail = _db2_high_pass(_db2_high_pass(y, 0), 1)
    values = np.abs(detail[detail != 0])
    if values.size == 0:
        return 0.0
    return float(np.median(values)) / _MAD_TO_SIGMA


def newly_clipped_white(before: FloatArray, after: FloatArray) -> float:
    """Share of pixels white in ``after`` (every channel >= 254/255) that were not near
    white (every channel >= 0.9) in ``before``: highlights an enhancer blew out."""
    x, y = _pair(before, after, rgb_only=True)
    white_after = (y >= 254 / 255).all(axis=2)
    white_before = (x >= 0.9).all(axis=2)
    return float(np.mean(white_after & ~white_before))


class PhotoStats(NamedTuple):
    """The no-reference table of one photo (0..255 scale unless said otherwise)."""

    mean_luma: float
    black_point: float
    white_point: float
    contrast: float
    colourfulness: float
    noise: float
    new_white: float  # share of pixels, 0..1
    colour_cast: float  # CIELAB units


def photo_stats(img: FloatArray, before: FloatArray | None = None) -> PhotoStats:
    """Every no-reference measure of ``img``; ``before`` (the input) for ``new_white``."""
    return PhotoStats(
        mean_luma=brightness(img) * 255.0,
        black_point=black_point(img),
        white_point=white_point(img),
        contrast=rms_contrast(img),
        colourfulness=colourfulness(img),
        noise=wavelet_noise_sigma(img),
        new_white=0.0 if before is None else newly_clipped_white(before, img),
        colour_cast=colour_cast(img),
    )
