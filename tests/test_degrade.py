"""Synthetic low-light pairs: hybridnet.degrade (Ren et al. 2019, Sec. IV-A / IV-B)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybridnet.degrade import (
    RandomPairSampler,
    RealisticDraw,
    RealisticParams,
    apply_realistic,
    draw_realistic,
    gamma_darken,
    image_seed,
    linear_to_sRGB,
    realistic_darken,
    round_to_8bit,
    sRGB_to_linear,
    table2_input,
)


def _smooth_image(h: int, w: int, lo: float, hi: float, seed: int = 0) -> np.ndarray:
    """A float32 H x W x 3 image with values spread over [lo, hi]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, size=(h, w, 3)).astype(np.float32)


def _on_8bit_grid(img: np.ndarray) -> bool:
    k = img.astype(np.float64) * 255.0
    return bool(np.all(np.abs(k - np.round(k)) < 1e-4))


class TestSRGBToLinear:
    def test_known_values(self) -> None:
        v = np.array([0.0, 0.04045, 0.5, 1.0])
        want = np.array([0.0, 0.04045 / 12.92, (0.555 / 1.055) ** 2.4, 1.0])
        np.testing.assert_allclose(sRGB_to_linear(v), want, rtol=1e-12, atol=1e-15)
        assert sRGB_to_linear(np.array([0.5]))[0] == pytest.approx(0.21404, abs=1e-5)

    def test_continuous_and_monotone(self) -> None:
        v = np.linspace(0.0, 1.0, 10001)
        lin = sRGB_to_linear(v)
        assert np.all(np.diff(lin) > 0)
        below = sRGB_to_linear(np.array([0.04045 - 1e-9]))[0]
        above = sRGB_to_linear(np.array([0.04045 + 1e-9]))[0]
        assert abs(above - below) < 1e-8


class TestLinearToSRGB:
    def test_round_trip(self) -> None:
        v = np.linspace(0.0, 1.0, 2001)
        np.testing.assert_allclose(linear_to_sRGB(sRGB_to_linear(v)), v, atol=1e-12)

    def test_known_values(self) -> None:
        lin = np.array([0.0, 0.0031308, 0.18, 1.0])
        want = np.array([0.0, 12.92 * 0.0031308, 1.055 * 0.18 ** (1 / 2.4) - 0.055, 1.0])
        np.testing.assert_allclose(linear_to_sRGB(lin), want, rtol=1e-12)
        # 18% grey encodes to about 46% (118/255)
        assert linear_to_sRGB(np.array([0.18]))[0] == pytest.approx(0.4614, abs=1e-3)


class TestRoundTo8bit:
    def test_grid_and_clip(self) -> None:
        x = np.array([-0.1, 0.0, 0.5, 0.7 / 255.0, 1.2], dtype=np.float64)
        got = round_to_8bit(x)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, [0.0, 0.0, 128 / 255, 1 / 255, 1.0], atol=1e-7)


class TestGammaDarken:
    def test_mean_follows_power_law(self) -> None:
        clean = _smooth_image(96, 96, 0.3, 0.95)
        low = gamma_darken(clean, 3.0, 0.01, np.random.default_rng(1))
        assert low.dtype == np.float32 and low.shape == clean.shape
        want = float(np.mean(clean.astype(np.float64) ** 3))
        assert float(low.mean()) == pytest.approx(want, abs=1e-3)
        assert float(low.mean()) < 0.5 * float(clean.mean())

    def test_noise_sigma_before_quantisation(self) -> None:
        clean = _smooth_image(128, 128, 0.35, 0.9)
        low = gamma_darken(clean, 2.5, 0.01, np.random.default_rng(2), quantize_8bit=False)
        resid = low.astype(np.float64) - clean.astype(np.float64) ** 2.5
        assert float(resid.std()) == pytest.approx(0.01, rel=0.03)
        assert abs(float(resid.mean())) < 5e-4

    def test_noise_free_is_exact_power(self) -> None:
        clean = _smooth_image(8, 9, 0.0, 1.0)
        low = gamma_darken(clean, 2.2, 0.0, np.random.default_rng(0), quantize_8bit=False)
        np.testing.assert_allclose(low, clean.astype(np.float64) ** 2.2, rtol=1e-6, atol=1e-7)

    def test_quantised_clipped_gray_ok(self) -> None:
        clean = _smooth_image(32, 32, 0.0, 1.0)[..., 0]
        low = gamma_darken(clean, 2.0, 0.05, np.random.default_rng(3))
        assert low.shape == (32, 32)
        assert _on_8bit_grid(low)
        assert low.min() >= 0.0 and low.max() <= 1.0

    def test_reproducible_from_generator_state(self) -> None:
        clean = _smooth_image(16, 16, 0.0, 1.0)
        a = gamma_darken(clean, 3.0, 0.02, np.random.default_rng(7))
        b = gamma_darken(clean, 3.0, 0.02, np.random.default_rng(7))
        c = gamma_darken(clean, 3.0, 0.02, np.random.default_rng(8))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)

    @pytest.mark.parametrize(
        ("img", "exc"),
        [
            (np.full((4, 4, 3), 1.5, dtype=np.float32), ValueError),
            (np.zeros((4, 4, 4), dtype=np.float32), ValueError),
            (np.zeros((4, 4, 3), dtype=np.uint8), TypeError),
            (np.full((4, 4, 3), np.nan, dtype=np.float32), ValueError),
        ],
    )
    def test_rejects_bad_input(self, img: np.ndarray, exc: type[Exception]) -> None:
        with pytest.raises(exc):
            gamma_darken(img, 3.0, 0.01, np.random.default_rng(0))

    def test_rejects_bad_parameters(self) -> None:
        clean = _smooth_image(4, 4, 0.0, 1.0)
        with pytest.raises(ValueError):
            gamma_darken(clean, 0.0, 0.01, np.random.default_rng(0))
        with pytest.raises(ValueError):
            gamma_darken(clean, 3.0, -0.01, np.random.default_rng(0))


