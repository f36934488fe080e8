"""Scan speed (issue #3): Eq. (3) forward+backward on 1x16x512x512 float32.

Compares the plain Python-loop reference with the fast paths, side by side in one run,
and prints a table with the speed-up ratio. Usage: ``python benchmarks/bench_scan.py
[--threads 2] [--size 512] [--channels 16]``.
"""

from __future__ import annotations

import argparse

import torch

from hybridnet.spatially_variant_rnn import DIRECTIONS, available_backends, spatial_rnn

from _common import machine, table, time_it


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# Eq. (3) scan, forward+backward, 1x{args.channels}x{args.size}x{args.size} float32")
    print(f"# {machine()}\n")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        gen = torch.Generator().manual_seed(0)
        shape = (1, args.channels, args.size, args.size)
        x, g = (torch.randn(shape, generator=gen).to(device).requires_grad_() for _ in range(2))
        p = (torch.rand(shape, generator=gen) * 0.9).to(device).requires_grad_()
        backends = ["reference", "loop"]
        if device == "cuda" and "triton" in available_backends():
            backends.append("triton")
        for direction in (DIRECTIONS[0], DIRECTIONS[2]):
            times: dict[str, float] = {}
            for backend in backends:

                def step(
                    backend: str = backend,
                    direction: str = direction,
                    tensors: tuple[torch.Tensor, ...] = (x, g, p),
                    device: str = device,
                ) -> None:
                    h = spatial_rnn(*tensors, direction, backend=backend)  # type: ignore[arg-type]
                    h.sum().backward()
                    if device == "cuda":
                        torch.cuda.synchronize()

                times[backend] = time_it(step, repeat=1 if backend == "reference" else args.repeat)
            for backend, t in times.items():
                rows.append([device, direction, backend, t * 1000, times["reference"] / t])
    print(table(["device", "direction", "backend", "ms (median)", "speed-up vs reference"], rows))


if __name__ == "__main__":
    main()
