r"""The spatially variant RNN of the edge stream (Ren et al., TIP 2019, Sec. III-B).

For one direction the image is read as a set of 1-D sequences (rows for the horizontal
directions, columns for the vertical ones) and each sequence is filtered by the linear
recurrence

.. math::

    h[k] = g[k] \circ x[k] + p[k] \circ h[k-1], \qquad h[-1] = 0            # Eq. (3)

where ``k`` runs along the scan direction, ``x`` is the multi-scale input, and ``g`` and
``p`` are per-pixel weight maps predicted by the edge stream's encoder-decoder. Eq. (3)
generalises the normalised filter of Eq. (2), :math:`h[k] = (1 - p[k]) x[k] + p[k]
h[k-1]`, by an independent input gain ``g``.

Back-propagation through a linear recurrence is the same recurrence run backwards. With
:math:`a[k] = \partial L / \partial h[k]` accumulated over the future of ``k``,

.. math::

    a[k] = \bar h[k] + p[k+1] \circ a[k+1], \qquad a[L] = 0

    \partial L/\partial x[k] = g[k] \circ a[k], \quad
    \partial L/\partial g[k] = x[k] \circ a[k], \quad
    \partial L/\partial p[k] = h[k-1] \circ a[k]

where :math:`\bar h` is the incoming gradient. No autograd tape over the loop is needed.

Three interchangeable implementations compute the scan:

* ``"reference"`` -- a plain loop over the sequence with autograd, kept for tests;
* ``"loop"`` -- the fast path for CPUs (and the fallback anywhere): the scan axis is moved
  to the front of a contiguous buffer so every step is one vectorised ``addcmul`` over
  all rows at once, and the backward pass is the reverse recurrence above;
* ``"triton"`` -- GPU kernels (:mod:`hybridnet._triton_scan`), one program per block of
  sequences walking the scan axis with the hidden state in registers; chosen
  automatically for CUDA tensors when Triton is importable.

All three are exact: they perform the same multiply-adds in the same order, so in
float64 they agree to rounding (1e-12 and below).
"""

from __future__ import annotations

import os
from typing import Any, Final, Literal, get_args

import torch
from torch import Tensor

from hybridnet.errors import InvalidInputError

Direction = Literal["left_to_right", "right_to_left", "top_to_bottom", "bottom_to_top"]
ScanBackend = Literal["auto", "reference", "loop", "triton"]

#: The four scan directions, in the order the edge stream stacks their weight maps.
DIRECTIONS: Final[tuple[Direction, ...]] = get_args(Direction)
_BACKENDS: Final[tuple[str, ...]] = get_args(ScanBackend)

#: Environment variable that forces a backend for every call that asks for ``"auto"``.
BACKEND_ENV: Final = "HYBRIDNET_SCAN_BACKEND"


def spatial_rnn(
    x: Tensor,
    g: Tensor,
    p: Tensor,
    direction: Direction,
    *,
    backend: ScanBackend = "auto",
) -> Tensor:
    r"""Run the spatially variant RNN of Eq. (3) over ``x`` in one ``direction``.

    Args:
        x: input features, ``N×C×H×W``, floating point.
        g: input gains, ``N×C×H×W`` or ``N×1×H×W`` (one map shared by all channels).
        p: propagation weights, same shapes as ``g``; keep ``|p| < 1`` for stability.
        direction: ``"left_to_right"``, ``"right_to_left"``, ``"top_to_bottom"`` or
            ``"bottom_to_top"``. Rows are the sequences of the horizontal directions and
            columns those of the vertical ones; the hidden state is zero before the first
            pixel of each sequence.
        backend: ``"auto"`` (Triton on CUDA when available, else the loop; overridable by
            the ``HYBRIDNET_SCAN_BACKEND`` environment variable), ``"reference"``,
            ``"loop"`` or ``"triton"``.

    Returns:
        The hidden state ``h``, ``N×C×H×W``, differentiable with respect to ``x``, ``g``
        and ``p``.
    """
    _check_scan_inputs(x, g, p, direction)
    chosen = _resolve_backend(backend, x)
    if chosen == "reference":
        return spatial_rnn_reference(x, g, p, direction)
    horizontal = direction in ("left_to_right", "right_to_left")
    reverse = direction in ("right_to_left", "bottom_to_top")
    perm = (3, 0, 1, 2) if horizontal else (2, 0, 1, 3)
    inverse = (1, 2, 3, 0) if horizontal else (1, 2, 0, 3)
    xs, gs, ps = (t.permute(perm).contiguous() for t in (x, g, p))
    h: Tensor = _LinearScan.apply(xs, gs, ps, reverse, chosen)  # type: ignore[no-untyped-call]
    return h.permute(inverse)


