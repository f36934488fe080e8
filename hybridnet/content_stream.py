"""The content stream: a residual encoder-decoder that restores most of the scene
(Ren et al., TIP 2019, Sec. III-A and the top branch of Fig. 2).

* Encoder: three convolution modules whose features are 1/2, 1/4 and 1/8 of the input
  size; each module has ``convs_per_block`` convolutions, ReLU and a skip link
  (:class:`~hybridnet.layers.ResidualBlock`). The first two convolutions of the encoder
  are dilated (factor 2) to enlarge the receptive field.
* Decoder: up-samples back to 1/4 and 1/2; at each scale it concatenates the encoder's
  feature map of that scale (skip link) and the edge stream's decoder features of that
  scale (the *bridge* of Fig. 2: "features of deconvolution modules in edge stream are
  concatenated together to obtain more details during the up-sampling stage"), and
  returns the 1/2-resolution content features that the fusion up-samples.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from hybridnet.config import HybridNetConfig
from hybridnet.layers import ResidualBlock, upsample_like


class ContentStream(nn.Module):
    """Residual encoder-decoder with dilated first convolutions and the bridge inputs."""

    def __init__(self, config: HybridNetConfig) -> None:
        super().__init__()
        c1, c2, c3 = config.content_channels
        e1, e2, _ = config.edge_channels
        n = config.convs_per_block
        slope = config.negative_slope
        d = config.dilation
        first_dilations = (d, d) + (1,) * (n - 2)
        self.upsample = config.upsample
        block = partial(ResidualBlock, convs=n, negative_slope=slope)
        self.enc1 = block(3, c1, stride=2, dilations=first_dilations)  # 1/2
        self.enc2 = block(c1, c2, stride=2)  # 1/4
        self.enc3 = block(c2, c3, stride=2)  # 1/8
        self.dec2 = block(c3 + c2 + e2, c2)  # 1/4: skip link + bridge
        self.dec1 = block(c2 + c1 + e1, c1)  # 1/2: skip link + bridge
        self.out_channels = c1

    def forward(self, image: Tensor, bridge: tuple[Tensor, Tensor]) -> Tensor:
        """Content features at 1/2 of the input resolution, ``N×c1×H/2×W/2``.

        The last up-sampling to full resolution happens in the fusion
        (:class:`~hybridnet.HybridNet`), after a 1x1 projection.

        Args:
            image: ``N×3×H×W`` with H and W multiples of 8.
            bridge: the edge stream's decoder features at 1/2 and 1/4 of the input size.
        """
        edge_half, edge_quarter = bridge
        f1 = self.enc1(image)
        f2 = self.enc2(f1)
        f3 = self.enc3(f2)
        u2 = self.dec2(torch.cat([upsample_like(f3, f2, self.upsample), f2, edge_quarter], 1))
        u1: Tensor = self.dec1(torch.cat([upsample_like(u2, f1, self.upsample), f1, edge_half], 1))
        return u1
