"""Building blocks shared by both streams of the hybrid network (Sec. III-A, III-B)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybridnet.config import UpsampleMode


class ResidualBlock(nn.Module):
    r"""One convolution module of the residual encoder-decoder (Sec. III-A, III-D).

    ``n`` 3×3 convolutions with ReLU; the output of the first (which may change the width
    and, in the encoder, halve the resolution with stride 2) is carried by a skip link
    around the others:

    .. math::

        y_1 = \mathrm{ReLU}(W_1 * x), \quad
        y_{i} = \mathrm{ReLU}(W_i * y_{i-1}) \; (1 < i < n), \quad
        y = \mathrm{ReLU}(W_n * y_{n-1} + y_1)

    Args:
        in_channels: input width.
        out_channels: output width.
        convs: number of convolutions ``n`` (the paper uses 3).
        stride: stride of the first convolution (2 in the encoder, 1 in the decoder).
        dilations: dilation of each convolution; the paper dilates the first two
            convolutions of the content encoder by 2 to enlarge the receptive field.
        negative_slope: the activations' slope below 0 (0: ReLU, the paper's).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        convs: int,
        stride: int = 1,
        dilations: tuple[int, ...] | None = None,
        negative_slope: float = 0.0,
    ) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)
        dil = dilations if dilations is not None else (1,) * convs
        if len(dil) != convs:
            raise ValueError(f"need {convs} dilations, got {dil}")
        layers = []
        for i in range(convs):
            layers.append(
                nn.Conv2d(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    kernel_size=3,
                    stride=stride if i == 0 else 1,
                    padding=dil[i],
                    dilation=dil[i],
                )
            )
        self.convs = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        # In-place activations act on fresh convolution outputs, which autograd does not keep.
        first = activation(self.convs[0](x), self.negative_slope)
        y = first
        for i, conv in enumerate(self.convs[1:], start=1):
            y = conv(y)
            if i == len(self.convs) - 1:
                y = y + first  # the block's skip link
            y = activation(y, self.negative_slope)
        return y


def activation(x: Tensor, negative_slope: float) -> Tensor:
    """ReLU (``negative_slope == 0``, the paper) or leaky ReLU, in place."""
    if negative_slope == 0.0:
        return F.relu(x, inplace=True)
    return F.leaky_relu(x, negative_slope, inplace=True)


def upsample_like(x: Tensor, reference: Tensor, mode: UpsampleMode) -> Tensor:
    """Resize ``x`` to the spatial size of ``reference`` with the decoders' interpolation."""
    size = (reference.shape[-2], reference.shape[-1])
    if (x.shape[-2], x.shape[-1]) == size:
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def image_gradients(image: Tensor) -> Tensor:
    r"""Horizontal and vertical forward differences of ``image`` (zero at the far border).

    The edge stream works "at both RGB and gradient space" (Sec. III): its input is the
    image concatenated with :math:`\partial_x I` and :math:`\partial_y I`, 3 + 6 channels
    for an RGB image.
    """
    dx = torch.zeros_like(image)
    dy = torch.zeros_like(image)
    dx[..., :, :-1] = image[..., :, 1:] - image[..., :, :-1]
    dy[..., :-1, :] = image[..., 1:, :] - image[..., :-1, :]
    return torch.cat([dx, dy], dim=1)
