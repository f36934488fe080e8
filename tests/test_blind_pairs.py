"""Training pairs of the blind model (hybridnet.blind_pairs)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from hybridnet.blind_pairs import (
    BLIND_CAMERA,
    BlindDarkenings,
    BlindPairSampler,
    Darkening,
    ImageStats,
    reexpose,
)
from hybridnet.degrade import draw_realistic
from hybridnet.exposure import CurveParams, apply_curve


def _clean(seed: int = 0, size: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.5 + 0.4 * np.sin(6 * xx), 0.4 + 0.3 * yy, 0.3 + 0.3 * xx * yy], -1)
    return np.clip(img + rng.normal(0, 0.01, img.shape), 0.02, 0.9)


def _undo(low: np.ndarray, curve: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    a, black, ev = (float(v) for v in curve)
    t = torch.from_numpy(np.ascontiguousarray(low, dtype=np.float64)).permute(2, 0, 1)[None]
    params = CurveParams(torch.tensor([a]), torch.tensor([black]), torch.tensor([ev]))
    return apply_curve(t, params)[0].permute(1, 2, 0).numpy()


class TestOracleCurve:
    """The darkening's own curve brings the photo back (noise and white balance aside)."""

    @pytest.mark.parametrize("gamma", [1.5, 3.0, 5.0])
    def test_gamma(self, gamma: float) -> None:
        clean = _clean()
        d = Darkening(gamma=gamma, noise_sigma=0.0)
        low = d.apply(clean, np.random.default_rng(0))
        back = _undo(low, d.oracle_curve(0.2))
        # 8-bit rounding of the dark input costs more at higher gammas
        assert np.abs(back - clean).mean() < 0.004 * gamma

    @pytest.mark.parametrize("stops", [1.0, 3.0, 5.0])
    def test_camera(self, stops: float) -> None:
        clean = _clean()
        rng = np.random.default_rng(1)
        draw = replace(draw_realistic(rng, BLIND_CAMERA), exposure=2.0**-stops,
                       wb_gains=(1.0, 1.0, 1.0), electrons_at_white=1e7, read_noise_e=0.0,
                       jpeg_quality=None, headroom=1.0, flare=0.0)
        d = Darkening(camera=draw)
        low = d.apply(clean, rng, mean_luminance=0.2)
        a, black, ev = d.oracle_curve(0.2)
        assert (a, black) == (1.0, 0.0) and ev == pytest.approx(stops)
        back = _undo(low, (a, black, ev))
        # 8-bit rounding of the dark input costs more at more stops
        assert np.abs(back - clean).mean() < 0.004 * 2**stops


class TestBlindDarkenings:
    def test_both_families_in_proportion(self) -> None:
        rng = np.random.default_rng(0)
        draws = [BlindDarkenings(camera_probability=0.6).draw(rng) for _ in range(2000)]
        share = np.mean([d.camera is not None for d in draws])
        assert share == pytest.approx(0.6, abs=0.04)
        gammas = [d.gamma for d in draws if d.camera is None]
        assert 1.5 <= min(gammas) and max(gammas) <= 5.0

    @pytest.mark.parametrize("kw", [{"camera_probability": 1.5}, {"gamma_range": (0.0, 2.0)},
                                    {"noise_sigma_range": (0.1, 0.05)}])
    def test_bad_ranges(self, kw: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            BlindDarkenings(**kw)  # type: ignore[arg-type]


class TestReexpose:
    def test_zero_is_identity_and_one_stop_doubles_linear_light(self) -> None:
        clean = _clean() * 0.5
        assert np.array_equal(reexpose(clean, 0.0), clean.astype(np.float32))
        lin = lambda v: np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)  # noqa: E731
        up = reexpose(clean, 1.0)
        assert np.allclose(lin(up.astype(np.float64)), np.minimum(2 * lin(clean), 1), atol=1e-5)


class TestBlindPairSampler:
    def test_shapes_dtypes_and_determinism(self) -> None:
        clean = (_clean(3, 200) * 255).astype(np.uint8)
        stats = ImageStats.of(clean / 255.0)
        sampler = BlindPairSampler(patch_size=64)
        a = sampler(clean, np.random.default_rng(5), stats)
        b = sampler(clean, np.random.default_rng(5), stats)
        for x, y in zip(a, b, strict=True):
            assert np.array_equal(x, y)
        low, high, curve = a
        assert low.shape == high.shape == (64, 64, 3) and curve.shape == (3,)
        assert low.dtype == high.dtype == curve.dtype == np.float32

    def test_input_after_its_curve_is_near_the_target(self) -> None:
        clean = _clean(4, 200)
        stats = ImageStats.of(clean)
        sampler = BlindPairSampler(patch_size=96, darkenings=BlindDarkenings(
            camera_probability=0.0, noise_sigma_range=(0.0, 0.0)))
        errs = []
        for i in range(10):
            low, high, curve = sampler(clean, np.random.default_rng(i), stats)
            errs.append(np.abs(_undo(low, curve) - high).mean())
        assert max(errs) < 0.03 and float(np.median(errs)) < 0.01  # 8 bits at gamma 5

    def test_ev_jitter_moves_curve_and_target_together(self) -> None:
        clean = _clean(5, 200) * 0.6
        stats = ImageStats.of(clean)
        plain = BlindPairSampler(patch_size=64)
        jittered = BlindPairSampler(patch_size=64, ev_jitter=1.0)
        low0, high0, c0 = plain(clean, np.random.default_rng(9), stats)
        low1, high1, c1 = jittered(clean, np.random.default_rng(9), stats)
        assert np.array_equal(low0, low1)  # same darkening
        delta = float(c1[2] - c0[2])
        assert 0 < abs(delta) <= 1.0
        assert (high1.mean() > high0.mean()) == (delta > 0)

    def test_refuses_small_images_and_bad_jitter(self) -> None:
        with pytest.raises(ValueError, match="smaller than"):
            BlindPairSampler(patch_size=64)(np.zeros((32, 80, 3)), np.random.default_rng(0),
                                            ImageStats(0.1, 0.0))
        with pytest.raises(ValueError, match="ev_jitter"):
            BlindPairSampler(ev_jitter=-1)
