"""Full-model forward speed (issue #3): one 1920x1080 image, default config.

Prints parameters, a FLOPs estimate (multiply-adds x 2 of every convolution), the median
time and the peak memory, on the CPU with 2 threads and on a GPU when one is present.
Usage: ``python benchmarks/bench_model.py [--threads 2] [--width 1920 --height 1080]``.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from hybridnet import HybridNet, HybridNetConfig

from _common import machine, reset_peak_rss, rss_mib, table, time_it


def conv_flops(model: nn.Module, image: torch.Tensor) -> float:
    total = 0.0

    def hook(m: nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Conv2d)
        k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
        total += 2.0 * k * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        model(image)
    for h in handles:
        h.remove()
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = HybridNetConfig()
    model = HybridNet(cfg).eval()
    image = torch.rand(1, 3, args.height, args.width)
    params = sum(p.numel() for p in model.parameters())
    flops = conv_flops(model, image)
    print(f"# HybridNet forward, {args.width}x{args.height}, default config {cfg}")
    print(f"# {machine()}\n")
    rows = []
    base, _ = rss_mib()
    reset_peak_rss()
    with torch.inference_mode():
        t = time_it(lambda: model(image), repeat=args.repeat)
    _, peak = rss_mib()
    rows.append(["cpu", args.threads, params, flops / 1e9, t, peak - base])
    if torch.cuda.is_available():
        gpu_model = model.to("cuda")
        gpu_image = image.to("cuda")
        torch.cuda.reset_peak_memory_stats()

        def run() -> None:
            with torch.inference_mode():
                gpu_model(gpu_image)
            torch.cuda.synchronize()

        t = time_it(run, repeat=args.repeat * 4, warmup=3)
        peak_gpu = torch.cuda.max_memory_allocated() / 2**20
        rows.append([torch.cuda.get_device_name(0), "-", params, flops / 1e9, t, peak_gpu])
    print(table(["device", "threads", "parameters", "GFLOPs", "seconds (median)",
                 "peak memory MiB (above baseline)"], rows))


if __name__ == "__main__":
    main()