class TestTable2Input:
    def test_deterministic_per_seed(self) -> None:
        clean = _smooth_image(40, 50, 0.0, 1.0)
        a = table2_input(clean, 123)
        b = table2_input(clean, 123)
        c = table2_input(clean, 124)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)

    def test_protocol_gamma3_sigma001_8bit(self) -> None:
        clean = _smooth_image(128, 128, 0.4, 0.9)
        low = table2_input(clean, 5)
        assert _on_8bit_grid(low)
        expect = gamma_darken(clean, 3.0, 0.01, np.random.default_rng(5), quantize_8bit=True)
        np.testing.assert_array_equal(low, expect)
        resid = low.astype(np.float64) - clean.astype(np.float64) ** 3
        # sigma 0.01 plus the 8-bit rounding error (1/255)/sqrt(12)
        want = math.sqrt(0.01**2 + (1 / 255) ** 2 / 12)
        assert float(resid.std()) == pytest.approx(want, rel=0.03)


class TestImageSeed:
    def test_stable_value(self) -> None:
        # SHA-256 based: must never change between runs, machines or Python versions.
        assert image_seed("100007.jpg") == 16660291669511986752

    def test_uses_base_name_only(self) -> None:
        s = image_seed("100007.jpg")
        assert image_seed("BSDS500/test/100007.jpg") == s
        assert image_seed("C:\\data\\BSDS500\\100007.jpg") == s
        assert image_seed("100039.jpg") != s

    def test_usable_as_seed(self) -> None:
        seed = image_seed("x.png")
        assert 0 <= seed < 2**64
        np.random.default_rng(seed)
        with pytest.raises(ValueError):
            image_seed("dir/")


class TestDrawRealistic:
    def test_ranges_and_distribution(self) -> None:
        rng = np.random.default_rng(11)
        draws = [draw_realistic(rng) for _ in range(2000)]
        exposure = np.array([d.exposure for d in draws])
        gains = np.array([d.wb_gains for d in draws])
        electrons = np.array([d.electrons_at_white for d in draws])
        read = np.array([d.read_noise_e for d in draws])
        qualities = [d.jpeg_quality for d in draws if d.jpeg_quality is not None]
        assert exposure.min() >= 1 / 30 and exposure.max() <= 0.5
        # log-uniform: the median is the geometric mean of the bounds, sqrt(1/60)
        assert float(np.median(exposure)) == pytest.approx(math.sqrt(1 / 60), rel=0.08)
        assert gains.min() >= 0.9 and gains.max() <= 1.1
        assert electrons.min() >= 300 and electrons.max() <= 6000
        assert float(np.median(electrons)) == pytest.approx(math.sqrt(300 * 6000), rel=0.1)
        assert read.min() >= 0.5 and read.max() <= 2.5
        assert min(qualities) >= 60 and max(qualities) <= 95
        assert len(qualities) / len(draws) == pytest.approx(0.5, abs=0.05)

    def test_degenerate_ranges(self) -> None:
        p = RealisticParams(
            exposure_range=(0.1, 0.1),
            wb_shift=0.0,
            electrons_range=(1000.0, 1000.0),
            read_noise_range=(2.0, 2.0),
            jpeg_probability=0.0,
        )
        d = draw_realistic(np.random.default_rng(0), p)
        assert d == RealisticDraw(0.1, (1.0, 1.0, 1.0), 1000.0, 2.0, None, True)

    def test_rejects_bad_ranges(self) -> None:
        with pytest.raises(ValueError):
            RealisticParams(exposure_range=(0.5, 0.1))
        with pytest.raises(ValueError):
            RealisticParams(jpeg_quality_range=(60, 101))


