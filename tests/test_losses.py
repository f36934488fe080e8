"""Eq. (4)-(7)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from hybridnet import metrics
from hybridnet.losses import (
    LAMBDA_A,
    LAMBDA_P,
    HybridLoss,
    adversarial_loss,
    discriminator_loss,
    mse_loss,
    perceptual_loss,
    ssim_loss,
)
from hybridnet.vgg import VGGFeatures, load_vgg_features


@pytest.fixture(scope="module")
def vgg(tmp_path_factory: pytest.TempPathFactory) -> VGGFeatures:
    """A VGG-16 with random weights saved and loaded the way real weights are."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = VGGFeatures("relu2_2")
    state = {f"features.{k}": v for k, v in source.features.state_dict().items()}
    path = tmp_path_factory.mktemp("vgg") / "vgg16.safetensors"
    save_file(state, str(path))
    loaded = load_vgg_features(path, "relu2_2")
    assert loaded is not None
    return loaded


class TestMse:
    def test_hand_value(self) -> None:
        a = torch.zeros(2, 3, 4, 4)
        b = torch.full((2, 3, 4, 4), 0.5)
        assert mse_loss(a, b).item() == pytest.approx(0.25)


class TestPerceptual:
    def test_zero_for_identical_images(self, vgg: VGGFeatures) -> None:
        x = torch.rand(1, 3, 32, 32)
        assert perceptual_loss(x, x, vgg).item() == 0.0

    def test_is_feature_mse(self, vgg: VGGFeatures) -> None:
        a, b = torch.rand(2, 1, 3, 32, 32)
        expected = ((vgg(a) - vgg(b)) ** 2).sum() / vgg(a).numel()  # 1/(C W H) ||.||^2
        assert perceptual_loss(a, b, vgg).item() == pytest.approx(expected.item(), rel=1e-5)

    def test_gradient_reaches_the_output_only(self, vgg: VGGFeatures) -> None:
        out = torch.rand(1, 3, 16, 16, requires_grad=True)
        perceptual_loss(out, torch.rand(1, 3, 16, 16), vgg).backward()
        assert out.grad is not None and out.grad.abs().sum() > 0
        assert all(p.grad is None for p in vgg.parameters())


class TestAdversarial:
    def test_discriminator_loss_is_minus_eq6(self) -> None:
        real = torch.tensor([2.0, -1.0])
        fake = torch.tensor([0.5, -3.0])
        d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
        eq6 = torch.log(d_real).mean() + torch.log(1 - d_fake).mean()
        assert discriminator_loss(real, fake).item() == pytest.approx(-eq6.item(), rel=1e-6)

    def test_generator_forms(self) -> None:
        fake = torch.tensor([0.3, -2.0, 4.0])
        d = torch.sigmoid(fake)
        assert adversarial_loss(fake).item() == pytest.approx(-torch.log(d).mean().item())
        assert adversarial_loss(fake, "minimax").item() == pytest.approx(
            torch.log(1 - d).mean().item(), rel=1e-6
        )

    def test_stable_for_confident_discriminator(self) -> None:
        fake = torch.tensor([-200.0, 200.0])
        assert math.isfinite(adversarial_loss(fake).item())
        assert math.isfinite(discriminator_loss(fake, fake).item())