def spatial_rnn_max4(
    x: Tensor,
    g: Tensor,
    p: Tensor,
    *,
    backend: ScanBackend = "auto",
) -> Tensor:
    r"""Eq. (3) in all four directions merged by a node-wise max (Sec. III-B).

    .. math::

        E = \max\big(h_{\rightarrow}, h_{\leftarrow}, h_{\downarrow}, h_{\uparrow}\big)

    Equal to ``max(spatial_rnn(x, g[:, d], p[:, d], DIRECTIONS[d]) for d in 0..3)`` but
    moves ``x`` into each scan layout once per orientation and takes the max of a
    direction pair in that layout, where it is contiguous.

    Args:
        x: ``N×C×H×W``.
        g: ``N×4×Cw×H×W`` with the four directions in :data:`DIRECTIONS` order and
            ``Cw`` equal to ``C`` or 1.
        p: like ``g``.
        backend: as for :func:`spatial_rnn`.
    """
    if g.dim() != 5 or p.dim() != 5 or g.shape[1] != 4 or p.shape[1] != 4:
        raise InvalidInputError(
            f"g and p must be N×4×C×H×W (one map per direction); got {tuple(g.shape)} "
            f"and {tuple(p.shape)}"
        )
    for d in range(4):
        _check_scan_inputs(x, g[:, d], p[:, d], DIRECTIONS[d])
    chosen = _resolve_backend(backend, x)
    if chosen == "reference":
        hs = [spatial_rnn_reference(x, g[:, d], p[:, d], DIRECTIONS[d]) for d in range(4)]
        return torch.stack(hs).amax(dim=0)
    merged: Tensor | None = None
    for first, perm, inverse in ((0, (3, 0, 1, 2), (1, 2, 3, 0)), (2, (2, 0, 1, 3), (1, 2, 0, 3))):
        xs = x.permute(perm).contiguous()
        pair: list[Tensor] = []
        for d, reverse in ((first, False), (first + 1, True)):
            gs = g[:, d].permute(perm).contiguous()
            ps = p[:, d].permute(perm).contiguous()
            pair.append(_LinearScan.apply(xs, gs, ps, reverse, chosen))  # type: ignore[no-untyped-call]
        h = torch.maximum(pair[0], pair[1]).permute(inverse)  # node-wise max
        merged = h if merged is None else torch.maximum(merged, h)
    assert merged is not None
    return merged


def spatial_rnn_reference(x: Tensor, g: Tensor, p: Tensor, direction: Direction) -> Tensor:
    """Eq. (3) written as literally as possible: a Python loop with autograd.

    Slow (one autograd node per pixel column or row) but obviously right; the fast paths
    are tested against it.
    """
    _check_scan_inputs(x, g, p, direction)
    g = g.expand_as(x)
    p = p.expand_as(x)
    dim = 3 if direction in ("left_to_right", "right_to_left") else 2
    length = x.shape[dim]
    order = range(length - 1, -1, -1) if direction in ("right_to_left", "bottom_to_top") else (
        range(length)
    )
    h_prev = torch.zeros_like(x.select(dim, 0))
    hidden: list[Tensor] = [h_prev] * length
    for k in order:
        h_k = g.select(dim, k) * x.select(dim, k) + p.select(dim, k) * h_prev  # Eq. (3)
        hidden[k] = h_k
        h_prev = h_k
    return torch.stack(hidden, dim=dim)


def available_backends() -> tuple[str, ...]:
    """The backends that can run here (``"triton"`` only when Triton imports)."""
    names = ["reference", "loop"]
    if _triton_available():
        names.append("triton")
    return tuple(names)


# --------------------------------------------------------------------------- internals


