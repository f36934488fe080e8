#!/usr/bin/env python3
"""Widen the content stream's 1/4 and 1/8 modules of trained weights, keeping the output.

    scripts/widen_model.py IN.safetensors OUT.safetensors --content 16 48 128

The new network computes exactly what the old one did (up to float rounding), so
training can go on from the trained weights instead of from scratch. For every
convolution of ``enc2``, ``enc3``, ``dec2`` and ``dec1``:

* the old weights and biases are copied into the rows (output channels) and columns
  (input channels) they had, with the columns re-indexed where a decoder concatenates
  ``[up-sampled deeper features, encoder skip, edge bridge]`` of new widths;
* the added rows keep PyTorch's random initialisation (they must differ, or the new
  channels would stay copies of each other), and every column that reads an added
  channel is zero in the old rows, so nothing added reaches the output yet. Training
  makes those columns non-zero as soon as their gradient (the added channels'
  activations times the output error) says so.

The 1/2-scale width ``c1`` and the edge stream are left alone: full-resolution cost is
what bounds the CPU speed target, while the 1/4 and 1/8 modules add parameters at
little cost (the 1080p forward pass took the same time at (16, 32, 64) and (16, 48, 128)
here).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hybridnet import HybridNet, load_model, save_model  # noqa: E402


def widen(old: HybridNet, c2: int, c3: int, seed: int = 0) -> HybridNet:
    """A copy of ``old`` whose content stream has widths ``(c1, c2, c3)``, same output."""
    cfg = old.config
    c1, o2, o3 = cfg.content_channels
    e1, e2, _ = cfg.edge_channels
    if c2 < o2 or c3 < o3:
        raise ValueError(f"can only widen: ({c1}, {o2}, {o3}) -> ({c1}, {c2}, {c3})")
    torch.manual_seed(seed)
    new = HybridNet(replace(cfg, content_channels=(c1, c2, c3)))

    def span(start: int, length: int) -> list[int]:
        return list(range(start, start + length))

    # where each old input channel of a block's first convolution sits in the new layout
    first_inputs = {
        "content.enc2": span(0, c1),
        "content.enc3": span(0, o2),
        "content.dec2": span(0, o3) + span(c3, o2) + span(c3 + c2, e2),
        "content.dec1": span(0, o2) + span(c2, c1) + span(c2 + c1, e1),
    }
    old_state = old.state_dict()
    state = {}
    for name, fresh in new.state_dict().items():
        before = old_state[name]
        if before.shape == fresh.shape:
            state[name] = before.clone()
            continue
        block, rest = name.split(".convs.")
        index = int(rest.split(".")[0])
        out = fresh.clone()
        rows = before.shape[0]
        if name.endswith(".bias"):
            out[:rows] = before
        else:
            columns = first_inputs[block] if index == 0 else span(0, before.shape[1])
            out[:rows] = 0
            out[:rows, columns] = before
        state[name] = out
    new.load_state_dict(state)
    return new.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--content", type=int, nargs=3, metavar=("C1", "C2", "C3"), required=True,
                        help="new content widths; C1 must stay as it is")
    parser.add_argument("--seed", type=int, default=0, help="seed of the added channels")
    args = parser.parse_args(argv)
    old = load_model(args.source)
    c1, c2, c3 = args.content
    if c1 != old.config.content_channels[0]:
        parser.error(f"C1 must stay {old.config.content_channels[0]} (full-resolution cost)")
    try:
        new = widen(old, c2, c3, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = float((new(x) - old.eval()(x)).abs().max())
    save_model(new, args.target, metadata={"widened_from": str(args.source)})
    params = sum(p.numel() for p in new.parameters())
    print(f"{args.target}: content widths {new.config.content_channels}, {params:,} parameters, "
          f"largest output change {diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
