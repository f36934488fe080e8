"""The discriminator D of Table I (Ren et al., TIP 2019, Sec. III-C).

Ten convolutions, each followed by a LeakyReLU except the last, which is followed by a
sigmoid that gives the probability that the input is a real (ground-truth) image:

======== ================ ====== ===========
Layer    Kernel dimension Stride Output size
======== ================ ====== ===========
Input    -                -      128 × 128
Conv1-1  32 × 5 × 5       2      64 × 64
Conv1-2  64 × 3 × 3       1      64 × 64
Conv2-1  64 × 5 × 5       2      32 × 32
Conv2-2  128 × 3 × 3      1      32 × 32
Conv3-1  128 × 5 × 5      2      16 × 16
Conv3-2  256 × 3 × 3      1      16 × 16
Conv4-1  256 × 5 × 5      2      8 × 8
Conv4-2  512 × 3 × 3      1      8 × 8
Conv5-1  512 × 5 × 5      2      4 × 4
Conv5-2  1 × 4 × 4        1      1 × 1
Sigmoid  -                -      -
======== ================ ====== ===========

Inputs larger than 128 × 128 (multiples of 32) give a map of scores, one per 128 × 128
receptive field; :meth:`Discriminator.forward` averages their logits.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hybridnet.errors import InvalidInputError

#: (output channels, kernel, stride) of the ten convolutions of Table I.
TABLE_I: tuple[tuple[int, int, int], ...] = (
    (32, 5, 2),
    (64, 3, 1),
    (64, 5, 2),
    (128, 3, 1),
    (128, 5, 2),
    (256, 3, 1),
    (256, 5, 2),
    (512, 3, 1),
    (512, 5, 2),
    (1, 4, 1),
)
PATCH = 128


class Discriminator(nn.Module):
    """Table I. ``forward`` returns logits; :meth:`probability` applies the sigmoid."""

    def __init__(self, leaky_slope: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for i, (out_ch, k, s) in enumerate(TABLE_I):
            last = i == len(TABLE_I) - 1
            layers.append(nn.Conv2d(in_ch, out_ch, k, stride=s, padding=0 if last else k // 2))
            if not last:
                layers.append(nn.LeakyReLU(leaky_slope))
            in_ch = out_ch
        self.layers = nn.Sequential(*layers)

    def forward(self, image: Tensor) -> Tensor:
        """Logit per image, shape ``N`` (mean over the score map for large inputs)."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise InvalidInputError(
                f"the discriminator expects N×3×H×W images, got shape {tuple(image.shape)}"
            )
        h, w = image.shape[-2:]
        if h < PATCH or w < PATCH or h % 32 or w % 32:
            raise InvalidInputError(
                f"the discriminator of Table I takes {PATCH}×{PATCH} patches (or larger "
                f"multiples of 32); got {h}×{w}"
            )
        logits: Tensor = self.layers(image).flatten(1).mean(dim=1)
        return logits

    def probability(self, image: Tensor) -> Tensor:
        """D(I): the sigmoid of Table I's last layer, in (0, 1)."""
        return torch.sigmoid(self(image))
