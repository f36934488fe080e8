r"""The edge stream: spatially variant RNNs guided by a weight-generating encoder-decoder
(Ren et al., TIP 2019, Sec. III-B, Fig. 3 and the bottom branch of Fig. 2).

1. The input is the low-light image and its gradients (:func:`~hybridnet.layers.
   image_gradients`), 9 channels for RGB.
2. An encoder-decoder with skip links (the same module shape as the content stream,
   without dilation) predicts, at full resolution, the per-pixel weight maps ``g`` and
   ``p`` of each of the four scan directions. Its decoder features at 1/2 and 1/4 are
   the *bridge* into the content stream's decoder.
3. Multi-scale features: down-convolutions of the image with ratios 1/2, 1/4, 1/8,
   resized back to the full size and concatenated with the image, form ``x``.
4. Eq. (3) scans ``x`` left-to-right, right-to-left, top-to-bottom and bottom-to-top
   (:func:`~hybridnet.spatially_variant_rnn.spatial_rnn`); the four hidden maps are merged by a
   node-wise max, which keeps at each pixel the direction of maximal response:

.. math::

    E(u) = \max_{d \in \{\rightarrow, \leftarrow, \downarrow, \uparrow\}} h_d(u)

Weight activations (our choice, the paper does not say): :math:`p = \sigma(\cdot) \in
(0, 1)` so the recurrence is a stable, non-oscillating recursive filter, and :math:`g =
\tanh(\cdot) \in (-1, 1)` so the hidden state stays bounded (see
:mod:`hybridnet.config`).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from hybridnet.config import HybridNetConfig
from hybridnet.layers import ResidualBlock, image_gradients, upsample_like
from hybridnet.spatially_variant_rnn import DIRECTIONS, ScanBackend, spatial_rnn_max4

_EDGE_INPUT_CHANNELS = 9  # RGB + horizontal and vertical gradients


class EdgeStream(nn.Module):
    """Weight-generating encoder-decoder, multi-scale features and the 4-way RNN."""

    def __init__(self, config: HybridNetConfig) -> None:
        super().__init__()
        e1, e2, e3 = config.edge_channels
        n = config.convs_per_block
        slope = config.negative_slope
        m = config.multiscale_channels
        self.upsample = config.upsample
        self.weight_channels = config.rnn_weight_channels
        block = partial(ResidualBlock, convs=n, negative_slope=slope)
        self.enc1 = block(_EDGE_INPUT_CHANNELS, e1, stride=2)  # 1/2
        self.enc2 = block(e1, e2, stride=2)  # 1/4
        self.enc3 = block(e2, e3, stride=2)  # 1/8
        self.dec2 = block(e3 + e2, e2)  # 1/4 (bridge)
        self.dec1 = block(e2 + e1, e1)  # 1/2 (bridge)
        # Full-resolution head predicting g and p for each of the four directions. It is a
        # 3x3 convolution over [up(d1), input]; the d1 part is a 1x1 convolution applied
        # before the bilinear up-sampling (the two commute), which avoids building a
        # 25-channel full-resolution tensor. The input skip lets the weights follow edges
        # to the pixel.
        head = 2 * len(DIRECTIONS) * self.weight_channels
        self.head_from_decoder = nn.Conv2d(e1, head, 1)
        self.head_from_input = nn.Conv2d(_EDGE_INPUT_CHANNELS, head, 3, padding=1)
        # Down-convolutions of the image with ratios 1/2, 1/4, 1/8 (multi-scale x).
        self.down = nn.ModuleList(nn.Conv2d(3, m, kernel_size=s, stride=s) for s in (2, 4, 8))
        self.out_channels = config.rnn_channels
        self.scan_backend: ScanBackend = "auto"

    def weight_maps(self, image: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """``g`` and ``p``, each ``N×4×Cw×H×W`` in :data:`DIRECTIONS` order, and the bridge."""
        inp = torch.cat([image, image_gradients(image)], dim=1)
        f1 = self.enc1(inp)
        f2 = self.enc2(f1)
        f3 = self.enc3(f2)
        d2 = self.dec2(torch.cat([upsample_like(f3, f2, self.upsample), f2], 1))
        d1 = self.dec1(torch.cat([upsample_like(d2, f1, self.upsample), f1], 1))
        raw = upsample_like(self.head_from_decoder(d1), image, self.upsample)
        raw = raw + self.head_from_input(inp)
        n, _, h, w = raw.shape
        raw = raw.view(n, 2, len(DIRECTIONS), self.weight_channels, h, w)
        g = torch.tanh(raw[:, 0])  # |g| < 1
        p = torch.sigmoid(raw[:, 1])  # 0 < p < 1: a stable recurrence
        return g, p, (d1, d2)

    def multiscale_features(self, image: Tensor) -> Tensor:
        """x: the image and its 1/2, 1/4, 1/8 down-convolutions resized back (Sec. III-B)."""
        scales = [upsample_like(down(image), image, "bilinear") for down in self.down]
        return torch.cat([image, *scales], dim=1)

    def forward(self, image: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Edge features ``N×(3+3m)×H×W`` and the bridge features at 1/2 and 1/4.

        Args:
            image: ``N×3×H×W`` with H and W multiples of 8.
        """
        g, p, bridge = self.weight_maps(image)
        x = self.multiscale_features(image)
        edges = spatial_rnn_max4(x, g, p, backend=self.scan_backend)  # Eq. (3), node-wise max
        return edges, bridge
