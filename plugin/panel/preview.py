"""Screen previews of a photo and its enhanced version, re-blended as the slider moves.

The full-resolution original and enhanced arrays stay untouched (they are blended once,
at full resolution, when saving). For the screen the panel keeps *layers*: a region of
the photo at one resolution, converted once to 8-bit RGB(A) before and after, with a
:class:`hybridnet.contract.Blender` over them. A slider move costs one blend of a layer
(≤ ~1.2 megapixels: a few milliseconds) and wraps the result in a :class:`QImage` without
copying it.

* the **overview** layer is the whole photo box-filtered down to at most
  :data:`OVERVIEW_PIXELS` (what a fitted view shows);
* a **detail** layer is the visible part of the photo at the resolution of the view,
  made when the view is zoomed in past the overview's resolution (100 %, say), so the
  screen always shows real pixels, never an upscaled preview.

Layers blend lazily: :meth:`Layer.image` blends only when asked for a strength it has not
blended yet, so a layer the view does not paint costs nothing.

Numpy and QtGui only (no widgets, no torch).
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal, cast

import numpy as np
from numpy.typing import NDArray
from PyQt6.QtCore import QRect
from PyQt6.QtGui import QImage

from hybridnet.contract import Blender

#: Largest overview (pixels): one blend stays well under a screen frame (16 ms).
OVERVIEW_PIXELS: Final = 1_200_000
#: Largest detail layer (pixels), whatever the screen.
DETAIL_PIXELS: Final = 2_400_000

Which = Literal["before", "after"]
U8 = NDArray[np.uint8]


def to_display(
    pixels: NDArray[Any], rect: QRect | None = None, step: int = 1
) -> U8:
    """8-bit RGB or RGBA for the screen: crop to ``rect``, box-filter by ``step``.

    Args:
        pixels: an array of the image contract (gray, gray+alpha, RGB, RGBA; uint8,
            uint16 or float32), sRGB-encoded as :func:`hybridnet.imageio.read_image`
            returns it.
        rect: region in image pixels (default: all), clipped to the image.
        step: integer downscale factor (each output pixel averages ``step²`` pixels).

    Returns:
        A C-contiguous ``h×w×3`` (or ``×4`` with alpha) uint8 array.
    """
    arr = pixels[..., None] if pixels.ndim == 2 else pixels
    if rect is not None:
        x0, y0 = max(0, rect.x()), max(0, rect.y())
        arr = arr[y0:y0 + max(0, rect.height()), x0:x0 + max(0, rect.width())]
    step = max(1, int(step))
    if step > 1:
        h, w = (arr.shape[0] // step) * step, (arr.shape[1] // step) * step
        if h == 0 or w == 0:
            arr = arr[:1:step, :1:step]
        else:
            blocks = arr[:h, :w].reshape(h // step, step, w // step, step, arr.shape[2])
            if arr.dtype == np.float32:
                arr = blocks.mean(axis=(1, 3), dtype=np.float32)
            else:
                total = blocks.sum(axis=(1, 3), dtype=np.uint32 if arr.dtype == np.uint8
                                   else np.uint64)
                arr = ((total + step * step // 2) // (step * step)).astype(pixels.dtype)
    if arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    channels = arr.shape[2]
    if channels in (1, 2):
        gray = np.repeat(arr[..., :1], 3, axis=2)
        arr = gray if channels == 1 else np.concatenate([gray, arr[..., 1:2]], axis=2)
    return np.ascontiguousarray(arr)


def qimage(display: U8) -> QImage:
    """A :class:`QImage` over ``display``'s memory (no copy; keep the array alive)."""
    h, w, c = display.shape
    fmt = QImage.Format.Format_RGBA8888 if c == 4 else QImage.Format.Format_RGB888
    image: QImage = QImage(display.data, w, h, display.strides[0], fmt)  # type: ignore[call-overload]
    return image