class TestApplyRealistic:
    def _draw(self, **kw: object) -> RealisticDraw:
        base: dict[str, object] = {
            "exposure": 0.2,
            "wb_gains": (1.0, 1.0, 1.0),
            "electrons_at_white": 800.0,
            "read_noise_e": 2.0,
            "jpeg_quality": None,
            "quantize_8bit": False,
        }
        base.update(kw)
        return RealisticDraw(**base)  # type: ignore[arg-type]

    def test_poisson_gaussian_variance_in_linear_light(self) -> None:
        draw = self._draw()
        n_e, k, r = draw.electrons_at_white, draw.exposure, draw.read_noise_e
        rng = np.random.default_rng(4)
        variances = []
        for level in (0.3, 0.9):  # sRGB levels of two flat patches
            clean = np.full((160, 160, 3), level, dtype=np.float32)
            low = apply_realistic(clean, draw, rng)
            lin = sRGB_to_linear(low.astype(np.float64))
            signal = k * float(sRGB_to_linear(np.array([level]))[0])
            want = signal / n_e + (r / n_e) ** 2  # Var = s / N_e + sigma_r^2 / N_e^2
            assert float(lin.mean()) == pytest.approx(signal, rel=0.02)
            assert float(lin.var()) == pytest.approx(want, rel=0.06)
            variances.append(float(lin.var()))
        assert variances[1] > 3.0 * variances[0]  # grows with the signal (shot noise)

    def test_darker_than_input(self) -> None:
        clean = _smooth_image(64, 64, 0.2, 1.0)
        low = realistic_darken(clean, np.random.default_rng(9))
        assert low.dtype == np.float32 and low.shape == clean.shape
        assert float(low.mean()) < 0.9 * float(clean.mean())
        assert _on_8bit_grid(low)

    def test_white_balance_gains_shift_channels(self) -> None:
        clean = np.full((64, 64, 3), 0.6, dtype=np.float32)
        draw = self._draw(wb_gains=(1.1, 1.0, 0.9), electrons_at_white=1e7, read_noise_e=0.0)
        lin = sRGB_to_linear(apply_realistic(clean, draw, np.random.default_rng(0)))
        means = lin.reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(means / means[1], [1.1, 1.0, 0.9], rtol=2e-3)

    def test_jpeg_round_trip(self) -> None:
        yy, xx = np.mgrid[0:48, 0:48] / 47.0
        clean = np.stack([0.3 + 0.6 * xx, 0.3 + 0.6 * yy, 0.6 - 0.3 * xx * yy], axis=-1)
        clean = clean.astype(np.float32)
        quiet = {"electrons_at_white": 1e6, "read_noise_e": 0.0}
        plain = apply_realistic(clean, self._draw(**quiet), np.random.default_rng(3))
        jpeg = apply_realistic(
            clean, self._draw(jpeg_quality=60, **quiet), np.random.default_rng(3)
        )
        assert _on_8bit_grid(jpeg)
        diff = np.abs(plain.astype(np.float64) - jpeg.astype(np.float64))
        assert 5e-4 < float(diff.mean()) < 0.01  # compression changes it, but only a little

    def test_rejects_gray(self) -> None:
        with pytest.raises(ValueError):
            apply_realistic(np.zeros((8, 8), np.float32), self._draw(), np.random.default_rng())


class TestRealisticDarken:
    def test_reproducible(self) -> None:
        clean = _smooth_image(32, 32, 0.0, 1.0)
        a = realistic_darken(clean, np.random.default_rng(21))
        b = realistic_darken(clean, np.random.default_rng(21))
        np.testing.assert_array_equal(a, b)

    def test_mean_matches_exposure_range(self) -> None:
        # No noise, no white balance: the output is exactly k * E(x) re-encoded.
        p = RealisticParams(
            exposure_range=(0.25, 0.25),
            wb_shift=0.0,
            electrons_range=(1e8, 1e8),
            read_noise_range=(0.0, 0.0),
            jpeg_probability=0.0,
            quantize_8bit=False,
        )
        clean = _smooth_image(16, 16, 0.0, 1.0)
        low = realistic_darken(clean, np.random.default_rng(0), p)
        want = linear_to_sRGB(0.25 * sRGB_to_linear(clean.astype(np.float64)))
        np.testing.assert_allclose(low, want, atol=2e-3)


