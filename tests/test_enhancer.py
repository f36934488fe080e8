"""Enhancer: every layout and dtype, tiling, progress, cancel, strength, weights."""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from hybridnet import HybridNet, HybridNetConfig, WeightsError, save_model
from hybridnet.contract import blend
from hybridnet.enhancer import (
    EnhanceCancelled,
    Enhancer,
    axis_weights,
    plan_for_tile_size,
    plan_tiles,
)
from hybridnet.errors import InvalidImageError
from hybridnet.exposure import CurveParams, apply_curve


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    torch.manual_seed(0)
    return Enhancer(model=HybridNet(HybridNetConfig.tiny()), device="cpu")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def _photo(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.2 + 0.1 * np.sin(xx * 9), 0.15 + 0.1 * np.cos(yy * 7), 0.1 + 0.1 * xx], -1)
    img += rng.normal(0, 0.01, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def _as(img: np.ndarray, dtype: type) -> np.ndarray:
    if dtype is np.float32:
        return img.astype(np.float32)
    return np.round(img * np.iinfo(dtype).max).astype(dtype)


class TestLayouts:
    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
    @pytest.mark.parametrize("channels", [None, 1, 2, 3, 4])
    def test_same_shape_and_dtype_alpha_exact(
        self, enhancer: Enhancer, dtype: type, channels: int | None
    ) -> None:
        rgb = _photo(40, 52)
        rng = np.random.default_rng(1)
        if channels is None:
            img = rgb[..., 1]
        elif channels in (1, 2):
            img = np.concatenate([rgb[..., 1:2], rng.random((40, 52, 1))], -1)[..., :channels]
        else:
            img = np.concatenate([rgb, rng.random((40, 52, 1))], -1)[..., :channels]
        img = _as(img, dtype)
        out = enhancer.enhance(img)
        assert out.shape == img.shape and out.dtype == img.dtype
        if channels in (2, 4):
            assert np.array_equal(out[..., -1], img[..., -1])
        assert not np.array_equal(out, img)

    def test_gray_is_enhanced_as_rgb(self, enhancer: Enhancer) -> None:
        gray = _as(_photo(32, 40)[..., 0], np.uint8)
        rgb = np.repeat(gray[..., None], 3, axis=2)
        out_gray = enhancer.enhance(gray).astype(np.float64)
        out_rgb = enhancer.enhance(rgb).astype(np.float64)
        luma = out_rgb @ np.array([0.2126, 0.7152, 0.0722])
        assert np.abs(out_gray - luma).max() <= 1.0

    def test_16_bit_keeps_precision(self, enhancer: Enhancer) -> None:
        ramp = np.linspace(0.05, 0.35, 256 * 64, dtype=np.float64).reshape(64, 256)
        img16 = np.round(np.repeat(ramp[..., None], 3, axis=2) * 65535).astype(np.uint16)
        out = enhancer.enhance(img16)
        assert len(np.unique(out)) > 1024
        out8 = enhancer.enhance((img16 // 257).astype(np.uint8))
        assert len(np.unique(out8)) <= 256

    def test_float_out_of_range_is_clipped_for_the_network(self, enhancer: Enhancer) -> None:
        img = _photo(24, 24)
        over = img.copy()
        over[0, 0] = 1.7
        a = enhancer.enhance(np.clip(over, 0, 1))
        b = enhancer.enhance(over)
        assert np.array_equal(a, b)

    @pytest.mark.parametrize("shape", [(1, 1, 3), (1, 9), (7, 1, 4), (1, 1)])
    def test_one_pixel_rows_and_columns(self, enhancer: Enhancer,
                                        shape: tuple[int, ...]) -> None:
        img = _as(np.random.default_rng(2).random(shape) * 0.3, np.uint8)
        out = enhancer.enhance(img)
        assert out.shape == img.shape and out.dtype == img.dtype
        if len(shape) == 3 and shape[2] == 3:  # the edge-padded pixel is enhanced as a 2×2
            ref = enhancer.enhance(np.repeat(np.repeat(img, 2, 0), 2, 1))
            assert np.array_equal(out[0, 0], ref[0, 0])

    def test_matches_the_bare_network(self, enhancer: Enhancer) -> None:
        img = _photo(40, 48)
        out = enhancer.enhance(img)
        with torch.no_grad():
            ref = enhancer.model(torch.from_numpy(img).permute(2, 0, 1)[None]).clamp(0, 1)
        assert np.abs(out - ref[0].permute(1, 2, 0).numpy()).max() < 1e-6


class TestStrength:
    def test_zero_is_bit_exact_without_running(self, enhancer: Enhancer) -> None:
        img = _as(_photo(), np.uint16)

        class Exploding(HybridNet):
            def forward(self, image: torch.Tensor, curve: object = None) -> torch.Tensor:
                raise AssertionError("the network must not run at strength 0")

        quiet = Enhancer(model=Exploding(HybridNetConfig.tiny()))
        out = quiet.enhance(img, strength=0)
        assert np.array_equal(out, img) and out is not img

    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
    def test_partial_equals_blend(self, enhancer: Enhancer, dtype: type) -> None:
        img = _as(_photo(), dtype)
        full = enhancer.enhance(img, strength=1.0)
        half = enhancer.enhance(img, strength=0.4)
        expected = blend(img, full, 0.4)
        tol = 1e-6 if dtype is np.float32 else 1
        assert np.abs(half.astype(np.float64) - expected.astype(np.float64)).max() <= tol

    def test_auto(self, enhancer: Enhancer) -> None:
        bright = _as(np.clip(_photo() * 4, 0, 1), np.uint8)
        assert np.array_equal(enhancer.enhance(bright, strength="auto"), bright)
        dark = _as(_photo() ** 2, np.uint8)
        assert np.array_equal(enhancer.enhance(dark, strength="auto"), enhancer.enhance(dark))

    @pytest.mark.parametrize("bad", [1.2, -1, "max", None])
    def test_bad_strength(self, enhancer: Enhancer, bad: object) -> None:
        with pytest.raises(InvalidImageError, match="strength"):
            enhancer.enhance(_photo(), strength=bad)  # type: ignore[arg-type]


class _Identity(HybridNet):
    """The network replaced by the identity: what the enhancer feeds it comes back."""

    def forward(self, image: torch.Tensor, curve: CurveParams | None = None) -> torch.Tensor:
        return image.clone()


class _CurveOnly(HybridNet):
    """The network with the exposure curve and nothing after it (the real curve code)."""

    def forward(self, image: torch.Tensor, curve: CurveParams | None = None) -> torch.Tensor:
        assert curve is not None, "the enhancer passes the whole photo's curve"
        return apply_curve(image, curve)


#: A tiny config of the older kind: no exposure estimator, brightness is the gamma.
LEGACY_TINY = replace(HybridNetConfig.tiny(), exposure=False, residual=False)


class TestBrightness:
    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
    @pytest.mark.parametrize("b", [-1.0, 0.4, 1.0])
    def test_network_sees_the_photo_as_if_darkened_by_3_plus_b(
        self, dtype: type, b: float
    ) -> None:
        img = _as(_photo(150, 210), dtype)
        identity = Enhancer(model=_Identity(LEGACY_TINY))
        out = identity.enhance(img, brightness=b, tile_size=136)  # tiles: still per pixel
        expected = _as(img.astype(np.float64) / (1 if dtype is np.float32 else
                                                 np.iinfo(dtype).max), np.float32) ** (3 / (3 + b))
        got = out.astype(np.float64) / (1 if dtype is np.float32 else np.iinfo(dtype).max)
        step = 1e-6 if dtype is np.float32 else 0.51 / np.iinfo(dtype).max
        assert np.abs(got - expected).max() <= step + 1e-6
        assert (got.mean() > img.mean() / (1 if dtype is np.float32 else np.iinfo(dtype).max)) \
            == (b > 0)

    def test_zero_is_the_default(self, enhancer: Enhancer) -> None:
        img = _as(_photo(), np.uint8)
        assert np.array_equal(enhancer.enhance(img, brightness=0), enhancer.enhance(img))

    def test_strength_blends_with_the_original_not_the_lifted_input(self) -> None:
        img = _as(_photo(), np.uint16)
        identity = Enhancer(model=_Identity(LEGACY_TINY))
        full = identity.enhance(img, brightness=1.0)
        half = identity.enhance(img, strength=0.5, brightness=1.0)
        assert np.abs(half.astype(np.int64) - blend(img, full, 0.5).astype(np.int64)).max() <= 1

    @pytest.mark.parametrize("bad", [1.5, -1.01, float("nan"), "bright", None])
    def test_bad_brightness(self, enhancer: Enhancer, bad: object) -> None:
        with pytest.raises(InvalidImageError, match="brightness"):
            enhancer.enhance(_photo(), brightness=bad)  # type: ignore[arg-type]


class TestExposure:
    """Models with the exposure estimator: one curve per photo, ``ev`` shifts it."""

    @pytest.fixture(scope="class")
    def curve_only(self) -> Enhancer:
        torch.manual_seed(0)
        return Enhancer(model=_CurveOnly(HybridNetConfig.tiny()))

    def test_ev_moves_brightness_monotonically(self, curve_only: Enhancer) -> None:
        img = _as(_photo(64, 80) * 0.4, np.uint16)
        means = [curve_only.enhance(img, ev=e).astype(np.float64).mean()
                 for e in (-3, -2, -1, -0.5, 0, 0.5, 1, 2, 3)]
        assert all(a < b for a, b in itertools.pairwise(means)), means

    def test_brightness_is_two_stops_per_unit(self, curve_only: Enhancer) -> None:
        img = _as(_photo(64, 80) * 0.3, np.uint8)
        assert np.array_equal(curve_only.enhance(img, brightness=0.5),
                              curve_only.enhance(img, ev=1.0))
        assert np.array_equal(curve_only.enhance(img, brightness=-0.25, ev=1.0),
                              curve_only.enhance(img, ev=0.5))

    def test_one_curve_for_every_tile(self, curve_only: Enhancer) -> None:
        """A tile is lifted as its photo is, not as if it were a photo of its own."""
        img = _as(_photo(300, 420) * 0.3, np.uint16)
        img[:150] //= 8  # a much darker top half
        whole = curve_only.enhance(img, tile_size=10**6)
        tiled = curve_only.enhance(img, tile_size=136)
        assert np.abs(whole.astype(np.int64) - tiled.astype(np.int64)).max() <= 1

    def test_estimate_is_on_a_thumbnail_so_size_hardly_matters(self,
                                                               curve_only: Enhancer) -> None:
        img = _photo(240, 320) * 0.2
        small = curve_only.estimate_curve(_as(img[::4, ::4], np.float32))
        large = curve_only.estimate_curve(_as(img, np.float32))
        assert abs(float(small.ev[0]) - float(large.ev[0])) < 0.1

    @pytest.mark.parametrize("bad", [3.5, -4, float("nan"), "bright", None, True])
    def test_bad_ev(self, curve_only: Enhancer, bad: object) -> None:
        with pytest.raises(InvalidImageError, match="ev must"):
            curve_only.enhance(_photo(), ev=bad)  # type: ignore[arg-type]

    def test_ev_needs_the_estimator(self) -> None:
        legacy = Enhancer(model=_Identity(LEGACY_TINY))
        with pytest.raises(InvalidImageError, match="no exposure estimator"):
            legacy.enhance(_photo(), ev=1.0)


class TestTiling:
    def test_too_small_tiles_refused_in_the_constructor_and_per_call(
        self, enhancer: Enhancer
    ) -> None:
        with pytest.raises(ValueError, match="tile_size must be at least 136"):
            Enhancer(model=HybridNet(HybridNetConfig.tiny()), tile_size=100)
        with pytest.raises(ValueError, match="tile_size must be at least 136"):
            enhancer.enhance(_photo(), tile_size=64)

    @pytest.mark.parametrize("size", [(300, 500), (1000, 90), (257, 2049), (64, 64)])
    @pytest.mark.parametrize("budget", [40_000, 90_000, 10**9])
    def test_plan_covers_and_weights_sum_to_one(self, size: tuple[int, int], budget: int) -> None:
        h, w = size
        plan = plan_tiles(h, w, budget, overlap=32)
        assert plan.ys[0] == 0 and plan.xs[0] == 0
        assert plan.ys[-1] + plan.tile_h == h and plan.xs[-1] + plan.tile_w == w
        assert all(b - a < plan.tile_h for a, b in zip(plan.ys, plan.ys[1:], strict=False))
        for origins, length, total in ((plan.xs, plan.tile_w, w), (plan.ys, plan.tile_h, h)):
            acc = np.zeros(total)
            for start, weight in zip(origins, axis_weights(origins, length, total), strict=True):
                acc[start : start + length] += weight
            assert np.allclose(acc, 1.0, atol=1e-6)

    def test_budget_respected(self) -> None:
        plan = plan_tiles(3000, 4000, 3_000_000)
        assert plan.tile_h * plan.tile_w <= 3_000_000 and plan.count > 1
        area = plan.count * plan.tile_h * plan.tile_w
        assert area < 1.15 * 3000 * 4000

    def test_fixed_tile_size(self) -> None:
        plan = plan_for_tile_size(500, 700, 256, 64)
        assert plan.tile_h <= 256 and plan.tile_w <= 256

    def test_tiled_equals_untiled(self, enhancer: Enhancer) -> None:
        img = _as(_photo(300, 420), np.uint16)
        whole = enhancer.enhance(img).astype(np.float64) / 65535
        tiled = enhancer.enhance(img, tile_size=160).astype(np.float64) / 65535
        assert psnr(whole, tiled) >= 40.0

    def test_progress_per_tile(self, enhancer: Enhancer) -> None:
        calls: list[tuple[int, int]] = []
        enhancer.enhance(
            _photo(300, 300), tile_size=160, progress=lambda d, t: calls.append((d, t))
        )
        total = calls[-1][1]
        assert total > 1 and calls == [(i, total) for i in range(1, total + 1)]

    def test_cancel_between_tiles(self, enhancer: Enhancer) -> None:
        stop = threading.Event()
        seen: list[int] = []

        def progress(done: int, total: int) -> None:
            seen.append(done)
            if done == 2:
                stop.set()

        with pytest.raises(EnhanceCancelled):
            enhancer.enhance(_photo(300, 300), tile_size=160, progress=progress, cancel=stop)
        assert seen == [1, 2]

    def test_cancel_callable(self, enhancer: Enhancer) -> None:
        with pytest.raises(EnhanceCancelled):
            enhancer.enhance(_photo(), cancel=lambda: True)


class TestWeights:
    def test_missing_bundled_weights_say_what_to_do(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setattr("hybridnet.enhancer.BUNDLED_WEIGHTS", tmp_path / "none.safetensors")
        with pytest.raises(WeightsError, match="--weights PATH"):
            Enhancer()

    def test_from_file(self, tmp_path: Path) -> None:
        torch.manual_seed(3)
        model = HybridNet(HybridNetConfig.tiny())
        path = save_model(model, tmp_path / "w.safetensors")
        e = Enhancer(path)
        assert e.weights_path == path and e.config == HybridNetConfig.tiny()
        img = _photo(20, 30)
        assert np.array_equal(e.enhance(img), Enhancer(model=model.eval()).enhance(img))

    def test_cuda_without_gpu(self) -> None:
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            Enhancer(model=HybridNet(HybridNetConfig.tiny()), device="cuda")


class TestGpuOutOfMemory:
    """CUDA out of memory: smaller tiles first, then the CPU (no GPU here: the device is
    marked as CUDA and the tile runner raises what torch raises on a GPU)."""

    @staticmethod
    def _on_fake_gpu(monkeypatch: pytest.MonkeyPatch, limit: int | None) -> tuple[
            Enhancer, list[tuple[str, int]]]:
        torch.manual_seed(0)
        enh = Enhancer(model=HybridNet(HybridNetConfig.tiny()), device="cpu")
        real, real_estimate = enh.enhance_rgb, enh.estimate_curve
        calls: list[tuple[str, int]] = []

        def run(rgb: np.ndarray, curve: CurveParams | None = None) -> np.ndarray:
            pixels = rgb.shape[0] * rgb.shape[1]
            calls.append((enh.device.type, pixels))
            if enh.device.type != "cuda":
                return real(rgb, curve)
            if limit is None or pixels > limit:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
            enh.device = torch.device("cpu")  # the "GPU" computes on the CPU
            try:
                return real(rgb, curve)
            finally:
                enh.device = torch.device("cuda")

        def estimate(image: np.ndarray) -> CurveParams:
            device, enh.device = enh.device, torch.device("cpu")  # a thumbnail: fits
            try:
                return real_estimate(image)
            finally:
                enh.device = device

        monkeypatch.setattr(enh, "enhance_rgb", run)
        monkeypatch.setattr(enh, "estimate_curve", estimate)
        monkeypatch.setattr(enh, "_max_tile_pixels", lambda: 4_000_000)  # no CUDA to ask
        enh.device = torch.device("cuda")
        return enh, calls

    def test_retries_with_smaller_tiles(self, monkeypatch: pytest.MonkeyPatch) -> None:
        enh, calls = self._on_fake_gpu(monkeypatch, limit=100_000)
        img = _as(_photo(600, 700), np.uint16)
        out = enh.enhance(img, tile_size=512)  # 336×384 tiles: too big for this "GPU"
        assert out.shape == img.shape and out.dtype == img.dtype
        assert enh.device.type == "cuda"  # stayed on the GPU
        assert [n for n in enh.notices if "retrying with smaller tiles" in n] == [
            "GPU out of memory with 384×336 tiles; retrying with smaller tiles"]
        assert calls[0][1] > 100_000 and all(px <= 100_000 for _, px in calls[1:])
        assert all(device == "cuda" for device, _ in calls)
        whole = Enhancer(model=enh.model, device="cpu").enhance(img)
        assert psnr(whole / 65535, out / 65535) >= 40.0  # as seamless as any tiling

    def test_falls_back_to_the_cpu(self, monkeypatch: pytest.MonkeyPatch) -> None:
        enh, calls = self._on_fake_gpu(monkeypatch, limit=None)
        img = _as(_photo(300, 320), np.uint8)
        out = enh.enhance(img)
        assert enh.device.type == "cpu" and calls[-1][0] == "cpu"
        assert any("running on the CPU" in n for n in enh.notices)
        cpu = Enhancer(model=enh.model, device="cpu")
        assert np.array_equal(out, cpu.enhance(img))
