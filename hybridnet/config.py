"""Hyperparameters of the hybrid network, frozen and saved inside every weights file.

The paper (Ren et al., TIP 2019, Sec. III and III-D) fixes the topology: three
convolution modules at 1/2, 1/4 and 1/8 of the input size, three convolutions per
block, ReLU, skip links, the first two convolutions of the content stream dilated by 2,
an edge stream whose encoder-decoder predicts the weight maps of a four-direction
spatially variant RNN (Eq. 3) and whose decoder features are bridged into the content
decoder, and two convolutions after the fusion. It gives no channel widths; the widths
chosen here are ours and are justified below.

Why these defaults
------------------
* Widths at 1/2, 1/4, 1/8: ``(16, 48, 128)`` in the content stream, ``(16, 32, 64)`` in
  the edge stream. On the 2-core CPU this product targets, a full-resolution 3x3
  convolution with 16 channels costs ~130 ms on a 1920x1080 image while the same layer
  at 1/8 costs ~2 ms; the budget of 2 s for a 1080p forward pass (issue #3) therefore
  leaves only thin layers at full resolution, and everything heavy lives at 1/2 and
  below. The content stream started at (16, 32, 64) like the edge stream; (16, 48, 128)
  trained better for the same steps (3,000 from scratch, same seed: 26.46 dB / SSIM 0.840
  against 25.93 / 0.826 on the validation split) at the same 1080p time (1.98 s against
  1.99 s), and is what the bundled model uses. (16, 64, 192) made a training step a third
  slower and its continued training did not score better (see the model card).
* ``multiscale_channels = 1``: the RNN input x is the image (3 channels) plus one
  down-convolution channel at each of 1/2, 1/4, 1/8 resized back (Sec. III-B), so x has
  6 channels. The scan, the four hidden maps and their max all live at full resolution
  and cost memory bandwidth per channel; 6 channels keep the edge stream at ~0.3 s.
* ``rnn_weights = "shared"``: one g and one p map per direction and pixel, shared by the
  channels of x (as in the spatial propagation literature). ``"per_channel"`` predicts
  one pair per channel of x, 6x the full-resolution head output.
* ``exposure = True``, ``residual = True`` (not in the paper): a small head estimates
  one global tone curve for the whole photo and the network restores the curve's
  result, adding its output to it (:mod:`hybridnet.exposure`). The paper's network
  guesses the exposure inside a 128-pixel view and regenerates every pixel; measured
  on photos darkened other ways than its training gamma it lost 10-16 dB to a global
  curve, and a mildly dark photo lost detail the input still held.
* ``negative_slope = 0.05`` (the paper: ReLU, 0): trained with ReLU, 566,000 of the
  733,674 weights of the earlier bundled model ended below 1e-20 (whole channels of
  the 1/8-scale blocks never fired, 90 % of ``content.enc3``); a leaky ReLU keeps a
  gradient through every unit, so the capacity paid for at run time is used.
* ``p`` through a sigmoid: 0 < p < 1 keeps the recurrence of Eq. (3) stable (a decaying
  recursive filter that never oscillates; |h| <= max|g x| / (1 - max p)). ``g`` through
  tanh: |g| < 1, so h stays bounded for any x in [0, 1] and fp16 on a GPU cannot overflow.
  The gain needed to brighten the image is learnt by the convolutions after the fusion.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

RnnWeights = Literal["shared", "per_channel"]
UpsampleMode = Literal["bilinear", "nearest"]


@dataclass(frozen=True)
class HybridNetConfig:
    """Every width, depth and choice of :class:`hybridnet.HybridNet`.

    Attributes:
        content_channels: channels of the content stream's three convolution modules at
            1/2, 1/4 and 1/8 of the input size (Sec. III-A).
        edge_channels: channels of the edge stream's weight-generating encoder-decoder at
            the same three scales (Sec. III-B).
        convs_per_block: convolutions in each encoder and decoder block (Sec. III-D: 3).
        dilation: dilation of the first two convolutions of the content encoder
            (Sec. III-D: 2).
        multiscale_channels: channels of each down-convolution of the image at 1/2, 1/4,
            1/8 that, resized back and concatenated with the image, form the RNN input x.
        rnn_weights: ``"shared"`` (one g and one p per direction and pixel) or
            ``"per_channel"`` (one per channel of x as well).
        fusion_channels: width of the first of the two convolutions after the fusion.
        upsample: interpolation used by both decoders.
        leaky_slope: negative slope of the discriminator's LeakyReLU (Table I).
        perceptual_layer: the VGG-16 ReLU layer whose features define Eq. (5).
        exposure: the network has an exposure estimator and restores the photo after
            the estimated global curve (:mod:`hybridnet.exposure`).
        residual: the output is the (curved) input plus the network's correction.
        negative_slope: slope of the generator's activations below 0 (0: ReLU, the paper).
        estimator_hidden: width of the exposure estimator's hidden layers.
    """

    content_channels: tuple[int, int, int] = (16, 48, 128)
    edge_channels: tuple[int, int, int] = (16, 32, 64)
    convs_per_block: int = 3
    dilation: int = 2
    multiscale_channels: int = 1
    rnn_weights: RnnWeights = "shared"
    fusion_channels: int = 16
    upsample: UpsampleMode = "bilinear"
    leaky_slope: float = 0.2
    perceptual_layer: str = "relu2_2"
    exposure: bool = True
    residual: bool = True
    negative_slope: float = 0.05
    estimator_hidden: int = 128

    def __post_init__(self) -> None:
        for name in ("content_channels", "edge_channels"):
            value = getattr(self, name)
            if (
                not isinstance(value, tuple)
                or len(value) != 3
                or not all(isinstance(c, int) and c > 0 for c in value)
            ):
                raise ValueError(f"{name} must be three positive ints, got {value!r}")
        for name in ("exposure", "residual"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        slope = self.negative_slope
        if isinstance(slope, bool) or not isinstance(slope, int | float) or not 0 <= slope < 1:
            raise ValueError(f"negative_slope must be a number in [0, 1), got {slope!r}")
        for name in ("convs_per_block", "dilation", "multiscale_channels", "fusion_channels",
                     "estimator_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.convs_per_block < 2:
            raise ValueError("convs_per_block must be at least 2 (the first two are dilated)")
        if self.rnn_weights not in ("shared", "per_channel"):
            raise ValueError(
                f"rnn_weights must be 'shared' or 'per_channel', got {self.rnn_weights!r}"
            )
        if self.upsample not in ("bilinear", "nearest"):
            raise ValueError(f"upsample must be 'bilinear' or 'nearest', got {self.upsample!r}")
        if self.perceptual_layer not in PERCEPTUAL_LAYERS:
            raise ValueError(
                f"perceptual_layer must be one of {sorted(PERCEPTUAL_LAYERS)}, "
                f"got {self.perceptual_layer!r}"
            )

    @property
    def rnn_channels(self) -> int:
        """Channels of the RNN input x: the image (3) plus one group per scale."""
        return 3 + 3 * self.multiscale_channels

    @property
    def rnn_weight_channels(self) -> int:
        """Channels of each weight map g or p for one direction."""
        return 1 if self.rnn_weights == "shared" else self.rnn_channels

    def to_json(self) -> str:
        """Serialise to a JSON string (stored in the weights file's metadata)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HybridNetConfig:
        """Parse :meth:`to_json` output; unknown keys are an error.

        A missing key takes the value older files were made with (:data:`LEGACY`: no
        exposure head, no residual, ReLU), else the default, so every weights file ever
        written keeps loading as the network it was.
        """
        raw: Any = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("config JSON must be an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}: made by a newer version?")
        for key in ("content_channels", "edge_channels"):
            if key in raw and isinstance(raw[key], list):
                raw[key] = tuple(raw[key])
        return cls(**{**LEGACY, **raw})

    @classmethod
    def tiny(cls) -> HybridNetConfig:
        """A very small configuration for tests and quick experiments."""
        return cls(content_channels=(4, 8, 8), edge_channels=(4, 4, 8), fusion_channels=4,
                   estimator_hidden=8)


#: Values of the fields added after the first weights files were written, for files
#: whose config does not name them (the paper's network: no exposure head, ReLU).
LEGACY: dict[str, object] = {"exposure": False, "residual": False, "negative_slope": 0.0}


#: VGG-16 ReLU layers usable for the perceptual loss, with their index in ``features``.
PERCEPTUAL_LAYERS: dict[str, int] = {
    "relu1_2": 3,
    "relu2_2": 8,
    "relu3_3": 15,
    "relu4_3": 22,
    "relu5_3": 29,
}
