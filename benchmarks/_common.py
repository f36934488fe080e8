"""Small helpers shared by the benchmark scripts (timing, peak memory, tables)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def time_it(fn: Callable[[], object], repeat: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS counter of this process (Linux; no-op elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS since the last reset) in MiB, from /proc/self/status."""
    cur = peak = float("nan")
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return cur, peak


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-markdown table."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def machine() -> str:
    import platform

    import torch

    threads = torch.get_num_threads()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
            f"{torch.__version__} ({threads} threads), {gpu}")


#: The real dark photo the speed benchmarks enhance (shared data; not in the repository).
DARK_PHOTO = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lowlight"
              / "DICM" / "01.jpg")


def dark_photo(height: int, width: int, path: Path | None = None):  # type: ignore[no-untyped-def]
    """A real underexposed photo as ``height x width x 3`` uint8: ``path`` (default
    :data:`DARK_PHOTO`, or ``$LOWLIGHT_DATA_ROOT/lowlight/DICM/01.jpg``) tiled by
    mirroring and cropped to the size. Returns the array and a one-line description."""
    import numpy as np

    from hybridnet.imageio import read_rgb

    root = os.environ.get("LOWLIGHT_DATA_ROOT")
    source = path or (Path(root) / "lowlight" / "DICM" / "01.jpg" if root else DARK_PHOTO)
    if not source.is_file():
        raise SystemExit(f"benchmark photo {source} not found: pass --photo or set "
                         "LOWLIGHT_DATA_ROOT to the shared data")
    img = read_rgb(source)
    reps = (-(-height // img.shape[0]), -(-width // img.shape[1]), 1)
    pair = np.concatenate([img, img[:, ::-1]], axis=1)
    tiled = np.tile(pair, (reps[0], -(-reps[1] // 2), 1))
    out = np.round(tiled[:height, :width] * 255).astype(np.uint8)
    size = f"{img.shape[1]}x{img.shape[0]}"
    return out, f"real dark photo {source.name} ({size}) tiled to {width}x{height}"


def shipped_weights() -> Path:
    """The bundled model's weights file."""
    from hybridnet.enhancer import BUNDLED_WEIGHTS

    return Path(BUNDLED_WEIGHTS)