class TestSsimLoss:
    """The optional SSIM term: 1 - the index that Table II reports, differentiable."""

    def test_equals_one_minus_metrics_ssim(self) -> None:
        rng = np.random.default_rng(3)
        a = rng.random((2, 3, 23, 30))
        b = np.clip(a + 0.15 * rng.standard_normal(a.shape), 0.0, 1.0)
        expected = np.mean([metrics.ssim(a[i].transpose(1, 2, 0), b[i].transpose(1, 2, 0))
                            for i in range(2)])
        got = 1.0 - ssim_loss(torch.from_numpy(a), torch.from_numpy(b)).item()
        assert got == pytest.approx(expected, abs=1e-10)
        # float32, as in training
        got32 = 1.0 - ssim_loss(torch.from_numpy(a).float(), torch.from_numpy(b).float()).item()
        assert got32 == pytest.approx(expected, abs=1e-5)

    def test_zero_for_identical_images_and_gradient_improves_ssim(self) -> None:
        torch.manual_seed(0)
        target = torch.rand(1, 3, 16, 16)
        assert ssim_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
        out = (target + 0.2 * torch.randn_like(target)).requires_grad_(True)
        before = ssim_loss(out, target)
        before.backward()  # type: ignore[no-untyped-call]
        assert out.grad is not None and torch.isfinite(out.grad).all()
        stepped = (out - 0.5 * out.grad / out.grad.abs().max()).detach()
        assert ssim_loss(stepped, target).item() < before.item()

    def test_bad_shapes(self) -> None:
        with pytest.raises(ValueError, match="N x C x H x W"):
            ssim_loss(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))
        with pytest.raises(ValueError, match="at least 11x11"):
            ssim_loss(torch.rand(1, 3, 10, 16), torch.rand(1, 3, 10, 16))


class TestTotal:
    def test_weights_of_eq7(self, vgg: VGGFeatures) -> None:
        out, target = torch.rand(2, 2, 3, 16, 16)
        logits = torch.tensor([0.2, -0.4])
        values = HybridLoss("total", vgg)(out, target, logits)
        expected = (
            mse_loss(out, target)
            + LAMBDA_P * perceptual_loss(out, target, vgg)
            + LAMBDA_A * adversarial_loss(logits)
        )
        assert values.total.item() == pytest.approx(expected.item(), rel=1e-6)
        assert LAMBDA_P == 0.05 and LAMBDA_A == 1e-3

    @pytest.mark.parametrize(
        ("terms", "per", "adv"),
        [
            ("mse", False, False),
            ("mse+per", True, False),
            ("mse+adv", False, True),
            ("total", True, True),
        ],
    )
    def test_ablation_terms(self, vgg: VGGFeatures, terms: str, per: bool, adv: bool) -> None:
        loss = HybridLoss(terms, vgg)  # type: ignore[arg-type]
        out, target = torch.rand(2, 1, 3, 16, 16)
        values = loss(out, target, torch.zeros(1) if adv else None)
        assert (values.perceptual is not None) == per
        assert (values.adversarial is not None) == adv

    def test_missing_vgg_warns_once_and_trains(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="hybridnet.losses"):
            loss = HybridLoss("total", None)
            for _ in range(5):
                out = torch.rand(1, 3, 8, 8, requires_grad=True)
                values = loss(out, torch.rand(1, 3, 8, 8), torch.zeros(1))
                values.total.backward()
        warnings = [r for r in caplog.records if "perceptual loss" in r.getMessage()]
        assert len(warnings) == 1
        assert "OFF" in warnings[0].getMessage()
        assert not loss.perceptual_active
        assert values.perceptual is None

    def test_ssim_term_is_off_by_default_and_weighted_when_on(self) -> None:
        out, target = torch.rand(2, 2, 3, 16, 16)
        plain = HybridLoss("mse")(out, target)
        assert plain.ssim is None
        assert plain.total.item() == pytest.approx(mse_loss(out, target).item())
        with_ssim = HybridLoss("mse", lambda_s=0.3)(out, target)
        dssim = ssim_loss(out, target).item()
        assert with_ssim.ssim == pytest.approx(dssim)
        assert with_ssim.total.item() == pytest.approx(
            mse_loss(out, target).item() + 0.3 * dssim, rel=1e-6)
        with pytest.raises(ValueError, match="SSIM weight"):
            HybridLoss("mse", lambda_s=-0.1)

    def test_adversarial_needs_logits(self) -> None:
        with pytest.raises(ValueError, match="logits"):
            HybridLoss("mse+adv")(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
