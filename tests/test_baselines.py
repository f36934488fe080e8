"""Classic enhancers: hybridnet.baselines (identity, inverse gamma, HE, LIME, oracle gamma)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybridnet.baselines import (
    best_global_gamma,
    histogram_equalisation,
    identity,
    inverse_gamma,
    lime,
    lime_illumination,
    lime_operator,
    lime_weights,
    solve_illumination,
)
from hybridnet.metrics import psnr, rgb_to_hsv


def _scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured colour scene in about [0.45, 1] with flat patches."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 0.75 + 0.2 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    base[: h // 3, : w // 3] = 0.6  # a flat block (stiff part of the LIME system)
    img = np.stack([0.95 * base, base, 0.85 * base], axis=-1)
    img += rng.normal(0.0, 0.01, img.shape)
    out: np.ndarray = np.clip(img, 0.0, 1.0)
    return out


def _dense_lime_matrix(w_h: np.ndarray, w_v: np.ndarray) -> np.ndarray:
    """A = I + D_h^T diag(w_h) D_h + D_v^T diag(w_v) D_v, built entry by entry."""
    h, w = w_v.shape[0] + 1, w_h.shape[1] + 1
    n = h * w
    d_h = np.zeros((h * (w - 1), n))
    d_v = np.zeros(((h - 1) * w, n))
    for i in range(h):
        for j in range(w - 1):
            e = i * (w - 1) + j
            d_h[e, i * w + j + 1] = 1.0
            d_h[e, i * w + j] = -1.0
    for i in range(h - 1):
        for j in range(w):
            e = i * w + j
            d_v[e, (i + 1) * w + j] = 1.0
            d_v[e, i * w + j] = -1.0
    a: np.ndarray = np.eye(n) + d_h.T @ np.diag(w_h.ravel()) @ d_h
    a += d_v.T @ np.diag(w_v.ravel()) @ d_v
    return a


def _to8(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (np.round(np.clip(x, 0, 1) * 255) / 255).astype(np.float32)
    return out


class TestIdentity:
    def test_returns_input(self) -> None:
        low = _scene(6, 7) * 0.1
        out = identity(low)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, low, atol=1e-7)
        with pytest.raises(ValueError):
            identity(np.zeros((4, 4)))


class TestInverseGamma:
    def test_inverts_power(self) -> None:
        clean = _scene(10, 12)
        np.testing.assert_allclose(inverse_gamma(clean**3), clean, atol=1e-6)
        np.testing.assert_allclose(inverse_gamma(clean**2, gamma=2.0), clean, atol=1e-6)
        with pytest.raises(ValueError):
            inverse_gamma(clean, gamma=0.0)


class TestHistogramEqualisation:
    def test_two_levels_hand_example(self) -> None:
        # Half the pixels at V = 0.1, half at V = 0.2: cdf_min = N/2, so 0.1 -> 0, 0.2 -> 1.
        low = np.zeros((2, 2, 3))
        low[0] = [0.1, 0.05, 0.0]
        low[1] = [0.1, 0.2, 0.1]
        out = histogram_equalisation(low)
        np.testing.assert_allclose(out[0], 0.0, atol=1e-7)
        np.testing.assert_allclose(out[1], [[0.5, 1.0, 0.5]] * 2, atol=1e-6)

    def test_keeps_hue_and_saturation_and_spreads_v(self) -> None:
        low = _to8(_scene(40, 50) ** 3 * 0.5)
        out = histogram_equalisation(low)
        hsv_in = rgb_to_hsv(low.astype(np.float64))
        hsv_out = rgb_to_hsv(out.astype(np.float64))
        chromatic = (hsv_in[..., 1] > 0.05) & (hsv_out[..., 2] > 0.05)
        assert chromatic.mean() > 0.5
        np.testing.assert_allclose(hsv_out[..., 0][chromatic], hsv_in[..., 0][chromatic], atol=1e-4)
        np.testing.assert_allclose(hsv_out[..., 1][chromatic], hsv_in[..., 1][chromatic], atol=1e-4)
        v = hsv_out[..., 2]
        assert v.min() == pytest.approx(0.0, abs=1e-6) and v.max() == pytest.approx(1.0)
        # equalised: the empirical CDF of V is close to the identity
        assert float(np.median(v)) == pytest.approx(0.5, abs=0.05)

    def test_constant_image_unchanged(self) -> None:
        low = np.full((5, 5, 3), 0.2)
        np.testing.assert_allclose(histogram_equalisation(low), low, atol=1e-7)


class TestLimeWeights:
    def test_strategy_two_by_hand(self) -> None:
        t = np.array([[0.1, 0.3, 0.3], [0.2, 0.2, 0.7]])
        w_h, w_v = lime_weights(t, alpha=0.5, strategy=2, eps=1e-3)
        assert w_h.shape == (2, 2) and w_v.shape == (1, 3)
        # w = alpha / (|grad| + eps)^2
        assert w_h[0, 0] == pytest.approx(0.5 / (0.2 + 1e-3) ** 2)
        assert w_h[0, 1] == pytest.approx(0.5 / (1e-3) ** 2)
        assert w_v[0, 2] == pytest.approx(0.5 / (0.4 + 1e-3) ** 2)

    def test_strategy_three_flat_and_edge(self) -> None:
        t = np.full((20, 20), 0.3)
        t[:, 10:] = 0.8  # one vertical edge
        w_h, w_v = lime_weights(t, alpha=0.15, strategy=3, sigma=2.0, eps=1e-3)
        # flat: both gradients are 0 -> alpha / eps^2
        assert w_v[5, 5] == pytest.approx(0.15 / 1e-6)
        # across the edge the weight is tiny, so T may jump there
        assert w_h[5, 9] < 10.0
        assert w_h[5, 9] < 1e-4 * w_h[5, 2]

    def test_strategy_three_naive_window_sum(self) -> None:
        # W_h(x) = sum_y G(x,y) / (|sum_y G(x,y) grad_h T(y)| + eps), 11 x 11 window for
        # sigma = 2, gradients mirrored (symmetric padding) outside the image.
        rng = np.random.default_rng(5)
        t = rng.random((12, 13))
        eps, alpha, sigma, r = 1e-3, 0.15, 2.0, 5
        grad = np.zeros_like(t)
        grad[:, :-1] = np.diff(t, axis=1)
        padded = np.pad(grad, r, mode="symmetric")
        ii, jj = np.mgrid[-r : r + 1, -r : r + 1]
        g = np.exp(-(ii**2 + jj**2) / (2 * sigma**2))
        g /= g.sum()
        w_h, _ = lime_weights(t, alpha=alpha, strategy=3, sigma=sigma, eps=eps)
        for i in range(12):
            for j in range(12):
                smoothed = float((g * padded[i : i + 2 * r + 1, j : j + 2 * r + 1]).sum())
                want = alpha / ((abs(smoothed) + eps) * (abs(grad[i, j]) + eps))
                assert w_h[i, j] == pytest.approx(want, rel=1e-9)

    def test_strategy_one(self) -> None:
        t = np.array([[0.0, 0.5]])
        w_h, _ = lime_weights(t, alpha=1.0, strategy=1, eps=0.1)
        assert w_h[0, 0] == pytest.approx(1.0 / 0.6)


class TestLimeOperator:
    def test_matches_dense_matrix(self) -> None:
        rng = np.random.default_rng(1)
        w_h = rng.random((5, 6)) * 10
        w_v = rng.random((4, 7)) * 10
        t = rng.random((5, 7))
        a = _dense_lime_matrix(w_h, w_v)
        np.testing.assert_allclose(lime_operator(t, w_h, w_v).ravel(), a @ t.ravel(), rtol=1e-12)
        assert np.allclose(a, a.T) and np.linalg.eigvalsh(a).min() >= 1.0 - 1e-9


class TestSolveIllumination:
    @pytest.mark.parametrize("preconditioner", ["multigrid", "jacobi"])
    def test_solves_the_system(self, preconditioner: str) -> None:
        t_hat = _to8(_scene(29, 37).max(axis=2) ** 3)
        w_h, w_v = lime_weights(t_hat)
        t, iterations = solve_illumination(
            t_hat,
            w_h,
            w_v,
            tol=1e-4,
            preconditioner=preconditioner,  # type: ignore[arg-type]
        )
        a = _dense_lime_matrix(w_h, w_v)
        b = t_hat.astype(np.float64).ravel()
        rel = np.linalg.norm(b - a @ t.ravel()) / np.linalg.norm(b)
        assert rel <= 1e-4
        assert iterations > 1
        exact = np.linalg.solve(a, b)
        np.testing.assert_allclose(t.ravel(), exact, atol=2e-4)

    def test_tighter_tolerance_is_more_accurate(self) -> None:
        t_hat = _to8(_scene(29, 37, seed=2).max(axis=2) ** 2)
        w_h, w_v = lime_weights(t_hat)
        exact = np.linalg.solve(_dense_lime_matrix(w_h, w_v), t_hat.astype(np.float64).ravel())
        loose, _ = solve_illumination(t_hat, w_h, w_v, tol=1e-2)
        tight, _ = solve_illumination(t_hat, w_h, w_v, tol=1e-8)
        assert np.abs(tight.ravel() - exact).max() < 1e-6
        assert np.abs(tight.ravel() - exact).max() < np.abs(loose.ravel() - exact).max()

    def test_raises_when_not_converged(self) -> None:
        t_hat = _to8(_scene(20, 20).max(axis=2) ** 3)
        w_h, w_v = lime_weights(t_hat)
        with pytest.raises(RuntimeError):
            solve_illumination(t_hat, w_h, w_v, tol=1e-10, max_iter=2, preconditioner="jacobi")


class TestLimeIllumination:
    def test_initial_map_is_channel_max_and_refined_is_smoother(self) -> None:
        low = _to8(_scene(30, 30) ** 3 * 0.4)
        t_hat, t = lime_illumination(low)
        np.testing.assert_array_equal(t_hat, low.astype(np.float64).max(axis=2))
        tv_hat = np.abs(np.diff(t_hat, axis=1)).sum() + np.abs(np.diff(t_hat, axis=0)).sum()
        tv = np.abs(np.diff(t, axis=1)).sum() + np.abs(np.diff(t, axis=0)).sum()
        assert tv < 0.8 * tv_hat
        assert abs(float(t.mean()) - float(t_hat.mean())) < 0.01  # A has row sums 1


class TestLime:
    def test_brightens_dark_scene(self) -> None:
        clean = _scene(48, 64)
        low = _to8(0.3 * clean**4)
        out = lime(low)
        assert out.shape == low.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert float(out.mean()) > 3.0 * float(low.mean())
        assert psnr(out, clean) > psnr(low, clean) + 5.0

    def test_bright_scene_nearly_unchanged(self) -> None:
        rng = np.random.default_rng(3)
        yy, xx = np.mgrid[0:48, 0:64]
        base = 0.93 + 0.06 * np.sin(xx / 6.0) * np.cos(yy / 5.0)
        bright = np.clip(
            np.stack([base, 0.98 * base, 0.96 * base], -1) + rng.normal(0, 0.005, (48, 64, 3)),
            0,
            1,
        )
        out = lime(bright).astype(np.float64)
        # T ~ 0.9-1, so R = L / T^0.8 ~ L^0.2 changes bright pixels by a few percent only
        # (compare the > 3x gain on the dark scene above).
        assert float(out.mean()) >= float(bright.mean())
        assert float(out.mean()) < 1.07 * float(bright.mean())
        assert float(np.abs(out - bright).max()) < 0.08
        assert psnr(out, bright) > 24.0

    def test_same_result_with_both_preconditioners(self) -> None:
        low = _to8(0.3 * _scene(33, 41) ** 4)
        a = lime(low, preconditioner="multigrid")
        b = lime(low, preconditioner="jacobi")
        np.testing.assert_allclose(a, b, atol=2e-3)


class TestBestGlobalGamma:
    def test_recovers_gamma_three(self) -> None:
        clean = _scene(40, 40)
        low = clean**3.0
        out, g = best_global_gamma(low, clean)
        assert g == pytest.approx(3.0, abs=1e-4)
        np.testing.assert_allclose(out, clean, atol=1e-4)

    def test_upper_bound_of_power_curves(self) -> None:
        clean = _scene(40, 40, seed=4)
        rng = np.random.default_rng(4)
        low = _to8(clean**2.6 + rng.normal(0, 0.02, clean.shape))
        out, g = best_global_gamma(low, clean)
        np.testing.assert_allclose(out, low.astype(np.float64) ** (1 / g), atol=1e-6)
        best = psnr(out, clean)
        for other in np.linspace(1.5, 5.0, 36):
            assert best >= psnr(inverse_gamma(low, float(other)), clean) - 1e-9
        assert best >= psnr(inverse_gamma(low, g * 1.01), clean)
        assert best >= psnr(inverse_gamma(low, g / 1.01), clean)
        assert math.isfinite(g) and 1.5 < g < 5.0

    def test_shape_mismatch(self) -> None:
        with pytest.raises(ValueError):
            best_global_gamma(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
