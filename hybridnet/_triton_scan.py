# mypy: disable-error-code="untyped-decorator,attr-defined,unused-ignore,misc"
r"""Triton kernels for the linear scan of Eq. (3) on GPUs.

Layout: every tensor is contiguous with the scan axis first, shape ``L×B`` once the
trailing dimensions are flattened (``B`` independent sequences). One program owns a
block of ``BLOCK`` neighbouring sequences and walks the scan axis keeping the hidden
state in registers, so every load and store is coalesced across the block.

* forward: :math:`h[k] = g[k] x[k] + p[k] h[k-1]`                         # Eq. (3)
* backward: :math:`a[k] = \bar h[k] + p[k+1] a[k+1]`; :math:`dx = g a`, :math:`dg = x a`,
  :math:`dp[k] = h[k-1] a[k]` (see :mod:`hybridnet.spatially_variant_rnn`).

Half precision inputs are accumulated in float32; float64 stays float64.
Importing this module fails when Triton is missing; :mod:`hybridnet.spatially_variant_rnn` then
uses its loop backend. The kernels also run on the CPU under ``TRITON_INTERPRET=1``,
which is how the test-suite checks them on machines without a GPU.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl
from torch import Tensor

_BLOCK = 128


@triton.jit
def _scan_fwd_kernel(  # pragma: no cover - runs on the GPU or in the Triton interpreter
    x_ptr: Any,
    g_ptr: Any,
    p_ptr: Any,
    h_ptr: Any,
    length: Any,
    lanes: Any,
    REVERSE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
) -> None:
    pid = tl.program_id(0)
    cols = pid * BLOCK + tl.arange(0, BLOCK)
    mask = cols < lanes
    h = tl.zeros([BLOCK], dtype=ACC)
    for i in range(0, length):
        if REVERSE:
            k = length - 1 - i
        else:
            k = i
        off = k.to(tl.int64) * lanes + cols
        x = tl.load(x_ptr + off, mask=mask, other=0.0).to(ACC)
        g = tl.load(g_ptr + off, mask=mask, other=0.0).to(ACC)
        p = tl.load(p_ptr + off, mask=mask, other=0.0).to(ACC)
        h = g * x + p * h  # Eq. (3)
        tl.store(h_ptr + off, h.to(h_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _scan_bwd_kernel(  # pragma: no cover - runs on the GPU or in the Triton interpreter
    dh_ptr: Any,
    x_ptr: Any,
    g_ptr: Any,
    p_ptr: Any,
    h_ptr: Any,
    dx_ptr: Any,
    dg_ptr: Any,
    dp_ptr: Any,
    length: Any,
    lanes: Any,
    REVERSE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
) -> None:
    pid = tl.program_id(0)
    cols = pid * BLOCK + tl.arange(0, BLOCK)
    mask = cols < lanes
    a = tl.zeros([BLOCK], dtype=ACC)
    p_next = tl.zeros([BLOCK], dtype=ACC)
    for i in range(0, length):
        # Walk against the scan direction; the last step is the scan's first position.
        if REVERSE:
            k = i
            k_prev = i + 1
        else:
            k = length - 1 - i
            k_prev = length - 2 - i
        off = k.to(tl.int64) * lanes + cols
        dh = tl.load(dh_ptr + off, mask=mask, other=0.0).to(ACC)
        a = dh + p_next * a
        x = tl.load(x_ptr + off, mask=mask, other=0.0).to(ACC)
        g = tl.load(g_ptr + off, mask=mask, other=0.0).to(ACC)
        p = tl.load(p_ptr + off, mask=mask, other=0.0).to(ACC)
        # The scan's first position has no predecessor: read a clamped index, then zero it.
        k_safe = tl.minimum(tl.maximum(k_prev, 0), length - 1)
        h_prev = tl.load(h_ptr + k_safe.to(tl.int64) * lanes + cols, mask=mask, other=0.0)
        h_prev = tl.where(i < length - 1, h_prev.to(ACC), 0.0)
        tl.store(dx_ptr + off, (g * a).to(dx_ptr.dtype.element_ty), mask=mask)
        tl.store(dg_ptr + off, (x * a).to(dg_ptr.dtype.element_ty), mask=mask)
        tl.store(dp_ptr + off, (h_prev * a).to(dp_ptr.dtype.element_ty), mask=mask)
        p_next = p


def _acc_dtype(dtype: torch.dtype) -> Any:
    return tl.float64 if dtype == torch.float64 else tl.float32


def _grid(lanes: int) -> tuple[int]:
    return (triton.cdiv(lanes, _BLOCK),)


def scan_forward(x: Tensor, g: Tensor, p: Tensor, reverse: bool) -> Tensor:
    """Eq. (3) along dim 0; ``x``, ``g``, ``p`` share one shape (``g``/``p`` may be expanded)."""
    x, g, p = x.contiguous(), g.contiguous(), p.contiguous()
    length = x.shape[0]
    lanes = x.numel() // max(length, 1)
    h = torch.empty_like(x)
    if x.numel() == 0:
        return h
    _scan_fwd_kernel[_grid(lanes)](
        x, g, p, h, length, lanes, REVERSE=reverse, ACC=_acc_dtype(x.dtype), BLOCK=_BLOCK
    )
    return h


def scan_backward(
    dh: Tensor, x: Tensor, g: Tensor, p: Tensor, h: Tensor, reverse: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of Eq. (3) with respect to ``x``, ``g`` and ``p`` (full shapes)."""
    dh, x, g, p, h = (t.contiguous() for t in (dh, x, g, p, h))
    length = x.shape[0]
    lanes = x.numel() // max(length, 1)
    dx, dg, dp = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    if x.numel() == 0:
        return dx, dg, dp
    _scan_bwd_kernel[_grid(lanes)](
        dh, x, g, p, h, dx, dg, dp, length, lanes,
        REVERSE=reverse, ACC=_acc_dtype(x.dtype), BLOCK=_BLOCK,
    )
    return dx, dg, dp