def _check_scan_inputs(x: Tensor, g: Tensor, p: Tensor, direction: str) -> None:
    if direction not in DIRECTIONS:
        raise InvalidInputError(
            f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}"
        )
    for name, t in (("x", x), ("g", g), ("p", p)):
        if not isinstance(t, Tensor):
            raise InvalidInputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise InvalidInputError(
                f"{name} must be a 4-D tensor N×C×H×W; got shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise InvalidInputError(f"{name} must be floating point; got {t.dtype}")
    n, c, h, w = x.shape
    for name, t in (("g", g), ("p", p)):
        tn, tc, th, tw = t.shape
        if (tn, th, tw) != (n, h, w) or tc not in (1, c):
            raise InvalidInputError(
                f"{name} must have shape {(n, c, h, w)} or {(n, 1, h, w)} to match x; "
                f"got {tuple(t.shape)}"
            )
        if t.dtype != x.dtype or t.device != x.device:
            raise InvalidInputError(
                f"{name} must have x's dtype and device ({x.dtype}, {x.device}); "
                f"got ({t.dtype}, {t.device})"
            )


def _resolve_backend(backend: str, x: Tensor) -> str:
    if backend not in _BACKENDS:
        raise InvalidInputError(f"backend must be one of {', '.join(_BACKENDS)}; got {backend!r}")
    if backend == "auto":
        forced = os.environ.get(BACKEND_ENV, "").strip()
        if forced and forced != "auto":
            backend = forced
            if backend not in _BACKENDS:
                raise InvalidInputError(
                    f"{BACKEND_ENV}={forced!r} is not one of {', '.join(_BACKENDS)}"
                )
        else:
            return "triton" if x.is_cuda and _triton_available() else "loop"
    if backend == "triton" and not _triton_available():
        raise InvalidInputError(
            "the triton scan backend was requested but Triton is not importable; "
            "install triton or use backend='loop'"
        )
    return backend


_TRITON_OK: bool | None = None


def _triton_available() -> bool:
    global _TRITON_OK
    if _TRITON_OK is None:
        try:
            import hybridnet._triton_scan  # noqa: F401
        except Exception:  # ImportError, or a broken Triton install
            _TRITON_OK = False
        else:
            _TRITON_OK = True
    return _TRITON_OK


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast gradient back to the shape of the operand that was broadcast."""
    if t.shape == shape:
        return t
    dims = [i for i, (a, b) in enumerate(zip(t.shape, shape, strict=True)) if b == 1 and a != 1]
    return t.sum(dim=dims, keepdim=True)


def _loop_forward(gx: Tensor, p: Tensor, reverse: bool) -> Tensor:
    """h[k] = gx[k] + p[k] h[k-1] along dim 0 of contiguous buffers; Eq. (3)."""
    h = torch.empty_like(gx)
    hs, gxs, ps = h.unbind(0), gx.unbind(0), p.unbind(0)
    length = gx.shape[0]
    order = range(length - 1, -1, -1) if reverse else range(length)
    it = iter(order)
    prev = next(it)
    hs[prev].copy_(gxs[prev])  # h[-1] = 0
    for k in it:
        torch.addcmul(gxs[k], ps[k], hs[prev], out=hs[k])
        prev = k
    return h


def _loop_backward(dh: Tensor, p: Tensor, reverse: bool) -> Tensor:
    """a[k] = dh[k] + p[k+1] a[k+1], run against the scan direction."""
    a = torch.empty_like(dh)
    as_, dhs, ps = a.unbind(0), dh.unbind(0), p.unbind(0)
    length = dh.shape[0]
    order = range(length) if reverse else range(length - 1, -1, -1)
    it = iter(order)
    nxt = next(it)
    as_[nxt].copy_(dhs[nxt])  # a[L] = 0
    for k in it:
        torch.addcmul(dhs[k], ps[nxt], as_[nxt], out=as_[k])
        nxt = k
    return a


def _shift_previous(h: Tensor, reverse: bool) -> Tensor:
    """h[k-1] in scan order, zero before the first element."""
    prev = torch.zeros_like(h)
    if reverse:
        prev[:-1] = h[1:]
    else:
        prev[1:] = h[:-1]
    return prev


class _LinearScan(torch.autograd.Function):
    """Eq. (3) along dim 0 of contiguous tensors, with the reverse recurrence as backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, g: Tensor, p: Tensor, reverse: bool, backend: str) -> Tensor:
        if backend == "triton":
            from hybridnet import _triton_scan

            h = _triton_scan.scan_forward(x, g.expand_as(x), p.expand_as(x), reverse)
        else:
            h = _loop_forward(g * x, p, reverse)
        ctx.save_for_backward(x, g, p, h)
        ctx.reverse = reverse
        ctx.backend = backend
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dh: Tensor) -> tuple[Tensor | None, ...]:
        x, g, p, h = ctx.saved_tensors
        reverse: bool = ctx.reverse
        dh = dh.contiguous()
        dx: Tensor | None
        dg: Tensor | None
        dp: Tensor | None
        if ctx.backend == "triton":
            from hybridnet import _triton_scan

            tx, tg, tp = _triton_scan.scan_backward(
                dh, x, g.expand_as(x), p.expand_as(x), h, reverse
            )
            return tx, _sum_to(tg, g.shape), _sum_to(tp, p.shape), None, None
        a = _loop_backward(dh, p, reverse)
        dx = g * a if ctx.needs_input_grad[0] else None
        dg = _sum_to(x * a, g.shape) if ctx.needs_input_grad[1] else None
        dp = _sum_to(_shift_previous(h, reverse) * a, p.shape) if ctx.needs_input_grad[2] else None
        return dx, dg, dp, None, None
