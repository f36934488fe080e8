"""The hybrid network G of Ren et al., TIP 2019 (Fig. 2): content stream + edge stream,
bridged during up-sampling, fused, and two convolutions to the RGB output.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hybridnet.config import HybridNetConfig
from hybridnet.content_stream import ContentStream
from hybridnet.edge_stream import EdgeStream
from hybridnet.errors import InvalidInputError
from hybridnet.exposure import CurveParams, ExposureEstimator, apply_curve
from hybridnet.layers import activation, upsample_like
from hybridnet.spatially_variant_rnn import ScanBackend

#: The three down-samplings need sizes divisible by 2**3; inputs are padded to it.
SIZE_MULTIPLE = 8
#: Smallest accepted side: reflection padding needs two pixels to mirror.
MIN_SIDE = 2
#: Tolerance on the [0, 1] input range (rounding of a float conversion, not a 0..255 image).
RANGE_TOLERANCE = 1e-3


class HybridNet(nn.Module):
    """Low-light enhancement network: ``N×3×H×W`` in [0, 1] to ``N×3×H×W``.

    Any H and W (at least 2) are accepted: the input is reflect-padded to a multiple of
    8 and the output cropped back. The output is not clamped (training needs the
    gradient outside [0, 1]); clamp it for display, as :class:`hybridnet.Enhancer` does.

    With ``config.exposure`` the input first goes through one global tone curve
    (:mod:`hybridnet.exposure`): the one given to :meth:`forward`, or the estimator's
    for each image of the batch; with ``config.residual`` the network's output is added
    to the curve's result.

    Args:
        config: widths and choices; defaults to :class:`HybridNetConfig` ().
    """

    def __init__(self, config: HybridNetConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else HybridNetConfig()
        cfg = self.config
        self.edge = EdgeStream(cfg)
        self.content = ContentStream(cfg)
        # Fusion of content and edge features, then two convolutions (end of Sec. III-B).
        # The first convolution acts on the concatenation [content, edges]; its content
        # part is a 1x1 convolution applied at 1/2 resolution before the up-sampling (they
        # commute), so no wide full-resolution tensor is ever concatenated.
        self.fuse_content = nn.Conv2d(self.content.out_channels, cfg.fusion_channels, 1)
        self.fuse_edges = nn.Conv2d(self.edge.out_channels, cfg.fusion_channels, 3, padding=1)
        self.out = nn.Conv2d(cfg.fusion_channels, 3, 3, padding=1)
        if cfg.residual:  # start near the identity: the correction is small at first
            with torch.no_grad():
                self.out.weight.mul_(0.1)
                if self.out.bias is not None:
                    self.out.bias.zero_()
        self.exposure: ExposureEstimator | None = (
            ExposureEstimator(cfg.estimator_hidden) if cfg.exposure else None
        )
        #: Convolutions run in channels-last memory layout (2-3x faster on CPUs).
        self.channels_last = True

    @property
    def scan_backend(self) -> ScanBackend:
        """Implementation of the RNN scan (see :func:`hybridnet.spatial_rnn`)."""
        return self.edge.scan_backend

    @scan_backend.setter
    def scan_backend(self, value: ScanBackend) -> None:
        self.edge.scan_backend = value

    def estimate_curve(self, image: Tensor) -> CurveParams:
        """The exposure estimator's curve for each image of ``N×3×H×W``."""
        if self.exposure is None:
            raise ValueError("this network has no exposure estimator (config.exposure is off)")
        return self.exposure.estimate(image)

    def forward(self, image: Tensor, curve: CurveParams | None = None) -> Tensor:
        """Enhance ``N×3×H×W`` in [0, 1].

        Args:
            image: the dark photos.
            curve: the global curve of each photo (a tile of a large photo gets the
                whole photo's curve); None: estimated from ``image`` itself. Ignored
                without ``config.exposure``.
        """
        check_image_tensor(image)
        height, width = image.shape[-2:]
        if self.exposure is not None:
            if curve is None:
                curve = self.exposure.estimate(image)
            image = apply_curve(image, curve)
        x = reflect_pad_to_multiple(image, SIZE_MULTIPLE)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        edge_features, bridge = self.edge(x)
        content_half = self.content(x, bridge)
        fused = upsample_like(self.fuse_content(content_half), x, self.config.upsample)
        fused = activation(fused + self.fuse_edges(edge_features), self.config.negative_slope)
        y: Tensor = self.out(fused)
        if self.config.residual:
            y = y + x
        return y[..., :height, :width].contiguous()


def check_image_tensor(image: object) -> None:
    """Raise :class:`InvalidInputError` unless ``image`` is a finite N×3×H×W float in [0, 1].

    Every message names what was wrong and what to do, instead of a shape error from deep
    inside a convolution.
    """
    if not isinstance(image, Tensor):
        raise InvalidInputError(
            f"expected a torch.Tensor of shape N×3×H×W, got {type(image).__name__}; "
            "use hybridnet.Enhancer for numpy images"
        )
    if image.dim() != 4:
        hint = " (add a batch dimension: image[None])" if image.dim() == 3 else ""
        raise InvalidInputError(
            f"expected a 4-D tensor N×3×H×W, got {image.dim()}-D shape {tuple(image.shape)}{hint}"
        )
    n, c, h, w = image.shape
    if c != 3:
        raise InvalidInputError(
            f"expected 3 colour channels (RGB) in dimension 1, got {c} in shape "
            f"{tuple(image.shape)}; convert gray to RGB and drop alpha first (Enhancer does this)"
        )
    if not image.is_floating_point():
        raise InvalidInputError(
            f"expected a floating point tensor in [0, 1], got {image.dtype}; "
            "convert with image.float() / 255 for 8-bit data"
        )
    if n == 0 or h == 0 or w == 0:
        raise InvalidInputError(f"the image is empty: shape {tuple(image.shape)}")
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InvalidInputError(
            f"the image is {h}×{w} pixels; at least {MIN_SIDE}×{MIN_SIDE} is needed"
        )
    if not bool(torch.isfinite(image).all()):
        raise InvalidInputError("the image contains NaN or infinite values; fix the input data")
    lo, hi = float(image.min()), float(image.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        hint = " (it looks like 0..255 data: divide by 255)" if hi > 2 else ""
        raise InvalidInputError(
            f"pixel values must lie in [0, 1]; got min {lo:.4g}, max {hi:.4g}{hint}"
        )


def reflect_pad_to_multiple(image: Tensor, multiple: int) -> Tensor:
    """Pad the bottom and right of ``image`` by reflection to a multiple of ``multiple``.

    Unlike :func:`torch.nn.functional.pad` in ``"reflect"`` mode this works for any pad
    width (the image is mirrored again as often as needed), so a 2-pixel-wide image can
    be padded to 8.
    """
    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return image
    if ph:
        image = image.index_select(-2, _reflect_indices(h, h + ph, image.device))
    if pw:
        image = image.index_select(-1, _reflect_indices(w, w + pw, image.device))
    return image


def _reflect_indices(size: int, total: int, device: torch.device) -> Tensor:
    """Indices 0..total-1 folded into 0..size-1 by mirror reflection (edge not repeated)."""
    period = 2 * (size - 1)
    idx = torch.arange(total, device=device) % period
    return torch.where(idx < size, idx, period - idx)
