"""The numpy image contract: layouts, blending, the auto-strength rule, brightness."""

from __future__ import annotations

import numpy as np
import pytest

from hybridnet.contract import (
    AUTO_HIGH_KEY,
    REFERENCE_GAMMA,
    Blender,
    auto_strength,
    blend,
    brightness_to_network,
    check_brightness,
    check_image,
    exposure_key,
    normalise_gamma,
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


class TestNormaliseGamma:
    def test_turns_one_darkening_into_another(self) -> None:
        x = np.linspace(0.0, 1.0, 101, dtype=np.float64).reshape(1, 101, 1).repeat(3, -1)
        for gamma in (2.0, 2.5, 4.0):
            out = normalise_gamma(x**gamma, gamma, 3.0)
            assert out.dtype == np.float32 and out.shape == x.shape
            np.testing.assert_allclose(out, x**3, rtol=1e-5, atol=1e-6)

    def test_equal_gammas_only_clip(self) -> None:
        x = np.array([[[-0.5, 0.25, 1.5]]], np.float32)
        assert np.array_equal(normalise_gamma(x, 3.0, 3.0), np.array([[[0.0, 0.25, 1.0]]]))

    def test_larger_gamma_lifts(self) -> None:
        x = np.full((2, 2, 3), 0.1, np.float32)
        assert normalise_gamma(x, 4.0).mean() > 0.1 > normalise_gamma(x, 2.0).mean()

    @pytest.mark.parametrize(("gamma", "reference"), [(0.0, 3.0), (3.0, -1.0),
                                                      (float("nan"), 3.0), (3.0, float("inf"))])
    def test_bad_gammas(self, gamma: float, reference: float) -> None:
        with pytest.raises(ValueError, match="positive finite"):
            normalise_gamma(np.zeros((2, 2, 3), np.float32), gamma, reference)


class TestBrightness:
    @pytest.mark.parametrize("value", [-1, -0.5, 0, 0.3, 1.0])
    def test_accepted(self, value: float) -> None:
        assert check_brightness(value) == float(value)

    @pytest.mark.parametrize("value", [1.01, -2, float("nan"), "up", True, None])
    def test_refused_with_the_range(self, value: object) -> None:
        with pytest.raises(InvalidImageError, match="brightness must be"):
            check_brightness(value)

    def test_maps_to_a_gamma_around_the_reference(self) -> None:
        rgb = np.linspace(0.0, 1.0, 30, dtype=np.float32).reshape(1, 10, 3)
        assert brightness_to_network(rgb, 0.0) is rgb  # nothing done at 0
        for b in (-1.0, -0.25, 0.5, 1.0):
            expected = rgb.astype(np.float64) ** (REFERENCE_GAMMA / (REFERENCE_GAMMA + b))
            np.testing.assert_allclose(brightness_to_network(rgb, b), expected, rtol=1e-6,
                                       atol=1e-7)
        assert (brightness_to_network(rgb, 1.0)[0, 1:-1] > rgb[0, 1:-1]).all()
        assert (brightness_to_network(rgb, -1.0)[0, 1:-1] < rgb[0, 1:-1]).all()
