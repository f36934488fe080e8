"""Enhancer overhead and memory (issue #4), CPU.

* overhead: ``Enhancer.enhance`` on a 12-megapixel 8-bit RGB photo (conversion, padding,
  tiling with overlaps, blending, quantisation) against the bare network forward on the
  same image as one float tensor; target <= 10 % of the bare forward;
* re-blend: :class:`hybridnet.contract.Blender` on a 1-megapixel preview at a new
  strength; target <= 16 ms;
* peak memory above the process's baseline at 12 and 50 megapixels (Linux VmHWM).

The model is the shipped weights, the photo a real dark one (``_common.dark_photo``).
Usage: ``python benchmarks/bench_enhancer.py [--threads 2] [--skip-50mp]``.
"""

from __future__ import annotations

import argparse
import gc

import numpy as np
import torch

from hybridnet import load_model
from hybridnet.contract import Blender, check_image
from hybridnet.enhancer import BYTES_PER_PIXEL, Enhancer

from _common import dark_photo, machine, reset_peak_rss, rss_mib, shipped_weights, table, time_it


def peak_of(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    gc.collect()
    base, _ = rss_mib()
    reset_peak_rss()
    seconds = time_it(fn, repeat=1, warmup=0)
    _, peak = rss_mib()
    return seconds, peak - base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-50mp", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(shipped_weights()).eval()
    enhancer = Enhancer(model=model, device="cpu")
    print("# Enhancer overhead and memory, CPU, the shipped weights on a real dark photo")
    print(f"# {machine()}\n")

    h, w = 3000, 4000
    img, described = dark_photo(h, w)
    print(f"# {described}")
    tensor = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()

    def bare() -> None:
        with torch.inference_mode():
            model(tensor)

    bare_s, bare_mem = peak_of(bare)
    untiled_s, untiled_mem = peak_of(lambda: enhancer.enhance(img, tile_size=max(h, w)))
    tiled_s, tiled_mem = peak_of(lambda: enhancer.enhance(img))
    plan = enhancer._plan(check_image(img), None)
    rows = [
        ["bare forward, one float tensor", "12 MP", bare_s, "1.00", bare_mem],
        ["Enhancer, one tile (no tiling)", "12 MP", untiled_s, f"{untiled_s / bare_s:.3f}",
         untiled_mem],
        [f"Enhancer, default tiling ({plan.count} tiles {plan.tile_w}x{plan.tile_h})", "12 MP",
         tiled_s, f"{tiled_s / bare_s:.3f}", tiled_mem],
    ]
    if not args.skip_50mp:
        big, _ = dark_photo(5800, 8700)
        big_s, big_mem = peak_of(lambda: enhancer.enhance(big))
        rows.append(["Enhancer, default tiling", "50 MP", big_s, "-", big_mem])
        del big
    print(table(["what", "size", "seconds", "ratio to bare", "peak MiB above baseline"], rows))

    preview, _ = dark_photo(1000, 1000)
    blender = Blender(preview, enhancer.enhance(preview))
    strengths = iter(np.linspace(0.01, 0.99, 1000))
    t = time_it(lambda: blender(float(next(strengths))), repeat=20, warmup=2)
    print()
    print(table(["re-blend a cached 1 MP preview", "ms per strength (median of 20)"],
                [["Blender(original, enhanced)(s)", t * 1000]]))
    print(f"\n(planning constant BYTES_PER_PIXEL = {BYTES_PER_PIXEL}; bare forward used "
          f"{bare_mem * 2**20 / (h * w):.0f} bytes per pixel)")


if __name__ == "__main__":
    main()
