"""Eq. (3): every scan implementation against the plain reference loop."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from hybridnet.errors import InvalidInputError
from hybridnet.spatially_variant_rnn import (
    DIRECTIONS,
    available_backends,
    spatial_rnn,
    spatial_rnn_max4,
    spatial_rnn_reference,
)


def _inputs(
    n: int, c: int, h: int, w: int, shared: bool, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    wc = 1 if shared else c
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    g = torch.randn(n, wc, h, w, generator=gen, dtype=dtype)
    p = torch.rand(n, wc, h, w, generator=gen, dtype=dtype) * 1.8 - 0.9  # |p| < 1
    return x, g, p


class TestReferenceIsEquation3:
    """The reference is checked by hand on a single sequence in each direction."""

    def test_left_to_right_by_hand(self) -> None:
        x = torch.tensor([[[[1.0, 2.0, 3.0]]]], dtype=torch.float64)
        g = torch.tensor([[[[0.5, 1.0, 2.0]]]], dtype=torch.float64)
        p = torch.tensor([[[[0.9, 0.5, 0.25]]]], dtype=torch.float64)
        h = spatial_rnn_reference(x, g, p, "left_to_right")
        h0 = 0.5 * 1.0  # h[-1] = 0
        h1 = 1.0 * 2.0 + 0.5 * h0
        h2 = 2.0 * 3.0 + 0.25 * h1
        assert torch.allclose(h, torch.tensor([[[[h0, h1, h2]]]], dtype=torch.float64))

    def test_right_to_left_by_hand(self) -> None:
        x = torch.tensor([[[[1.0, 2.0, 3.0]]]], dtype=torch.float64)
        g = torch.ones_like(x)
        p = torch.full_like(x, 0.5)
        h = spatial_rnn_reference(x, g, p, "right_to_left")
        h2 = 3.0
        h1 = 2.0 + 0.5 * h2
        h0 = 1.0 + 0.5 * h1
        assert torch.allclose(h, torch.tensor([[[[h0, h1, h2]]]], dtype=torch.float64))

    @pytest.mark.parametrize(
        ("direction", "transpose"),
        [("top_to_bottom", "left_to_right"), ("bottom_to_top", "right_to_left")],
    )
    def test_vertical_is_transposed_horizontal(self, direction: str, transpose: str) -> None:
        x, g, p = _inputs(1, 2, 5, 4, shared=False)
        vertical = spatial_rnn_reference(x, g, p, direction)  # type: ignore[arg-type]
        t = lambda a: a.transpose(2, 3)  # noqa: E731
        horizontal = spatial_rnn_reference(t(x), t(g), t(p), transpose)  # type: ignore[arg-type]
        assert torch.equal(vertical, t(horizontal))

    def test_rows_are_independent(self) -> None:
        x, g, p = _inputs(1, 1, 3, 6, shared=False)
        h = spatial_rnn_reference(x, g, p, "left_to_right")
        x2 = x.clone()
        x2[..., 0, :] += 10.0  # change row 0 only
        h2 = spatial_rnn_reference(x2, g, p, "left_to_right")
        assert torch.equal(h[..., 1:, :], h2[..., 1:, :])
        assert not torch.equal(h[..., 0, :], h2[..., 0, :])


class TestLoopBackend:
    """The fast CPU path equals the reference to 1e-9 in float64, values and gradients."""

    @pytest.mark.parametrize("direction", DIRECTIONS)
    @pytest.mark.parametrize("shared", [False, True])
    @pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 9), (3, 2, 8, 1), (2, 4, 6, 6)])
    def test_matches_reference(
        self, direction: str, shared: bool, shape: tuple[int, int, int, int]
    ) -> None:
        x, g, p = _inputs(*shape, shared=shared)
        for t in (x, g, p):
            t.requires_grad_(True)
        ref = spatial_rnn_reference(x, g, p, direction)  # type: ignore[arg-type]
        fast = spatial_rnn(x, g, p, direction, backend="loop")  # type: ignore[arg-type]
        assert (ref - fast).abs().max().item() < 1e-9
        weight = torch.randn_like(ref)
        grads_ref = torch.autograd.grad((ref * weight).sum(), (x, g, p))
        grads_fast = torch.autograd.grad((fast * weight).sum(), (x, g, p))
        for a, b in zip(grads_ref, grads_fast, strict=True):
            assert a.shape == b.shape
            assert (a - b).abs().max().item() < 1e-9

    @pytest.mark.parametrize("direction", DIRECTIONS)
    @pytest.mark.parametrize("shared", [False, True])
    def test_gradcheck(self, direction: str, shared: bool) -> None:
        x, g, p = _inputs(2, 2, 4, 5, shared=shared, seed=3)
        inputs = tuple(t.requires_grad_(True) for t in (x, g, p))
        assert torch.autograd.gradcheck(
            lambda a, b, c: spatial_rnn(a, b, c, direction, backend="loop"), inputs
        )

    def test_auto_uses_loop_on_cpu(self) -> None:
        x, g, p = _inputs(1, 2, 4, 4, shared=True)
        assert torch.equal(
            spatial_rnn(x, g, p, "left_to_right"),
            spatial_rnn(x, g, p, "left_to_right", backend="loop"),
        )

    def test_float32_close_to_float64(self) -> None:
        x, g, p = _inputs(1, 3, 16, 64, shared=False)
        h64 = spatial_rnn(x, g, p, "left_to_right", backend="loop")
        h32 = spatial_rnn(x.float(), g.float(), p.float(), "left_to_right", backend="loop")
        assert h32.dtype == torch.float32
        assert torch.allclose(h32.double(), h64, atol=1e-4, rtol=1e-4)


class TestFourDirectionMax:
    @pytest.mark.parametrize("backend", ["loop", "reference"])
    @pytest.mark.parametrize("shared", [False, True])
    def test_equals_max_of_single_scans(self, backend: str, shared: bool) -> None:
        x, _, _ = _inputs(2, 3, 5, 6, shared=shared)
        gen = torch.Generator().manual_seed(1)
        wc = 1 if shared else 3
        g = torch.randn(2, 4, wc, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
        p = torch.rand(2, 4, wc, 5, 6, generator=gen, dtype=torch.float64).requires_grad_(True)
        merged = spatial_rnn_max4(x, g, p, backend=backend)  # type: ignore[arg-type]
        singles = torch.stack(
            [spatial_rnn_reference(x, g[:, d], p[:, d], DIRECTIONS[d]) for d in range(4)]
        ).amax(0)
        assert (merged - singles).abs().max().item() < 1e-12
        grads = torch.autograd.grad(merged.sum(), (g, p))
        ref_grads = torch.autograd.grad(singles.sum(), (g, p))
        for a, b in zip(grads, ref_grads, strict=True):
            assert (a - b).abs().max().item() < 1e-9


class TestPublicName:
    def test_hybridnet_spatial_rnn_is_the_function(self) -> None:
        import hybridnet

        assert hybridnet.spatial_rnn is spatial_rnn
        x, g, p = _inputs(1, 2, 3, 4, shared=True)
        assert torch.equal(hybridnet.spatial_rnn(x, g, p, "left_to_right"),
                           spatial_rnn(x, g, p, "left_to_right"))


class TestBadInput:
    def test_unknown_direction(self) -> None:
        x, g, p = _inputs(1, 1, 2, 2, shared=True)
        with pytest.raises(InvalidInputError, match="direction must be one of"):
            spatial_rnn(x, g, p, "diagonal")  # type: ignore[arg-type]

    def test_wrong_rank(self) -> None:
        x, g, p = _inputs(1, 1, 2, 2, shared=True)
        with pytest.raises(InvalidInputError, match="4-D tensor"):
            spatial_rnn(x[0], g, p, "left_to_right")

    def test_mismatched_weights(self) -> None:
        x, g, p = _inputs(1, 3, 4, 4, shared=False)
        with pytest.raises(InvalidInputError, match="g must have shape"):
            spatial_rnn(x, g[:, :2], p, "left_to_right")

    def test_integer_tensor(self) -> None:
        x = torch.ones(1, 1, 2, 2, dtype=torch.int64)
        with pytest.raises(InvalidInputError, match="floating point"):
            spatial_rnn(x, x, x, "left_to_right")

    def test_unknown_backend(self) -> None:
        x, g, p = _inputs(1, 1, 2, 2, shared=True)
        with pytest.raises(InvalidInputError, match="backend must be one of"):
            spatial_rnn(x, g, p, "left_to_right", backend="cuda")  # type: ignore[arg-type]


_TRITON_CHECK = textwrap.dedent(
    """
    import torch
    from hybridnet.spatially_variant_rnn import DIRECTIONS, spatial_rnn, spatial_rnn_reference
    from hybridnet import HybridNet, HybridNetConfig
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for shared in (False, True):
        for shape in [(2, 3, 5, 7), (1, 2, 1, 4), (2, 1, 6, 3)]:
            n, c, h, w = shape
            wc = 1 if shared else c
            x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64).requires_grad_()
            g = torch.randn(n, wc, h, w, generator=gen, dtype=torch.float64).requires_grad_()
            p = (torch.rand(n, wc, h, w, generator=gen, dtype=torch.float64) * 1.8 - 0.9
                 ).requires_grad_()
            for d in DIRECTIONS:
                ref = spatial_rnn_reference(x, g, p, d)
                tri = spatial_rnn(x, g, p, d, backend="triton")
                worst = max(worst, (ref - tri).abs().max().item())
                wgt = torch.randn_like(ref)
                for a, b in zip(torch.autograd.grad((ref * wgt).sum(), (x, g, p)),
                                torch.autograd.grad((tri * wgt).sum(), (x, g, p))):
                    worst = max(worst, (a - b).abs().max().item())
    assert worst < 1e-9, worst
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, generator=gen).requires_grad_()
    g = torch.randn(1, 1, 3, 4, dtype=torch.float64, generator=gen).requires_grad_()
    p = (torch.rand(1, 1, 3, 4, dtype=torch.float64, generator=gen) * 0.9).requires_grad_()
    for d in DIRECTIONS:
        assert torch.autograd.gradcheck(
            lambda a, b, c: spatial_rnn(a, b, c, d, backend="triton"), (x, g, p))
    torch.manual_seed(0)
    model = HybridNet(HybridNetConfig.tiny()).eval()
    image = torch.rand(1, 3, 12, 20, generator=gen)
    with torch.no_grad():
        model.scan_backend = "loop"
        a = model(image)
        model.scan_backend = "triton"
        b = model(image)
    assert (a - b).abs().max().item() < 1e-5
    print("TRITON-OK", worst)
    """
)


class TestTritonBackend:
    """The GPU kernels, run by Triton's interpreter on the CPU (TRITON_INTERPRET=1)."""

    def test_matches_reference_in_interpreter(self) -> None:
        pytest.importorskip("triton", reason="triton is not installable on this platform")
        env = dict(os.environ, TRITON_INTERPRET="1")
        result = subprocess.run(
            [sys.executable, "-c", _TRITON_CHECK],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "TRITON-OK" in result.stdout

    def test_listed_when_importable(self) -> None:
        pytest.importorskip("triton")
        assert "triton" in available_backends()
