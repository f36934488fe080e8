r"""The image contract: what arrays every client hands to the enhancer, and gets back.

This module is numpy-only (no torch) so the desktop panel, the worker client and the
GIMP bridge can use it; :class:`hybridnet.Enhancer` builds on it for padding and tiling.

Arrays
------
========================  =====================================================
shape                     meaning
========================  =====================================================
``H×W`` or ``H×W×1``      gray
``H×W×2``                 gray + alpha
``H×W×3``                 RGB (sRGB-encoded, as stored in ordinary files)
``H×W×4``                 RGBA
========================  =====================================================

dtype ``uint8`` (0..255), ``uint16`` (0..65535) or ``float32`` (nominally 0..1; values
outside are clipped for the network but kept by ``strength`` blends). The output always
has the input's shape and dtype. Alpha is never touched: it is copied bit for bit. Gray
is enhanced as RGB (the gray value in all three channels) and returned as gray with the
Rec. 709 luma weights. Integer outputs are rounded to nearest, so a 16-bit input keeps
its full precision.

Strength
--------
``blend(original, enhanced, s)`` = ``original + s · (enhanced − original)`` per colour
channel, computed in float32 and rounded to the dtype; ``s = 0`` returns the original bit
for bit and ``s = 1`` the enhanced image bit for bit.

``auto_strength(image)`` chooses ``s`` from the exposure of the image:

.. math::

    \bar L = \exp\big(\operatorname{mean}\log(\epsilon + L)\big), \qquad
    s = \operatorname{clip}\Big(\frac{L_{hi} - \bar L}{L_{hi} - L_{lo}}, 0, 1\Big)

where :math:`L` is the Rec. 709 luma of the sRGB-encoded values in [0, 1] and
:math:`\bar L` their log-average ("key", Reinhard et al. 2002), with
:math:`L_{lo} = 0.15`, :math:`L_{hi} = 0.40`, :math:`\epsilon = 1/255`. A well-exposed
photo has a key around 0.4–0.5 (mid-grey 18% reflectance is 0.46 in sRGB) and gets 0;
a dark one (key ≤ 0.15) gets 1; a mixed scene with deep shadows and bright areas lands
in between, because the log-average weighs the shadows more than a plain mean would.
Statistics are taken on at most ~65k pixels (strided).

The thresholds come from the shared data: the median key of the clean photos is 0.29
(McMaster) to 0.40 (BSDS500, Sun-Hays), of the same photos darkened with gamma 3 (the
paper's test protocol) 0.045-0.08, of real low-light sets 0.056 (LOL), 0.08 (LIME), 0.10
(SCI) and 0.22 (DICM, which holds many merely dim photos).

Brightness
----------
The network is trained on photos darkened by a gamma :math:`\gamma \in (2, 4)` and told
that gamma (the colour values are normalised to :data:`REFERENCE_GAMMA` first, see
:func:`normalise_gamma`). A real photo comes with no gamma, so ``brightness``
:math:`b \in [-1, 1]` chooses it: the photo is enhanced as if darkened by
:math:`\gamma = 3 + b`, i.e. its colour values :math:`x` go to the network as

.. math::

    x' = x^{3 / (3 + b)}.

:math:`b = 0` (the default) leaves them as they are; :math:`b = 1` (taken as darkened by
gamma 4) gives a brighter result, :math:`b = -1` (gamma 2) a darker one. Unlike
``strength``, which blends toward the original and so can only tone a result down, this
changes what the network sees, so it needs a new pass of the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from hybridnet.errors import InvalidImageError

#: Rec. 709 luma weights (on sRGB-encoded values, like GIMP's "Luminance" desaturate).
LUMA: Final = (0.2126, 0.7152, 0.0722)
AUTO_LOW_KEY: Final = 0.15
AUTO_HIGH_KEY: Final = 0.40
#: The darkening gamma the network's inputs are normalised to (the Table II protocol's).
REFERENCE_GAMMA: Final = 3.0
#: ``brightness`` runs over [-BRIGHTNESS_LIMIT, BRIGHTNESS_LIMIT]: gammas 2 to 4, the
#: training range.
BRIGHTNESS_LIMIT: Final = 1.0
#: ``ev`` (stops relative to the automatic exposure) runs over [-EV_LIMIT, EV_LIMIT].
EV_LIMIT: Final = 3.0
#: With a model that estimates the exposure (the bundled one), ``brightness`` B is
#: ``BRIGHTNESS_EV * B`` stops from the automatic exposure (:func:`brightness_to_ev`).
BRIGHTNESS_EV: Final = 2.0
_SUPPORTED_DTYPES: Final = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
_MAX_VALUE: Final = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class Layout:
    """How an array maps to colour and alpha channels.

    Attributes:
        height, width: size in pixels.
        channels: 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA).
        squeeze: the input was 2-D (H×W) and the output must be too.
        dtype: uint8, uint16 or float32.
    """

    height: int
    width: int
    channels: int
    squeeze: bool
    dtype: np.dtype[np.generic]

    @property
    def gray(self) -> bool:
        return self.channels in (1, 2)

    @property
    def has_alpha(self) -> bool:
        return self.channels in (2, 4)

    @property
    def colour_channels(self) -> int:
        return 1 if self.gray else 3

    @property
    def name(self) -> str:
        """``"gray"``, ``"gray+alpha"``, ``"rgb"`` or ``"rgba"`` (the wire protocol's words)."""
        return {1: "gray", 2: "gray+alpha", 3: "rgb", 4: "rgba"}[self.channels]


def check_image(image: object, *, name: str = "image") -> Layout:
    """Validate ``image`` against the contract and describe it.

    Raises:
        InvalidImageError: with one sentence naming what is wrong and what to do.
    """
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(
            f"{name} must be a numpy array (H×W, H×W×1..4), got {type(image).__name__}"
        )
    if image.ndim not in (2, 3):
        raise InvalidImageError(
            f"{name} must be H×W or H×W×C, got {image.ndim} dimensions {image.shape}"
        )
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in (1, 2, 3, 4):
        hint = " (channels first? use array.transpose(1, 2, 0))" if image.shape[0] in (3, 4) else ""
        raise InvalidImageError(
            f"{name} has {channels} channels in shape {image.shape}; expected 1 (gray), "
            f"2 (gray+alpha), 3 (RGB) or 4 (RGBA) as the last dimension{hint}"
        )
    if image.dtype not in _SUPPORTED_DTYPES:
        raise InvalidImageError(
            f"{name} has dtype {image.dtype}; use uint8, uint16 or float32 (0..1)"
        )
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise InvalidImageError(f"{name} is empty ({h}×{w} pixels)")
    if image.dtype == np.float32 and not np.isfinite(image).all():
        raise InvalidImageError(f"{name} contains NaN or infinite values")
    return Layout(h, w, channels, image.ndim == 2, image.dtype)


def colour_to_float(image: NDArray[np.generic], layout: Layout) -> F32:
    """The colour channels of ``image`` as float32 RGB in [0, 1], H×W×3 (gray repeated)."""
    arr = image[..., None] if layout.squeeze else image
    out = unit_float(arr[..., : layout.colour_channels], layout.dtype)
    if layout.dtype == np.float32:
        np.clip(out, 0.0, 1.0, out=out)
    if layout.gray:
        out = np.repeat(out, 3, axis=2)
    return out


def float_to_colour(rgb: F32, layout: Layout) -> F32:
    """Float RGB back to the layout's colour channels (luma for gray), still float."""
    if layout.gray:
        w = np.asarray(LUMA, dtype=np.float32)
        return (rgb @ w)[..., None]
    return rgb


def unit_float(colour: NDArray[np.generic], dtype: np.dtype[np.generic]) -> F32:
    """Integer or float values as float32 on the [0, 1] scale of ``dtype`` (no clipping)."""
    out = colour.astype(np.float32)
    scale = _MAX_VALUE.get(np.dtype(dtype))
    if scale is not None:
        out /= np.float32(scale)
    return out


def quantize(values: F32, dtype: np.dtype[np.generic]) -> NDArray[np.generic]:
    """Round float [0, 1] values to ``dtype`` (nearest; float32 is clipped, not rounded)."""
    scale = _MAX_VALUE.get(np.dtype(dtype))
    if scale is None:
        return np.clip(values, 0.0, 1.0).astype(np.float32, copy=False)
    out = values * np.float32(scale)
    np.clip(out, 0.0, scale, out=out)
    np.rint(out, out=out)
    return out.astype(dtype)


def assemble(
    colour: NDArray[np.generic], original: NDArray[np.generic], layout: Layout
) -> NDArray[np.generic]:
    """Put new colour channels (already in the dtype) next to ``original``'s alpha."""
    if not layout.has_alpha:
        return colour[..., 0] if layout.squeeze else colour
    out = np.empty_like(original)
    out[..., : layout.colour_channels] = colour
    out[..., layout.colour_channels :] = original[..., layout.colour_channels :]
    return out


def blend(
    original: NDArray[np.generic], enhanced: NDArray[np.generic], strength: float
) -> NDArray[np.generic]:
    """Linear blend of an image and its enhanced version; alpha is taken from ``original``.

    Args:
        original: the input, any layout of the contract.
        enhanced: the enhancer's output for ``original`` (same shape and dtype).
        strength: 0 returns ``original`` exactly, 1 returns ``enhanced`` exactly.

    Returns:
        A new array of the same shape and dtype.
    """
    return Blender(original, enhanced)(strength)


class Blender:
    """Re-blends one cached result at many strengths cheaply (a slider that follows the mouse).

    The float32 original and the difference to the enhanced image are computed once; each
    call then costs one multiply-add, a rounding and a cast per value.
    """

    def __init__(self, original: NDArray[np.generic], enhanced: NDArray[np.generic]) -> None:
        layout = check_image(original, name="original")
        if not isinstance(enhanced, np.ndarray) or enhanced.shape != original.shape or (
            enhanced.dtype != original.dtype
        ):
            raise InvalidImageError(
                "enhanced must have the original's shape and dtype "
                f"({original.shape}, {original.dtype}); got "
                f"{getattr(enhanced, 'shape', None)}, {getattr(enhanced, 'dtype', None)}"
            )
        self.layout = layout
        self.original = original
        self.enhanced = enhanced
        c = layout.colour_channels
        o = original[..., None] if layout.squeeze else original
        e = enhanced[..., None] if layout.squeeze else enhanced
        self._base = o[..., :c].astype(np.float32)
        self._delta = e[..., :c].astype(np.float32)
        self._delta -= self._base

    def __call__(self, strength: float) -> NDArray[np.generic]:
        s = check_strength(strength)
        if s == 0.0:
            return self.original.copy()
        if s == 1.0:
            return self.enhanced.copy()
        mixed = self._delta * np.float32(s)
        mixed += self._base
        scale = _MAX_VALUE.get(self.layout.dtype)
        if scale is not None:
            np.rint(mixed, out=mixed)
            np.clip(mixed, 0.0, scale, out=mixed)
        colour = mixed.astype(self.layout.dtype, copy=False)
        return assemble(colour, self.original, self.layout)


def check_strength(strength: object) -> float:
    """A strength as a float in [0, 1], or :class:`InvalidImageError`."""
    if isinstance(strength, bool) or not isinstance(strength, int | float):
        raise InvalidImageError(f"strength must be a number in [0, 1] or 'auto', got {strength!r}")
    s = float(strength)
    if not (0.0 <= s <= 1.0) or math.isnan(s):
        raise InvalidImageError(f"strength must be between 0 and 1, got {strength!r}")
    return s


def exposure_key(image: NDArray[np.generic]) -> float:
    """Log-average luma of the colour channels (see the module docstring)."""
    layout = check_image(image)
    step = max(1, int(math.sqrt(layout.height * layout.width / 65536)))
    sample = image[::step, ::step]
    rgb = colour_to_float(sample, layout)  # only channels and dtype of the layout matter
    luma = rgb @ np.asarray(LUMA, dtype=np.float32)
    return float(np.exp(np.mean(np.log(luma.astype(np.float64) + 1.0 / 255.0))))


def auto_strength(image: NDArray[np.generic]) -> float:
    """Strength for ``strength="auto"``: 1 for dark photos, 0 for well-exposed ones."""
    key = exposure_key(image)
    s = (AUTO_HIGH_KEY - key) / (AUTO_HIGH_KEY - AUTO_LOW_KEY)
    return float(min(1.0, max(0.0, s)))


def check_brightness(brightness: object) -> float:
    """A brightness as a float in [-1, 1], or :class:`InvalidImageError`."""
    if isinstance(brightness, bool) or not isinstance(brightness, int | float):
        raise InvalidImageError(
            f"brightness must be a number from -1 to 1 (0: as the model sees it), got "
            f"{brightness!r}"
        )
    b = float(brightness)
    if not (-BRIGHTNESS_LIMIT <= b <= BRIGHTNESS_LIMIT) or math.isnan(b):
        raise InvalidImageError(
            f"brightness must be between -1 (darker) and 1 (brighter), got {brightness!r}"
        )
    return b


def check_ev(ev: object) -> float:
    """An exposure offset in stops as a float in [-3, 3], or :class:`InvalidImageError`.

    0 is the automatic exposure, +1 twice the light (one stop brighter), -1 half.
    """
    if isinstance(ev, bool) or not isinstance(ev, int | float):
        raise InvalidImageError(
            f"ev must be a number of stops from -{EV_LIMIT:g} to +{EV_LIMIT:g} "
            f"(0: the automatic exposure), got {ev!r}"
        )
    e = float(ev)
    if not (-EV_LIMIT <= e <= EV_LIMIT) or math.isnan(e):
        raise InvalidImageError(
            f"ev must be between -{EV_LIMIT:g} (darker) and +{EV_LIMIT:g} (brighter) stops, "
            f"got {ev!r}"
        )
    return e


def brightness_to_ev(brightness: float) -> float:
    """The front ends' brightness (-1..1) as stops from the automatic exposure, for models
    with the exposure estimator: -1 is two stops darker, +1 two stops brighter.

    One control for both kinds of model: older weights read brightness as the darkening
    the network assumes (:func:`brightness_to_network`); positive is brighter in both.
    """
    return BRIGHTNESS_EV * check_brightness(brightness)


def normalise_gamma(
    low: NDArray[np.floating], gamma: float, reference: float = REFERENCE_GAMMA
) -> F32:
    r"""Re-express a photo darkened by ``gamma`` as if it had been darkened by ``reference``.

    .. math::

        y' = \operatorname{clip}_{[0,1]}(y)^{\gamma_{\mathrm{ref}} / \gamma}, \qquad
        (x^{\gamma})^{\gamma_{\mathrm{ref}}/\gamma} = x^{\gamma_{\mathrm{ref}}}.

    A network trained on inputs normalised this way need not guess how strongly a photo
    was darkened (a bright scene darkened by 4 and a dim one darkened by 2 can look
    alike): it is told, as the Table II inverse-gamma baseline is told. Training uses it
    with the drawn gamma (:class:`hybridnet.degrade.RandomPairSampler`), the enhancer with
    the gamma ``brightness`` chooses (module docstring). ``gamma == reference`` only clips.

    Args:
        low: dark image, nominally in :math:`[0, 1]`.
        gamma: the darkening exponent (or the chosen one), :math:`> 0`.
        reference: the exponent the network was trained for.

    Returns:
        float32 image of the same shape, in :math:`[0, 1]`.
    """
    for name, value in (("gamma", gamma), ("reference", reference)):
        if not (value > 0.0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive finite number, got {value}")
    y = np.clip(np.asarray(low, dtype=np.float32), 0.0, 1.0)
    if gamma == reference:
        return y
    return np.power(y, np.float32(reference / gamma), dtype=np.float32)


def brightness_to_network(rgb: F32, brightness: float) -> F32:
    """The colour values the network gets for ``brightness`` (module docstring)."""
    if brightness == 0.0:
        return rgb
    return normalise_gamma(rgb, REFERENCE_GAMMA + brightness, REFERENCE_GAMMA)
