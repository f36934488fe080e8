"""Full-model forward speed: the shipped weights on a real dark photo, 1920x1080.

Rows: the shipped weights as ``load_model`` gives them (tiny weights flushed to zero,
as the product runs them); the same file's raw tensors with denormal flushing off (how
the earlier shipped model ran: its ~560,000 weights below 1e-20 made CPU products fall
into the denormal range, 3-4x slower); and a randomly initialised network of the same
config (the cost of the arithmetic alone). Prints parameters, live weights, a FLOPs
estimate (multiply-adds x 2 of every convolution), the median time and the peak memory,
on the CPU and on a GPU when one is present.
Usage: ``python benchmarks/bench_model.py [--threads 2] [--width 1920 --height 1080]
[--weights FILE] [--photo FILE]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from hybridnet import HybridNet, load_model
from hybridnet.weights_io import read_metadata

from _common import dark_photo, machine, reset_peak_rss, rss_mib, shipped_weights, table, time_it


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


def raw_model(path: Path) -> HybridNet:
    """The file's tensors exactly as stored (no flushing of tiny weights)."""
    from safetensors.torch import load_file

    from hybridnet import HybridNetConfig

    model = HybridNet(HybridNetConfig.from_json(read_metadata(path)["config"]))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def live_share(model: nn.Module) -> float:
    n = sum(p.numel() for p in model.parameters())
    live = sum(int((p.abs() >= 1e-20).sum()) for p in model.parameters())
    return live / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--weights", type=Path, default=None, help="default: the shipped model")
    ap.add_argument("--photo", type=Path, default=None, help="default: a real dark photo")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    weights = args.weights or shipped_weights()
    pixels, described = dark_photo(args.height, args.width, args.photo)
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None].float().div(255).contiguous()
    shipped = load_model(weights)
    print(f"# HybridNet forward, {described}, weights {weights.name}")
    print(f"# config {shipped.config}")
    print(f"# {machine()}\n")
    torch.manual_seed(0)
    variants = [
        ("shipped weights, as loaded (flushed)", shipped, True),
        ("shipped file, raw tensors, no denormal flushing", raw_model(weights), False),
        ("random initialisation, same config", HybridNet(shipped.config).eval(), True),
    ]
    rows = []
    flops = conv_flops(shipped, image)
    params = sum(p.numel() for p in shipped.parameters())
    for name, model, flush in variants:
        torch.set_flush_denormal(flush)
        base, _ = rss_mib()
        reset_peak_rss()
        with torch.inference_mode():
            t = time_it(lambda m=model: m(image), repeat=args.repeat)
        _, peak = rss_mib()
        rows.append([name, "cpu", args.threads, params, f"{live_share(model):.1%}",
                     flops / 1e9, t, peak - base])
    torch.set_flush_denormal(True)
    first = rows[0][6]
    for r in rows:
        r.append(f"{r[6] / first:.2f}")
    if torch.cuda.is_available():
        gpu_model = shipped.to("cuda")
        gpu_image = image.to("cuda")
        torch.cuda.reset_peak_memory_stats()

        def run() -> None:
            with torch.inference_mode():
                gpu_model(gpu_image)
            torch.cuda.synchronize()

        t = time_it(run, repeat=args.repeat * 4, warmup=3)
        peak_gpu = torch.cuda.max_memory_allocated() / 2**20
        rows.append(["shipped weights", torch.cuda.get_device_name(0), "-", params, "-",
                     flops / 1e9, t, peak_gpu, "-"])
    print(table(["model", "device", "threads", "parameters", "live weights", "GFLOPs",
                 "seconds (median)", "peak memory MiB (above baseline)", "time / shipped"],
                rows))


if __name__ == "__main__":
    main()