class Layer:
    """One region of the photo at one resolution, before and after, blendable.

    Attributes:
        rect: the region in full-resolution image pixels.
        step: image pixels per layer pixel (1: full resolution).
    """

    def __init__(
        self, original: NDArray[Any], enhanced: NDArray[Any] | None, rect: QRect, step: int
    ) -> None:
        self.rect = rect
        self.step = step
        self.before = to_display(original, rect, step)
        self._before_image = qimage(self.before)
        self.after: U8 | None = None
        self._blender: Blender | None = None
        self._blended: tuple[float, U8, QImage] | None = None
        if enhanced is not None:
            self.set_enhanced(enhanced)

    def set_enhanced(self, enhanced: NDArray[Any]) -> None:
        """Attach the enhanced full-resolution image (converted like the original)."""
        self.after = to_display(enhanced, self.rect, self.step)
        self._blender = Blender(self.before, self.after)
        self._blended = None

    @property
    def has_after(self) -> bool:
        return self._blender is not None

    def image(self, which: Which, strength: float) -> QImage:
        """The layer as a QImage: the original, or the blend at ``strength`` (cached)."""
        if which == "before" or self._blender is None:
            return self._before_image
        if self._blended is None or self._blended[0] != strength:
            mixed = cast(U8, self._blender(strength))
            self._blended = (strength, mixed, qimage(mixed))
        return self._blended[2]

    def covers(self, region: QRect) -> bool:
        """Whether the layer holds ``region`` (up to the partial block at its edges)."""
        return self.rect.adjusted(0, 0, self.step - 1, self.step - 1).contains(region)


class PreviewSource:
    """The photo (and its enhanced version) as the viewer paints it.

    Args:
        original: the full-resolution pixels (kept by reference, never modified).
        overview_pixels: the overview's size limit.
    """

    def __init__(self, original: NDArray[Any], overview_pixels: int = OVERVIEW_PIXELS) -> None:
        self.original = original
        self.enhanced: NDArray[Any] | None = None
        self.height, self.width = int(original.shape[0]), int(original.shape[1])
        self.has_alpha = original.ndim == 3 and original.shape[2] in (2, 4)
        step = max(1, math.ceil(math.sqrt(self.height * self.width / overview_pixels)))
        self.overview = Layer(original, None, QRect(0, 0, self.width, self.height), step)
        self.detail: Layer | None = None

    @property
    def full_rect(self) -> QRect:
        return QRect(0, 0, self.width, self.height)

    def set_enhanced(self, enhanced: NDArray[Any] | None) -> None:
        """Attach (or drop, with ``None``) the enhanced image; every layer follows."""
        self.enhanced = enhanced
        if enhanced is None:
            self.overview = Layer(self.original, None, self.overview.rect, self.overview.step)
            self.detail = None
            return
        self.overview.set_enhanced(enhanced)
        if self.detail is not None:
            self.detail.set_enhanced(enhanced)

    def detail_for(self, visible: QRect, device_scale: float) -> Layer | None:
        """A layer with enough resolution for ``visible`` at ``device_scale`` (screen pixels
        per image pixel), or ``None`` when the overview is sharp enough. Reuses the current
        detail layer when it already covers the region at that resolution."""
        step = max(1, math.floor(1.0 / device_scale)) if device_scale > 0 else 1
        if step >= self.overview.step:
            return None
        region = visible.intersected(self.full_rect)
        if region.isEmpty():
            return None
        if self.detail is not None and self.detail.step == step and self.detail.covers(region):
            return self.detail
        # a margin of a quarter view on each side, so small pans reuse the layer
        mx, my = region.width() // 4, region.height() // 4
        grown = region.adjusted(-mx, -my, mx, my).intersected(self.full_rect)
        if grown.width() * grown.height() / step**2 > DETAIL_PIXELS:
            grown = region
        # align to the step so layer pixels are whole blocks of image pixels
        x0, y0 = grown.x() - grown.x() % step, grown.y() - grown.y() % step
        w = max(step, (grown.right() + 1 - x0) // step * step)
        h = max(step, (grown.bottom() + 1 - y0) // step * step)
        self.detail = Layer(self.original, self.enhanced, QRect(x0, y0, w, h), step)
        return self.detail
