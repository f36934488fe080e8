"""Worker transport overhead and memory (issue #6): 12-megapixel 16-bit RGB on the CPU.

Runs the same enhancement (the shipped weights on a real dark photo,
``_common.dark_photo``, as 16 bits; a fixed tile size so both do the same tiles) in this
process and through a real worker process over its real socket, and
prints, in one run:

* the in-process time and the worker round trip (medians, alternated so that a shared
  machine's load hits both alike);
* the transport overhead two ways, as a share of the in-process time: round trip minus
  in-process time (includes noise from other jobs), and round trip minus the worker's
  own enhancement time as it reports it (``compute_s``: the pure transport, queueing and
  validation cost);
* the peak RSS of the worker process during one request above its idle RSS
  (``/proc/<pid>/status`` VmHWM, reset through ``/proc/<pid>/clear_refs``), next to the
  same for the in-process enhancer, in MiB and in copies of the image; and for a
  strength-0 request (the worker receives the pixels, the enhancer returns a copy, the
  worker sends it back: no model work), which shows what the worker itself holds:
  the received input and the output, two copies. (Peaks with the model include the
  enhancer's tile work, which depends on what the allocator kept from earlier calls.)

Usage: ``python benchmarks/bench_worker.py [--threads 2] [--tile-size 1024] [--repeat 2]
[--device cpu|cuda]``. The worker runs in a private temporary runtime folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hybridnet import Enhancer
from worker.client import WorkerClient, stop_worker

from _common import dark_photo, machine, shipped_weights, table


def proc_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    cur = peak = float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cur, peak


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tile-size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="ellb-", dir="/tmp"))
    (root / "run").mkdir(mode=0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(root / "run")
    os.environ["XDG_STATE_HOME"] = str(root / "state")
    weights = shipped_weights()
    photo, described = dark_photo(args.height, args.width)
    image = photo.astype(np.uint16) * 257
    mib = image.nbytes / 2**20
    print(f"# worker vs in-process, {args.width}x{args.height} uint16 RGB ({mib:.0f} MiB), "
          f"shipped weights, tile {args.tile_size}, {args.device}")
    print(f"# {described}")
    print(f"# {machine()}\n")

    enhancer = Enhancer(weights, device=args.device)
    client = WorkerClient(start_args=["--weights", str(weights), "--device", args.device,
                                      "--threads", str(args.threads), "--idle-timeout", "0"],
                          timeout=120)
    pid = int(client.hello()["pid"])
    warm = image[:512, :512]
    enhancer.enhance(warm, tile_size=args.tile_size)
    client.enhance(warm, tile_size=args.tile_size)

    # Transport alone: strength 0 makes the worker receive, copy and send back.
    base, _ = proc_mib(pid)
    reset_peak(pid)
    t = time.perf_counter()
    same = client.enhance(image, 0.0)
    passthrough_t = time.perf_counter() - t
    passthrough_peak = proc_mib(pid)[1] - base
    assert np.array_equal(same, image)
    del same

    local_times: list[float] = []
    trips: list[float] = []
    computes: list[float] = []
    local_peak = worker_peak = 0.0
    for _ in range(args.repeat):
        base, _ = proc_mib(os.getpid())
        reset_peak(os.getpid())
        t = time.perf_counter()
        local = enhancer.enhance(image, tile_size=args.tile_size)
        local_times.append(time.perf_counter() - t)
        local_peak = max(local_peak, proc_mib(os.getpid())[1] - base)
        del local

        base, _ = proc_mib(pid)
        reset_peak(pid)
        t = time.perf_counter()
        remote = client.enhance(image, tile_size=args.tile_size)
        trips.append(time.perf_counter() - t)
        assert client.last_compute_s is not None
        computes.append(client.last_compute_s)
        worker_peak = max(worker_peak, proc_mib(pid)[1] - base)
        del remote
    check = client.enhance(image[:700, :900], tile_size=args.tile_size)
    assert np.array_equal(check, enhancer.enhance(image[:700, :900], tile_size=args.tile_size))
    client.close()
    stop_worker()
    shutil.rmtree(root, ignore_errors=True)

    local_t, trip_t = statistics.median(local_times), statistics.median(trips)
    transport = statistics.median(t - c for t, c in zip(trips, computes, strict=True))
    rows = [
        ["in-process enhance", local_t, "-", local_peak, local_peak / mib],
        ["worker round trip", trip_t, f"{(trip_t - local_t) / local_t:+.1%}", worker_peak,
         worker_peak / mib],
        ["worker: round trip - its compute_s", transport, f"{transport / local_t:+.2%}", "-",
         "-"],
        ["worker, strength 0 (transport + one copy)", passthrough_t,
         f"{passthrough_t / local_t:.2%}", passthrough_peak, passthrough_peak / mib],
    ]
    print(table(["", "seconds (median)", "overhead / in-process time",
                 "peak RSS above idle, MiB", "= image copies"], rows))
    print(f"\nworker memory beyond the in-process enhancer: {worker_peak - local_peak:.0f} MiB "
          f"= {(worker_peak - local_peak) / mib:.2f} image copies (the received input; the "
          "output and the enhancer's tile work are in both)")
    print(f"runs: in-process {[round(t, 2) for t in local_times]}, worker "
          f"{[round(t, 2) for t in trips]}, worker compute {[round(t, 2) for t in computes]}")


if __name__ == "__main__":
    main()