class TestRandomPairSampler:
    def test_shapes_and_types(self) -> None:
        clean = _smooth_image(150, 140, 0.0, 1.0)
        for mode in ("gamma", "realistic", "mix"):
            low, high = RandomPairSampler(mode=mode)(clean, np.random.default_rng(0))
            assert low.shape == high.shape == (128, 128, 3)
            assert low.dtype == high.dtype == np.float32

    def test_same_geometry_for_both_and_crop_of_clean(self) -> None:
        clean = _smooth_image(40, 37, 0.05, 0.95, seed=3)
        sampler = RandomPairSampler(
            patch_size=16, noise_sigma_range=(0.0, 0.0), quantize_8bit=False
        )
        rng = np.random.default_rng(5)
        seen = set()
        for _ in range(40):
            low, high = sampler(clean, rng)
            # low is high ** gamma pixel by pixel, for one gamma in (2, 4)
            g = float(np.median(np.log(low) / np.log(high)))
            assert 2.0 < g < 4.0
            np.testing.assert_allclose(low, high.astype(np.float64) ** g, rtol=1e-5, atol=1e-7)
            # high is one of the 8 symmetries of a crop of clean
            found = None
            for k in range(4):
                for flip in (False, True):
                    cand = np.rot90(high[:, ::-1] if flip else high, k=-k, axes=(0, 1))
                    for top in range(40 - 16 + 1):
                        for left in range(37 - 16 + 1):
                            if np.array_equal(cand, clean[top : top + 16, left : left + 16]):
                                found = (k, flip)
            assert found is not None
            seen.add(found)
        assert len(seen) >= 6  # the symmetries are actually drawn

    def test_gamma_reference_tells_the_network_the_gamma(self) -> None:
        clean = _smooth_image(40, 37, 0.05, 0.95, seed=3)
        kw = {"patch_size": 16, "noise_sigma_range": (0.0, 0.0), "quantize_8bit": False}
        told = RandomPairSampler(gamma_reference=3.0, **kw)  # type: ignore[arg-type]
        plain = RandomPairSampler(**kw)  # type: ignore[arg-type]
        for seed in range(10):
            low, high = told(clean, np.random.default_rng(seed))
            # whatever gamma in (2, 4) was drawn, the input is the reference's darkening
            np.testing.assert_allclose(low, high.astype(np.float64) ** 3, rtol=2e-5, atol=1e-6)
            # and only the input changed: same crop, same draws
            low_plain, high_plain = plain(clean, np.random.default_rng(seed))
            assert np.array_equal(high, high_plain) and not np.allclose(low, low_plain)

    def test_gamma_reference_applies_after_noise_and_8bit(self) -> None:
        clean = _smooth_image(40, 40, 0.05, 0.95, seed=4)
        told = RandomPairSampler(patch_size=32, gamma_range=(4.0, 4.0), gamma_reference=3.0)
        plain = RandomPairSampler(patch_size=32, gamma_range=(4.0, 4.0))
        low, _ = told(clean, np.random.default_rng(1))
        low_plain, _ = plain(clean, np.random.default_rng(1))
        # the 8-bit noisy input, as a photo file would hold it, then the normalisation
        assert np.allclose(low_plain * 255, np.round(low_plain * 255), atol=1e-4)
        np.testing.assert_allclose(low, low_plain.astype(np.float64) ** 0.75, rtol=1e-5,
                                   atol=1e-7)

    @pytest.mark.parametrize("bad", [0.0, -3.0, float("nan"), float("inf")])
    def test_gamma_reference_must_be_positive(self, bad: float) -> None:
        with pytest.raises(ValueError, match="gamma_reference"):
            RandomPairSampler(gamma_reference=bad)

    def test_mix_probability(self) -> None:
        clean = _smooth_image(20, 20, 0.05, 0.95)

        def is_gamma(low: np.ndarray, high: np.ndarray) -> bool:
            if low.min() <= 0.0:
                return False
            g = float(np.median(np.log(low) / np.log(high)))
            return bool(np.allclose(low, high.astype(np.float64) ** g, rtol=1e-5, atol=1e-7))

        rng = np.random.default_rng(0)
        kw = {"patch_size": 8, "noise_sigma_range": (0.0, 0.0), "quantize_8bit": False}
        always = RandomPairSampler(mode="mix", mix_probability=0.0, **kw)  # type: ignore[arg-type]
        never = RandomPairSampler(mode="mix", mix_probability=1.0, **kw)  # type: ignore[arg-type]
        half = RandomPairSampler(mode="mix", mix_probability=0.5, **kw)  # type: ignore[arg-type]
        assert all(is_gamma(*always(clean, rng)) for _ in range(20))
        assert not any(is_gamma(*never(clean, rng)) for _ in range(20))
        share = np.mean([is_gamma(*half(clean, rng)) for _ in range(300)])
        assert 0.4 < share < 0.6

    def test_rejects_small_image_and_bad_mode(self) -> None:
        with pytest.raises(ValueError):
            RandomPairSampler()(_smooth_image(100, 200, 0.0, 1.0), np.random.default_rng())
        with pytest.raises(ValueError):
            RandomPairSampler(mode="bogus")  # type: ignore[arg-type]
