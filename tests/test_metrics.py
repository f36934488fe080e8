"""Quality measures: hybridnet.metrics (Table II PSNR/SSIM, Table III HSV MSE, no-reference)."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest

from hybridnet.metrics import (
    black_point,
    brightness,
    colour_cast,
    colourfulness,
    lab_mean_ab,
    mse_hsv,
    newly_clipped_white,
    noise_sigma,
    photo_stats,
    psnr,
    rgb_to_hsv,
    rgb_to_lab,
    rms_contrast,
    ssim,
    wavelet_noise_sigma,
    white_point,
)


def _naive_ssim_gray(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    """Wang et al. 2004, Eqs. (13)-(17), by a direct double loop over window positions."""
    win, sig = 11, 1.5
    r = win // 2
    ii, jj = np.mgrid[-r : r + 1, -r : r + 1]
    w = np.exp(-(ii**2 + jj**2) / (2.0 * sig**2))
    w /= w.sum()
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    vals = []
    for p in range(x.shape[0] - win + 1):
        for q in range(x.shape[1] - win + 1):
            px = x[p : p + win, q : q + win]
            py = y[p : p + win, q : q + win]
            mx = float((w * px).sum())
            my = float((w * py).sum())
            vx = float((w * (px - mx) ** 2).sum())
            vy = float((w * (py - my) ** 2).sum())
            cxy = float((w * (px - mx) * (py - my)).sum())
            s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            vals.append(s)
    return float(np.mean(vals))


class TestPSNR:
    def test_constant_offset(self) -> None:
        a = np.full((8, 9, 3), 0.5)
        # MSE = 0.1^2 -> PSNR = 10 log10(1 / 0.01) = 20 dB
        assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-9)
        # MSE = 0.01^2 -> 40 dB, for any data layout
        assert psnr(a[..., 0], a[..., 0] - 0.01) == pytest.approx(40.0, abs=1e-9)

    def test_data_range_and_mixed_errors(self) -> None:
        a = np.zeros((2, 2))
        b = np.array([[0.0, 10.0], [0.0, 0.0]])  # MSE = 100 / 4 = 25
        assert psnr(a, b, data_range=255.0) == pytest.approx(10 * math.log10(255**2 / 25))

    def test_identical_and_errors(self) -> None:
        a = np.random.default_rng(0).random((5, 5, 3))
        assert psnr(a, a) == math.inf
        with pytest.raises(ValueError):
            psnr(a, a[:4])
        with pytest.raises(ValueError):
            psnr(a, a, data_range=0.0)


class TestSSIM:
    def test_identical_is_one(self) -> None:
        a = np.random.default_rng(1).random((20, 23, 3))
        assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)

    def test_matches_naive_double_loop_gray(self) -> None:
        rng = np.random.default_rng(2)
        x = rng.random((17, 19))
        y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
        assert ssim(x, y) == pytest.approx(_naive_ssim_gray(x, y), abs=1e-12)
        assert ssim(x * 255, y * 255, data_range=255.0) == pytest.approx(ssim(x, y), abs=1e-12)

    def test_colour_is_mean_of_channels(self) -> None:
        rng = np.random.default_rng(3)
        x = rng.random((15, 14, 3))
        y = np.clip(0.8 * x + rng.normal(0, 0.05, x.shape), 0, 1)
        want = np.mean([_naive_ssim_gray(x[..., c], y[..., c]) for c in range(3)])
        assert ssim(x, y) == pytest.approx(want, abs=1e-12)

    def test_degradation_lowers_ssim_and_symmetry(self) -> None:
        rng = np.random.default_rng(4)
        x = rng.random((32, 32))
        small = np.clip(x + rng.normal(0, 0.02, x.shape), 0, 1)
        large = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)
        assert 1.0 > ssim(x, small) > ssim(x, large)
        assert ssim(x, large) == pytest.approx(ssim(large, x), abs=1e-12)

    def test_too_small(self) -> None:
        with pytest.raises(ValueError):
            ssim(np.zeros((10, 30)), np.zeros((10, 30)))


class TestRGBToHSV:
    def test_matches_colorsys(self) -> None:
        rng = np.random.default_rng(5)
        px = np.concatenate(
            [
                rng.random((200, 3)),
                np.array([[0, 0, 0], [1, 1, 1], [0.3, 0.3, 0.3], [1, 0, 0], [0, 1, 0]]),
                np.array([[0, 0, 1], [1, 1, 0], [0.5, 0.5, 0.2], [0.2, 0.5, 0.5], [1, 0, 1]]),
            ]
        )
        got = rgb_to_hsv(px.reshape(-1, 1, 3)).reshape(-1, 3)
        want = np.array([colorsys.rgb_to_hsv(*p) for p in px])
        np.testing.assert_allclose(got, want, atol=1e-12)


class TestMseHSV:
    def test_hand_pixels(self) -> None:
        a = np.array([[[1.0, 0.0, 0.0], [0.2, 0.4, 0.6]], [[0.5, 0.5, 0.5], [0.9, 0.8, 0.1]]])
        b = np.array([[[0.8, 0.1, 0.0], [0.2, 0.4, 0.5]], [[0.4, 0.5, 0.5], [0.1, 0.1, 0.1]]])
        ha = [colorsys.rgb_to_hsv(*p) for p in a.reshape(-1, 3)]
        hb = [colorsys.rgb_to_hsv(*p) for p in b.reshape(-1, 3)]
        mse_h = np.mean([(p[0] - q[0]) ** 2 for p, q in zip(ha, hb, strict=True)])
        mse_s = np.mean([(p[1] - q[1]) ** 2 for p, q in zip(ha, hb, strict=True)])
        mse_v = np.mean([(255 * p[2] - 255 * q[2]) ** 2 for p, q in zip(ha, hb, strict=True)])
        got = mse_hsv(a, b)
        assert got.mse_h == pytest.approx(mse_h, rel=1e-12)
        assert got.mse_s == pytest.approx(mse_s, rel=1e-12)
        assert got.mse_v == pytest.approx(mse_v, rel=1e-12)
        assert got.mse_hsv == pytest.approx((mse_h + mse_s + mse_v) / 3, rel=1e-12)

    def test_v_scale_and_plain_hue(self) -> None:
        # V differs by 0.1 -> 25.5 grey levels -> MSE_v = 650.25; H and S equal.
        a = np.full((3, 3, 3), 0.5)
        a[..., 0] = 0.6
        got = mse_hsv(a, a * (0.5 / 0.6))
        assert got.mse_v == pytest.approx(25.5**2, rel=1e-9)
        assert got.mse_h == pytest.approx(0.0, abs=1e-20)
        assert got.mse_s == pytest.approx(0.0, abs=1e-20)
        # Plain (not circular) hue difference: H = 0.99 vs H = 0.01 counts as 0.98.
        r1 = np.array(colorsys.hsv_to_rgb(0.99, 1.0, 1.0)).reshape(1, 1, 3)
        r2 = np.array(colorsys.hsv_to_rgb(0.01, 1.0, 1.0)).reshape(1, 1, 3)
        assert mse_hsv(r1, r2).mse_h == pytest.approx(0.98**2, rel=1e-9)

    def test_needs_rgb(self) -> None:
        with pytest.raises(ValueError):
            mse_hsv(np.zeros((4, 4)), np.zeros((4, 4)))


class TestBrightness:
    def test_rec709_luma(self) -> None:
        img = np.zeros((4, 5, 3))
        img[..., 0], img[..., 1], img[..., 2] = 0.5, 0.25, 1.0
        assert brightness(img) == pytest.approx(0.2126 * 0.5 + 0.7152 * 0.25 + 0.0722)
        assert brightness(np.full((3, 3), 0.3)) == pytest.approx(0.3)
        assert brightness(np.ones((2, 2, 3))) == pytest.approx(1.0)


class TestNoiseSigma:
    def test_gray_gaussian(self) -> None:
        rng = np.random.default_rng(6)
        img = 0.5 + rng.normal(0, 0.03, (200, 200))
        assert noise_sigma(img) == pytest.approx(0.03, rel=0.03)

    def test_rgb_independent_noise_in_luma(self) -> None:
        rng = np.random.default_rng(7)
        img = 0.5 + rng.normal(0, 0.05, (200, 200, 3))
        k = math.sqrt(0.2126**2 + 0.7152**2 + 0.0722**2)  # 0.7596
        assert noise_sigma(img) == pytest.approx(k * 0.05, rel=0.03)

    def test_planes_are_noise_free(self) -> None:
        yy, xx = np.mgrid[0:50, 0:60] / 100.0
        assert noise_sigma(0.1 + 0.3 * xx + 0.2 * yy) == pytest.approx(0.0, abs=1e-12)
        assert noise_sigma(np.full((10, 10, 3), 0.7)) == pytest.approx(0.0, abs=1e-12)

    def test_too_small(self) -> None:
        with pytest.raises(ValueError):
            noise_sigma(np.zeros((2, 10)))


class TestRGBToLab:
    def test_reference_colours(self) -> None:
        px = np.array([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]])
        lab = rgb_to_lab(px)[0]
        np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=1e-9)
        np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-9)
        # sRGB red, D65: L* 53.24, a* 80.09, b* 67.20 (standard tables)
        np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.1)
        # mid grey 0.5 -> Y = 0.2140 -> L* = 53.39, neutral
        np.testing.assert_allclose(lab[3], [53.39, 0.0, 0.0], atol=0.01)


class TestColourCast:
    def test_neutral_is_zero(self) -> None:
        rng = np.random.default_rng(8)
        gray = np.repeat(rng.random((16, 16, 1)), 3, axis=2)
        assert colour_cast(gray) == pytest.approx(0.0, abs=1e-9)

    def test_tints(self) -> None:
        rng = np.random.default_rng(9)
        gray = np.repeat(0.2 + 0.6 * rng.random((16, 16, 1)), 3, axis=2)
        warm = gray * np.array([1.0, 1.0, 0.8])  # less blue -> yellow, b* > 0
        a_bar, b_bar = lab_mean_ab(warm)
        assert b_bar > 5.0 and abs(a_bar) < b_bar
        assert colour_cast(warm) == pytest.approx(math.hypot(a_bar, b_bar))
        green = gray * np.array([0.85, 1.0, 0.85])
        a_bar, _ = lab_mean_ab(green)
        assert a_bar < -5.0
        assert colour_cast(gray * np.array([1.0, 1.0, 0.95])) < colour_cast(warm)


class TestBlackWhitePoint:
    def test_percentiles_of_luma(self) -> None:
        ramp = np.repeat(np.linspace(0, 1, 101)[None, :, None], 3, axis=2)
        assert black_point(ramp) == pytest.approx(0.01 * 255, abs=1e-6)
        assert white_point(ramp) == pytest.approx(0.99 * 255, abs=1e-6)
        assert black_point(ramp + 0.1) > black_point(ramp)  # haze lifts it


class TestRmsContrast:
    def test_std_of_luma(self) -> None:
        img = np.zeros((2, 2, 3))
        img[0] = 1.0  # half white, half black: std 0.5
        assert rms_contrast(img) == pytest.approx(127.5)
        assert rms_contrast(np.full((4, 4, 3), 0.3)) == 0.0


class TestColourfulness:
    def test_grey_is_zero_and_saturated_is_high(self) -> None:
        rng = np.random.default_rng(0)
        grey = np.repeat(rng.random((16, 16, 1)), 3, axis=2)
        assert colourfulness(grey) == pytest.approx(0.0, abs=1e-9)
        colours = rng.random((16, 16, 3))
        assert colourfulness(colours) > 45

    def test_hasler_suesstrunk_formula(self) -> None:
        img = np.zeros((1, 2, 3))
        img[0, 0] = (1, 0, 0)  # rg 255, yb 127.5
        img[0, 1] = (0, 0, 1)  # rg 0, yb -255
        rg, yb = np.array([255, 0.0]), np.array([127.5, -255])
        expected = math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean())
        assert colourfulness(img) == pytest.approx(expected)


class TestWaveletNoiseSigma:
    @pytest.mark.parametrize("sigma", [1.0, 4.0, 10.0])
    def test_white_noise_on_a_smooth_image(self, sigma: float) -> None:
        rng = np.random.default_rng(int(sigma))
        yy, xx = np.mgrid[0:256, 0:256] / 256
        base = 0.4 + 0.2 * np.sin(3 * xx + 2 * yy)
        grey = np.clip(base + rng.normal(0, sigma / 255, base.shape), 0, 1)
        img = np.repeat(grey[..., None], 3, axis=2)
        assert wavelet_noise_sigma(img) == pytest.approx(sigma, rel=0.08)

    def test_matches_pywavelets_when_installed(self) -> None:
        pywt = pytest.importorskip("pywt")
        rng = np.random.default_rng(3)
        img = rng.random((37, 50, 3))
        y = (img @ np.array([0.2126, 0.7152, 0.0722])) * 255
        _, (_, _, diagonal) = pywt.dwt2(y, "db2", mode="symmetric")
        ref = np.median(np.abs(diagonal[diagonal != 0])) / 0.6744897501960817
        # our luma: the module's own weights; compare through the same luma
        assert wavelet_noise_sigma(img) == pytest.approx(ref, rel=1e-6)

    def test_tiny_images_are_refused(self) -> None:
        with pytest.raises(ValueError, match="at least 2x2"):
            wavelet_noise_sigma(np.zeros((1, 5, 3)))


class TestPhotoStats:
    def test_every_field(self) -> None:
        rng = np.random.default_rng(1)
        before = rng.random((32, 32, 3)) * 0.3
        after = np.clip(before * 4, 0, 1)
        stats = photo_stats(after, before)
        assert stats.mean_luma == pytest.approx(brightness(after) * 255)
        assert stats.new_white == pytest.approx(newly_clipped_white(before, after))
        assert stats.new_white > 0 and photo_stats(after).new_white == 0
        assert stats.black_point < stats.white_point
