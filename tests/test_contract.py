"""The numpy image contract: layouts, blending and the auto-strength rule."""

from __future__ import annotations

import numpy as np
import pytest

from hybridnet.contract import (
    AUTO_HIGH_KEY,
    Blender,
    auto_strength,
    blend,
    check_image,
    exposure_key,
)
from hybridnet.errors import InvalidImageError


def _random(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype is np.float32:
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)


class TestCheckImage:
    @pytest.mark.parametrize(
        ("shape", "name"),
        [
            ((4, 5), "gray"),
            ((4, 5, 1), "gray"),
            ((4, 5, 2), "gray+alpha"),
            ((4, 5, 3), "rgb"),
            ((4, 5, 4), "rgba"),
        ],
    )
    def test_layouts(self, shape: tuple[int, ...], name: str) -> None:
        layout = check_image(np.zeros(shape, np.uint8))
        assert layout.name == name
        assert layout.squeeze == (len(shape) == 2)

    @pytest.mark.parametrize(
        ("array", "message"),
        [
            ([[1, 2]], "numpy array"),
            (np.zeros((2, 2, 2, 2), np.uint8), "4 dimensions"),
            (np.zeros(5, np.uint8), "1 dimensions"),
            (np.zeros((3, 20, 20), np.uint8), "channels first"),
            (np.zeros((4, 4, 5), np.uint8), "5 channels"),
            (np.zeros((4, 4, 3), np.float64), "dtype float64"),
            (np.zeros((4, 4, 3), np.int32), "dtype int32"),
            (np.zeros((0, 4, 3), np.uint8), "empty"),
            (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        ],
    )
    def test_bad_input(self, array: object, message: str) -> None:
        with pytest.raises(InvalidImageError, match=message):
            check_image(array)


class TestBlend:
    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
    @pytest.mark.parametrize("shape", [(6, 7), (6, 7, 2), (6, 7, 3), (6, 7, 4)])
    def test_ends_are_exact(self, dtype: type, shape: tuple[int, ...]) -> None:
        a, b = _random(shape, dtype, 1), _random(shape, dtype, 2)
        assert np.array_equal(blend(a, b, 0.0), a)
        out = blend(a, b, 1.0)
        assert np.array_equal(out, b)
        assert out is not b

    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
    def test_midpoint_and_alpha(self, dtype: type) -> None:
        a, b = _random((5, 6, 4), dtype, 3), _random((5, 6, 4), dtype, 4)
        out = blend(a, b, 0.25)
        assert out.dtype == a.dtype and out.shape == a.shape
        assert np.array_equal(out[..., 3], a[..., 3])  # alpha from the original
        expected = a[..., :3].astype(np.float64) * 0.75 + b[..., :3].astype(np.float64) * 0.25
        tol = 1e-6 if dtype is np.float32 else 0.5 + 1e-9
        assert np.abs(out[..., :3].astype(np.float64) - expected).max() <= tol

    def test_refuses_mismatch_and_bad_strength(self) -> None:
        a = _random((4, 4, 3), np.uint8)
        with pytest.raises(InvalidImageError, match="shape and dtype"):
            blend(a, a.astype(np.uint16), 0.5)
        for bad in (-0.1, 1.5, float("nan"), "half", True):
            with pytest.raises(InvalidImageError, match="strength"):
                blend(a, a, bad)  # type: ignore[arg-type]

    def test_blender_reuses_its_cache(self) -> None:
        a = _random((100, 120, 3), np.uint16, 5)
        b = _random((100, 120, 3), np.uint16, 6)
        blender = Blender(a, b)
        for s in np.linspace(0.05, 0.95, 5):
            assert np.array_equal(blender(float(s)), blend(a, b, float(s)))
        assert np.array_equal(blender(0.0), a) and np.array_equal(blender(1.0), b)


class TestAutoStrength:
    @staticmethod
    def _scene(scale: float) -> np.ndarray:
        yy, xx = np.mgrid[0:240, 0:320] / 240.0
        base = np.stack(
            [0.6 + 0.3 * np.sin(xx * 5), 0.5 + 0.3 * np.cos(yy * 4), 0.45 + 0.2 * xx], axis=-1
        )
        return (np.clip(base * scale, 0, 1) * 255).astype(np.uint8)

    def test_bright_photo_is_barely_touched(self) -> None:
        assert auto_strength(self._scene(1.0)) <= 0.05

    def test_dark_photo_gets_full_strength(self) -> None:
        dark = (self._scene(1.0).astype(np.float32) / 255) ** 3  # gamma 3 darkening
        assert auto_strength((dark * 255).astype(np.uint8)) >= 0.95

    def test_mixed_scene_in_between(self) -> None:
        img = self._scene(1.0).copy()
        img[:, : img.shape[1] // 2] //= 4  # half the frame two stops under, half well lit
        s = auto_strength(img)
        assert 0.2 < s < 0.9

    def test_monotonic_in_exposure(self) -> None:
        values = [auto_strength(self._scene(k)) for k in (0.1, 0.2, 0.4, 0.6, 0.8, 1.0)]
        assert values == sorted(values, reverse=True)

    def test_same_for_every_dtype_and_gray(self) -> None:
        img8 = self._scene(0.3)
        img16 = img8.astype(np.uint16) * 257
        imgf = img8.astype(np.float32) / 255
        s = auto_strength(img8)
        assert auto_strength(img16) == pytest.approx(s, abs=1e-6)
        assert auto_strength(imgf) == pytest.approx(s, abs=1e-6)
        gray = (img8.astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722])).astype(np.uint8)
        assert auto_strength(gray) == pytest.approx(s, abs=0.02)

    def test_key_of_mid_grey(self) -> None:
        grey = np.full((8, 8, 3), 118, np.uint8)  # 18 % reflectance in sRGB
        assert exposure_key(grey) == pytest.approx(118 / 255 + 1 / 255, abs=1e-3)
        assert exposure_key(grey) > AUTO_HIGH_KEY
